"""`devmesh sync`: copy saved files into the branch's running containers until Ctrl-C; and the
same live sync while `devmesh up` follows the logs.

devmesh.sync loads only when files are synced, not for ``--help`` (it takes longer to import
than the whole CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from devmesh.cli import State, pass_state
from devmesh.cli.output import EventPrinter
from devmesh.events import Sink

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.app.environments import UpOutcome
    from devmesh.runtime.base import Runtime
    from devmesh.sync.live import LiveSync


@click.command()
@click.option("--branch", "-b", help="Branch whose environment to sync (default: the checked-out one; it must be checked out).")
@click.option("--runtime", type=click.Choice(["auto", "docker", "kind"]), help="Override devmesh.yaml's runtime.")
@click.option("--explain", "explain_paths", multiple=True, metavar="PATH",
              help="Say where a change to PATH would go, or why it would rebuild; sync nothing. Repeatable.")
@pass_state
def sync(state: State, branch: str | None, runtime: str | None, explain_paths: tuple[str, ...]) -> None:
    """Watch the forked services' sources and sync each saved change into their containers."""
    from devmesh.app.live import open_live_sync
    from devmesh.sync.live import describe_rules

    project = state.project()
    if explain_paths:
        from devmesh.sync.explain import explain
        from devmesh.workspace import current_branch

        label = current_branch(project, branch).label
        for path in explain_paths:
            for line in explain(project, path, label):
                click.echo(line)
        return
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


def start_live_sync(project: Project, outcome: UpOutcome, rt: Runtime, *, sink: Sink) -> LiveSync | None:
    """Start syncing saved files into the services ``devmesh up`` just forked on ``rt``, saying
    which; None when there is nothing to sync."""
    from devmesh.app.live import live_sync_after_up

    live = live_sync_after_up(project, outcome, rt, sink=sink)
    if live is not None:
        click.echo(f"syncing saved files into {', '.join(e.service for e in live.engines)} "
                   "(--no-sync turns this off)", err=True)
        live.start()
    return live
