"""The ``devmesh`` console script: the TUI for ``devmesh`` alone (in a project) and
``devmesh tui``; every other command goes to the CLI (``devmesh.cli.main``).

This module lives in ``tui`` because the core never imports the TUI. It imports neither
Textual nor the core's heavy modules until it knows the TUI is wanted, so ``devmesh --help``
and ``devmesh --version`` stay as fast as the CLI alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

CONFIG_NAME = "devmesh.yaml"
_GLOBAL_VALUE_OPTIONS = ("--config", "-c")
_GLOBAL_FLAGS = ("--debug",)


def _in_project(config: str | None) -> bool:
    """Whether there is a devmesh.yaml to open (the one given, or one here or above)."""
    if config is not None:
        return True
    here = Path.cwd().resolve()
    return any((folder / CONFIG_NAME).is_file() for folder in (here, *here.parents))


def split_tui_args(argv: list[str]) -> list[str] | None:
    """The arguments for the TUI when ``argv`` asks for it, else None (a CLI command).

    ``devmesh [--config F] [--debug]`` with nothing else opens the TUI in a project on a
    terminal (elsewhere it prints the help, as before); ``devmesh [globals] tui [options]``
    always does.
    """
    globals_: list[str] = []
    config: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_VALUE_OPTIONS and i + 1 < len(argv):
            config = argv[i + 1]
            globals_ += argv[i:i + 2]
            i += 2
        elif arg.startswith("--config="):
            config = arg.partition("=")[2]
            globals_.append(arg)
            i += 1
        elif arg in _GLOBAL_FLAGS:
            globals_.append(arg)
            i += 1
        else:
            break
    rest = argv[i:]
    if rest and rest[0] == "tui":
        return globals_ + rest[1:]
    if not rest and sys.stdin.isatty() and sys.stdout.isatty() and _in_project(config):
        return globals_
    return None


@click.command("tui", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--branch", "-b", help="Branch to show (default: the checked-out branch).")
@click.option("--config", "-c", type=click.Path(path_type=Path, dir_okay=False),
              help="Path to devmesh.yaml (default: search upwards from here).")
@click.option("--log-lines", type=click.IntRange(min=100), default=10_000, show_default=True,
              envvar="DEVMESH_LOG_LINES", help="Log lines kept in memory for the Logs tab.")
@click.option("--debug", is_flag=True, envvar="DEVMESH_DEBUG", help="Show tracebacks of unexpected errors.")
def tui_command(branch: str | None, config: Path | None, log_lines: int, debug: bool) -> None:
    """Open the terminal UI for a branch: environments, routing, tiers, logs and activity."""
    from devmesh.config import load_project

    project = load_project(config)
    if branch is not None:
        from devmesh.naming import check_branch_name

        check_branch_name(branch)
    from tui.app import DevmeshApp
    from tui.sources import Sources

    app = DevmeshApp(Sources(project, branch=branch), log_lines=log_lines, debug=debug)
    app.run()
    sys.exit(app.return_code or 0)


def _report(message: str, hint: str | None) -> None:
    for line in message.splitlines():
        click.secho(line if line.startswith("error:") else f"error: {line}", fg="red", err=True)
    if hint:
        click.echo(f"hint: {hint}", err=True)


def run_tui(args: list[str]) -> None:
    """Run ``devmesh tui ARGS`` with the CLI's error conventions (message, hint, exit status)."""
    from devmesh.errors import DevmeshError

    debug = "--debug" in args or bool(os.environ.get("DEVMESH_DEBUG"))
    try:
        tui_command.main(args=args, prog_name="devmesh tui", standalone_mode=False)
    except DevmeshError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        _report(str(exc), exc.hint)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)


def _is_demo(argv: list[str]) -> bool:
    """Whether ``argv`` runs ``devmesh [globals] demo …``."""
    rest = [a for a in argv if a not in _GLOBAL_FLAGS]
    while rest[:1] and (rest[0] in _GLOBAL_VALUE_OPTIONS or rest[0].startswith("--config=")):
        rest = rest[1 if "=" in rest[0] else 2:]
    return rest[:1] == ["demo"]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    tui_args = split_tui_args(args)
    if tui_args is None:
        from devmesh.cli import main as cli_main

        done = cli_main(args)
        if _is_demo(args) and done is not None and "--no-tui" not in args and "--help" not in args \
                and sys.stdin.isatty() and sys.stdout.isatty():
            try:
                run_tui(["--config", str(done.config)])
            finally:  # the TUI ends with sys.exit
                click.echo(f"the demo keeps running in {done.root}; 'devmesh down --baseline' there removes it")
        return
    run_tui(tui_args)


if __name__ == "__main__":
    main()
