"""`devmesh sync`: copy saved files into the branch's running containers until Ctrl-C."""

from __future__ import annotations

import click

from devmesh.cli import State, pass_state
from devmesh.cli.output import EventPrinter


@click.command()
@click.option("--branch", "-b", help="Branch whose environment to sync (default: the checked-out one; it must be checked out).")
@click.option("--runtime", type=click.Choice(["auto", "docker", "kind"]), help="Override devmesh.yaml's runtime.")
@pass_state
def sync(state: State, branch: str | None, runtime: str | None) -> None:
    """Watch the forked services' sources and sync each saved change into their containers."""
    from devmesh.app.live import open_live_sync
    from devmesh.sync.live import describe_rules

    project = state.project()
    printer = EventPrinter()
    live = open_live_sync(project, branch, runtime=runtime, sink=printer)
    for line in describe_rules(project, [e.service for e in live.engines]):
        click.echo(f"· {line}", err=True)
    click.echo(f"syncing environment {live.env}; Ctrl-C stops", err=True)
    live.start()
    try:
        live.wait()
    except KeyboardInterrupt:
        click.echo("\nstopped syncing", err=True)
        return
    finally:
        live.stop()
    raise click.exceptions.Exit(1)  # stopped by itself: the branch changed (reported above)
