"""The ``devmesh`` command. Subcommands load lazily so ``--help`` and ``--version`` start fast."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from devmesh import __version__
from devmesh.cli.entry import ENTRY_COMMANDS, entry_command
from devmesh.errors import DevmeshError

# name → (module, function, one-line help). Modules are imported only when the command runs.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": ("devmesh.cli.init", "init", "Write a devmesh.yaml, or scaffold the starter app."),
    "demo": ("devmesh.cli.demo", "demo", "Scaffold the starter, change a service on a branch and open its preview."),
    "render": ("devmesh.cli.render", "render", "Print the Kubernetes and Istio objects for a branch."),
    "doctor": ("devmesh.cli.doctor", "doctor", "Check the tools and engines each runtime needs."),
    "cluster": ("devmesh.cli.cluster", "cluster", "Create, check or delete the kind cluster, its registry and Istio."),
    "up": ("devmesh.cli.env", "up", "Build the branch's changed services and run them beside the baseline."),
    "down": ("devmesh.cli.env", "down", "Remove the branch's environment."),
    "ls": ("devmesh.cli.env", "ls", "List environments, their services and preview URLs."),
    "status": ("devmesh.cli.env", "status", "Show the branch's environment and its services' health."),
    "logs": ("devmesh.cli.logs", "logs", "Print the environment's logs, merged and prefixed by service."),
    "traffic": ("devmesh.cli.traffic", "traffic", "Show each request's path through the mesh and each version's figures."),
    "sync": ("devmesh.cli.sync", "sync", "Sync saved files into the branch's running containers until Ctrl-C."),
    "manifests": ("devmesh.cli.gitops", "manifests", "Write the GitOps manifest repo's layout (manifests init)."),
    "tiers": ("devmesh.cli.gitops", "tiers", "Show which image each rollout tier runs, per service."),
    "promote": ("devmesh.cli.gitops", "promote", "Pin a service's image in a tier of the manifest repo."),
    "rollback": ("devmesh.cli.gitops", "rollback", "Revert a tier's latest promotion of a service."),
    "history": ("devmesh.cli.gitops", "history", "List promotions and rollbacks from the manifest repo."),
    "canary": ("devmesh.cli.strategy", "canary", "Send a share of a service's baseline traffic to the branch's version."),
    "mirror": ("devmesh.cli.strategy", "mirror", "Copy a service's GET and HEAD requests to the branch's version."),
    "switch": ("devmesh.cli.strategy", "switch", "Red/black: all of a service's baseline traffic to the branch's version."),
    "routes": ("devmesh.cli.strategy", "routes", "Show the routing rules per service; --explain a request."),
    "presets": ("devmesh.cli.presets", "presets", "List service and strategy presets with their variables."),
}


class ReaderGone(Exception):
    """The reader of our output closed it (``devmesh render | head -1``).

    Raised in place of BrokenPipeError, which click would turn into exit status 1.
    """


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise ReaderGone() from None

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *ENTRY_COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in ENTRY_COMMANDS:
            return entry_command(cmd_name)
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        summaries = {name: spec[2] for name, spec in COMMANDS.items()} | ENTRY_COMMANDS
        rows = [(name, summaries[name]) for name in sorted(summaries)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class State:
    """Options shared by every command."""

    def __init__(self, config: Path | None, debug: bool) -> None:
        self.config = config
        self.debug = debug

    def project(self) -> Any:
        from devmesh.config import load_project

        return load_project(self.config)


pass_state = click.make_pass_decorator(State)


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", type=click.Path(path_type=Path, dir_okay=False), help="Path to devmesh.yaml (default: search upwards from here).")
@click.option("--debug", is_flag=True, envvar="DEVMESH_DEBUG", help="Show tracebacks.")
@click.version_option(__version__, "--version", "-V", prog_name="devmesh")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, debug: bool) -> None:
    """devmesh: a preview of your branch in a real service mesh, live-synced, promoted by GitOps."""
    ctx.obj = State(config, debug)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


def _report(exc: DevmeshError) -> None:
    for line in str(exc).splitlines():
        click.secho(f"error: {line}" if not line.startswith(("error:",)) else line, fg="red", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)


def _report_usage(exc: click.UsageError) -> None:
    """A mistake on the command line as one line, like every other bad input: click's usage
    text and its blank lines would bury the one sentence that matters."""
    where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    message = " ".join(exc.format_message().split())
    click.secho(f"error: {message}{where}", fg="red", err=True)


def main(argv: list[str] | None = None) -> Any:
    """Run a command with the CLI's conventions (one-line errors, exit statuses); what the
    command returned (the console script opens the terminal UI on what ``demo`` made)."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:]) or bool(os.environ.get("DEVMESH_DEBUG"))
    try:
        return cli.main(args=argv, prog_name="devmesh", standalone_mode=False)
    except DevmeshError as exc:
        if debug:
            traceback.print_exc()
        _report(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        _report_usage(exc)
        sys.exit(2)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (ReaderGone, BrokenPipeError):
        _reader_went_away()


# The status a shell reports for a process that SIGPIPE ended (128 + 13), as `yes | head -1`.
EXIT_BROKEN_PIPE = 128 + 13


def _reader_went_away() -> None:
    """Stop quietly, as Unix tools do when the reader of their output closes it (``| head``).

    Python would print a traceback, then complain again while flushing stdout at exit; stdout
    is pointed at /dev/null so that final flush has nowhere to fail.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    sys.exit(EXIT_BROKEN_PIPE)
