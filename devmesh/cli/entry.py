"""Commands that the `devmesh` console script (tui.entry) runs before this CLI is reached. They
are listed by name for --help only: the core never imports the TUI."""

from __future__ import annotations

import click

ENTRY_COMMANDS: dict[str, str] = {
    "tui": "Open the terminal UI (what 'devmesh' alone does in a project).",
}


def entry_command(name: str) -> click.Command:
    """Stands in for a command the console script handles, when reached some other way."""

    @click.command(name, help=ENTRY_COMMANDS[name], context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        raise click.UsageError(
            f"'{name}' is run by the devmesh console script; run 'devmesh {name}' "
            f"(or 'python -m tui {name}') instead of 'python -m devmesh {name}'"
        )

    return command
