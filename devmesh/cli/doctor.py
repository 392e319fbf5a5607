"""`devmesh doctor`: check the tools and engines each runtime needs."""

from __future__ import annotations

import json
import sys

import click

from devmesh.cli import State, pass_state


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (for scripts).")
@click.option("--runtime", type=click.Choice(["auto", "kind", "docker"]), default=None,
              help="Check for this runtime instead of the one devmesh.yaml names.")
@pass_state
def doctor(state: State, as_json: bool, runtime: str | None) -> None:
    """Check Docker, kind, kubectl, istioctl, git, devmesh.yaml and the gateway port.

    Exits with status 1 when something the chosen runtime needs is missing, too old or
    broken; each problem comes with the command or link that fixes it.

    \b
    Minimum versions: Docker Engine API 1.41 (Engine 20.10), kind 0.20, kubectl 1.27,
    istioctl 1.22, git 2.30. The kind runtime needs all of them; the docker runtime needs
    Docker and git. Both need a valid devmesh.yaml and a free gateway port (or one
    that devmesh's own gateway already holds).
    """
    from devmesh.doctor import diagnose, format_table

    report = diagnose(state.config, requested_runtime=runtime)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(format_table(report))
    sys.exit(report.exit_code)
