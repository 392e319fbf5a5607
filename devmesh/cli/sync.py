"""`devmesh sync`: copy saved files into the branch's running containers until Ctrl-C; and the
same live sync while `devmesh up` follows the logs.

devmesh.sync loads only when files are synced, not for ``--help`` (it takes longer to import
than the whole CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from devmesh.cli import State, pass_state
from devmesh.cli.output import EventPrinter
from devmesh.events import Sink

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.session import UpOutcome
    from devmesh.sync.live import LiveSync


@click.command()
@click.option("--branch", "-b", help="Branch whose environment to sync (default: the checked-out one; it must be checked out).")
@click.option("--runtime", type=click.Choice(["auto", "docker", "kind"]), help="Override devmesh.yaml's runtime.")
@pass_state
def sync(state: State, branch: str | None, runtime: str | None) -> None:
    """Watch the forked services' sources and sync each saved change into their containers."""
    from devmesh.sync.live import describe_rules, open_live_sync

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


def start_live_sync(project: Project, outcome: UpOutcome, rt: Any, *, runtime: str | None,
                    context: str | None, sink: Sink) -> LiveSync | None:
    """Start syncing saved files into the services ``devmesh up`` just forked, saying which; None
    when there is nothing to sync."""
    from devmesh.sync.live import live_sync_after_up

    options = {"context": context} if context else {}
    live = live_sync_after_up(project, outcome, rt, runtime=runtime, sink=sink, **options)
    if live is not None:
        click.echo(f"syncing saved files into {', '.join(e.service for e in live.engines)} "
                   "(--no-sync turns this off)", err=True)
        live.start()
    return live
