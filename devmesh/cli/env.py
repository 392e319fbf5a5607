"""`devmesh up`, `down`, `ls`, `status`: environments on the chosen runtime."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from devmesh.cli import State, pass_state
from devmesh.cli.output import EventPrinter, table
from devmesh.errors import UserInputError

if TYPE_CHECKING:
    from devmesh.config import Project

RUNTIMES = click.Choice(["auto", "docker", "kind"])
CONTEXT_OPTION = click.option("--context", metavar="NAME",
                              help="Kind runtime on this existing cluster (a kubeconfig context).")


@click.command()
@click.option("--branch", "-b", help="Branch to run (default: the checked-out branch).")
@click.option("--all", "fork_all", is_flag=True, help="Fork every service, not only the changed ones.")
@click.option("--runtime", type=RUNTIMES, help="Override devmesh.yaml's runtime.")
@click.option("--detach", "-d", is_flag=True, help="Return once the environment is ready instead of following its logs.")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of build output.")
@click.option("--no-sync", is_flag=True, help="Do not sync saved files into the forked services while following logs.")
@CONTEXT_OPTION
@pass_state
def up(state: State, branch: str | None, fork_all: bool, runtime: str | None, detach: bool,
       verbose: bool, no_sync: bool, context: str | None) -> None:
    """Build the branch's changed services and run them beside the baseline."""
    from devmesh.app import environments

    project = state.project()
    printer = EventPrinter(verbose)
    rt = environments.open_runtime(project, runtime, context)
    outcome = environments.up(project, branch, fork_all=fork_all, sink=printer, rt=rt)
    env = outcome.result.environment
    sel = outcome.selection
    if not outcome.result.changed:
        click.echo("nothing changed: the environment is already up to date", err=True)
    forks = ", ".join(sel.environment.forks) or "none (baseline)"
    click.echo(f"environment {env.name} (branch {sel.branch.label}); forked: {forks}")
    click.echo(f"preview: {env.preview_url}")
    if detach:
        return
    from devmesh.cli.output import print_logs

    click.echo("following logs; Ctrl-C stops following (the environment keeps running; "
               "'devmesh down' removes it)", err=True)
    # --- live sync while following logs (devmesh.sync) ---
    live = None
    if not no_sync:
        from devmesh.app.live import live_sync_after_up

        live = live_sync_after_up(project, outcome, rt, sink=printer)
        if live is not None:
            click.echo(f"syncing saved files into {', '.join(e.service for e in live.engines)} "
                       "(--no-sync turns this off)", err=True)
            live.start()
    # --- end of live sync ---
    try:
        print_logs(rt, env.name, [], follow=True, grep=None, tail=0, known=project.services)
    except KeyboardInterrupt:
        click.echo("\nstopped following; the environment keeps running", err=True)
    finally:
        if live is not None:
            live.stop()


def env_for(project: object, branch: str | None, env: str | None) -> str:
    """The environment a command is about: ``--env``, else the branch's (default: checked out)."""
    from devmesh.naming import is_env_name
    from devmesh.workspace import current_branch

    if env is not None:
        if branch is not None:
            raise UserInputError("give --branch or --env, not both")
        if not is_env_name(env):
            raise UserInputError(f"--env: {env!r} is not an environment name (see 'devmesh ls')")
        return env
    return current_branch(project, branch).env  # type: ignore[arg-type]


ENV_OPTION = click.option("--env", "env_name", metavar="ENV",
                          help="An environment by name (as 'devmesh ls' shows it), e.g. one whose branch is gone.")


@click.command()
@click.option("--branch", "-b", help="Branch whose environment to remove (default: the checked-out one).")
@ENV_OPTION
@click.option("--baseline", is_flag=True, help="Also remove the baseline, the gateway and every other environment of the app.")
@click.option("--runtime", type=RUNTIMES, help="Override devmesh.yaml's runtime.")
@CONTEXT_OPTION
@pass_state
def down(state: State, branch: str | None, env_name: str | None, baseline: bool,
         runtime: str | None, context: str | None) -> None:
    """Remove the branch's environment (the baseline goes with the last environment)."""
    rt, env, _ = open_for(state, runtime, context, branch, env_name)
    removed = rt.down(env, baseline=baseline, sink=EventPrinter())
    if not removed:
        click.echo(f"nothing to remove: environment {env} is not running")
    else:
        click.echo(f"removed {len(removed)} object(s) of environment {env}")


def open_for(state: State, runtime: str | None, context: str | None, branch: str | None,
             env: str | None, *, need_env: bool = True) -> tuple[Any, str, Project | None]:
    """The runtime, the environment a command is about and the project; when devmesh.yaml does
    not load, the app's objects found by their labels alone (what ``down``, ``ls`` and ``logs``
    need), and no project."""
    from devmesh import by_labels
    from devmesh.app.environments import open_runtime
    from devmesh.config import find_config

    try:
        project = state.project()
    except UserInputError as exc:
        path = state.config or find_config()
        if not path.is_file():
            raise
        found = by_labels.salvage(path)
        rt = by_labels.open_by_labels(found, runtime, context)
        click.echo(f"note: {str(exc).splitlines()[0]}", err=True)
        click.echo(f"note: {path.name} could not be loaded: working from the labels of app "
                   f"{rt.app!r} on the {rt.name} runtime alone", err=True)
        if env is not None:
            return rt, env_for(None, branch, env), None
        name = by_labels.env_by_labels(rt, path.parent, branch) if need_env else ""
        return rt, name, None
    name = env_for(project, branch, env) if need_env else ""
    return open_runtime(project, runtime, context), name, project


def _states(state: State, runtime: str | None, context: str | None) -> list:  # type: ignore[type-arg]
    rt, _, _ = open_for(state, runtime, context, None, None, need_env=False)
    return rt.environments()  # type: ignore[no-any-return]


@click.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--runtime", type=RUNTIMES, help="Override devmesh.yaml's runtime.")
@CONTEXT_OPTION
@pass_state
def ls(state: State, as_json: bool, runtime: str | None, context: str | None) -> None:
    """List environments with their services, states and preview URLs."""
    envs = _states(state, runtime, context)
    if as_json:
        click.echo(json.dumps({"environments": [e.to_json() for e in envs]}, indent=2))
        return
    if not envs:
        click.echo("no environments running ('devmesh up' starts one)")
        return
    rows = []
    for e in envs:
        for s in e.services:
            ready = "yes" if s.ready else ("no" if s.ready is False else "?")
            rows.append([e.name, e.branch or "", s.service, "fork" if s.env == e.name and not e.is_baseline else "baseline",
                         s.state, ready, e.preview_url or ""])
    click.echo(table(["ENV", "BRANCH", "SERVICE", "VERSION", "STATE", "READY", "PREVIEW"], rows))


@click.command()
@click.option("--branch", "-b", help="Branch whose environment to show (default: the checked-out one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--runtime", type=RUNTIMES, help="Override devmesh.yaml's runtime.")
@CONTEXT_OPTION
@pass_state
def status(state: State, branch: str | None, as_json: bool, runtime: str | None,
           context: str | None) -> None:
    """Show the branch's environment: each service's version, state and readiness."""
    from devmesh.app.environments import open_runtime
    from devmesh.workspace import current_branch

    project = state.project()
    chosen = current_branch(project, branch)
    rt = open_runtime(project, runtime, context)
    running = {e.name: e for e in rt.environments()}
    env = running.get(chosen.env)
    if as_json:
        click.echo(json.dumps({"runtime": rt.name, "branch": chosen.label, "environment": chosen.env,
                               "running": env is not None,
                               "state": env.to_json() if env else None}, indent=2))
        return
    click.echo(f"branch {chosen.label} → environment {chosen.env} on {rt.name}")
    if env is None:
        click.echo("not running ('devmesh up' starts it)")
        return
    click.echo(f"preview: {env.preview_url}")
    rows = [[s.service, "fork" if s.env == env.name and not env.is_baseline else "baseline", s.state,
             "yes" if s.ready else "no", s.image] for s in env.services]
    click.echo(table(["SERVICE", "VERSION", "STATE", "READY", "IMAGE"], rows))
