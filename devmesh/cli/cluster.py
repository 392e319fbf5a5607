"""`devmesh cluster up | down | status`: the kind cluster, its local registry and Istio."""

from __future__ import annotations

import json
import sys

import click

from devmesh.cli import State, pass_state
from devmesh.cli.output import EventPrinter, table

CONTEXT_OPTION = click.option(
    "--context", metavar="NAME",
    help="Use this existing cluster (a kubeconfig context) instead of devmesh's kind cluster.")


@click.group()
def cluster() -> None:
    """The Kubernetes cluster of the kind runtime: kind, a local registry and Istio."""


@cluster.command()
@CONTEXT_OPTION
@click.option("--install-istio", is_flag=True,
              help="With --context: install Istio there if it is missing (kind clusters always get it).")
@pass_state
def up(state: State, context: str | None, install_istio: bool) -> None:
    """Create what is missing (registry, kind cluster, node registry config, Istio); change
    nothing that is already right. Safe to run again, also after an interruption."""
    from devmesh.runtime.kind.cluster import ClusterSetup

    setup = ClusterSetup(state.project(), context=context)
    actions = setup.up(sink=EventPrinter(), install_istio=install_istio)
    if actions:
        click.echo(f"cluster ready ({len(actions)} change(s)); context {setup.context}")
    else:
        click.echo(f"cluster ready, nothing to change; context {setup.context}")


@cluster.command()
@click.option("--keep-registry", is_flag=True, help="Keep the registry container (and its images).")
@pass_state
def down(state: State, keep_registry: bool) -> None:
    """Delete the kind cluster and the local registry."""
    from devmesh.runtime.kind.cluster import ClusterSetup

    setup = ClusterSetup(state.project())
    actions = setup.down(sink=EventPrinter(), keep_registry=keep_registry)
    click.echo(f"removed {len(actions)} part(s)" if actions else "nothing to remove")


@cluster.command()
@CONTEXT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
def status(state: State, context: str | None, as_json: bool) -> None:
    """Show each part's health; exit status 1 when a part is unhealthy."""
    from devmesh.runtime.kind.cluster import ClusterSetup

    setup = ClusterSetup(state.project(), context=context)
    parts = setup.status()
    healthy = all(p.healthy for p in parts)
    if as_json:
        click.echo(json.dumps({"context": setup.context, "healthy": healthy,
                               "parts": [p.to_json() for p in parts]}, indent=2))
    else:
        rows = [[p.name, "ok" if p.healthy else "PROBLEM", p.detail] for p in parts]
        click.echo(table(["PART", "HEALTH", "DETAIL"], rows))
    sys.exit(0 if healthy else 1)
