"""`devmesh logs`: the environment's containers' logs, merged, prefixed by service."""

from __future__ import annotations

import click

from devmesh.cli import State, pass_state
from devmesh.cli.output import print_logs
from devmesh.cli.target import ENV_OPTION, RUNTIMES, open_for


@click.command()
@click.argument("services", nargs=-1)
@click.option("--branch", "-b", help="Branch whose environment to show (default: the checked-out one).")
@ENV_OPTION
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines; new containers join.")
@click.option("--grep", help="Only lines matching this regular expression.")
@click.option("--tail", type=int, default=None, help="Only the last N lines of each container.")
@click.option("--runtime", type=RUNTIMES, help="Override devmesh.yaml's runtime.")
@pass_state
def logs(state: State, services: tuple[str, ...], branch: str | None, env_name: str | None,
         follow: bool, grep: str | None, tail: int | None, runtime: str | None) -> None:
    """Print the logs of the environment's services (its forks and the baseline's others)."""
    rt, env, project = open_for(state, runtime, None, branch, env_name)
    try:
        print_logs(rt, env, services, follow=follow, grep=grep, tail=tail,
                   known=project.services if project is not None else ())
    except KeyboardInterrupt:
        pass
