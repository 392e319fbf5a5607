"""How the CLI shows events and tables to people."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click

from devmesh.errors import UserInputError
from devmesh.events import BuildDone, BuildProgress, Event, Step, Warning

_COLOURS = ("cyan", "magenta", "yellow", "green", "blue", "bright_red", "bright_cyan", "bright_magenta")


def colour_for(name: str) -> str:
    """A stable colour per service name."""
    return _COLOURS[sum(name.encode()) % len(_COLOURS)]


class EventPrinter:
    """Prints events; build output is condensed to one line per Dockerfile step."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.steps_shown: dict[str, int | None] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, BuildProgress):
            text = event.message.removeprefix(f"{event.service}: ")
            new_step = event.step is not None and self.steps_shown.get(event.service) != event.step
            if self.verbose or new_step or event.step is None and text.startswith("building "):
                self.steps_shown[event.service] = event.step
                click.echo(f"  {event.service}: {text}", err=True)
        elif isinstance(event, BuildDone):
            how = "cached" if event.cached else f"built in {event.seconds:.1f} s"
            # A cached image is found done (·), as every other step that changes nothing.
            click.echo(f"{'·' if event.cached else '•'} image {event.service}: {event.image} ({how})",
                       err=True)
        elif isinstance(event, Warning):
            click.secho(f"! {event.message}", fg="yellow", err=True)
        elif isinstance(event, Step):
            click.echo(f"{'•' if event.changed else '·'} {event.message}", err=True)
        else:
            click.echo(f"• {event.message}", err=True)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain aligned columns."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def print_logs(rt: Any, env: str, services: Sequence[str], *, follow: bool, grep: str | None,
               tail: int | None, known: Iterable[str] = ()) -> None:
    """Print the lines, prefixed by service; ``known`` names every service (for alignment)."""
    try:
        pattern = re.compile(grep) if grep else None
    except re.error as exc:
        raise UserInputError(f"--grep: invalid regular expression {grep!r}: {exc}") from None
    colour = sys.stdout.isatty()
    width = max((len(s) for s in [*known, *services]), default=0) + 1
    for line in rt.logs(env, services, follow=follow, tail=tail):
        if pattern and not pattern.search(line.text):
            continue
        width = max(width, len(line.service) + 1)
        prefix = f"{line.service:<{width}}|"
        if colour:
            prefix = click.style(prefix, fg=colour_for(line.service))
        click.echo(f"{prefix} {line.text}")
