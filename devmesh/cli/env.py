"""`devmesh up`, `down`, `ls`, `status`: environments on the chosen runtime."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from devmesh.cli import State, pass_state
from devmesh.cli.output import EventPrinter, print_logs, table
from devmesh.cli.sync import start_live_sync
from devmesh.cli.target import CONTEXT_OPTION, ENV_OPTION, RUNTIMES, open_for

if TYPE_CHECKING:
    from devmesh.runtime.base import EnvironmentState


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
    click.echo("following logs; Ctrl-C stops following (the environment keeps running; "
               "'devmesh down' removes it)", err=True)
    live = None if no_sync else start_live_sync(project, outcome, rt, sink=printer)
    try:
        print_logs(rt, env.name, [], follow=True, grep=None, tail=0, known=project.services)
    except KeyboardInterrupt:
        click.echo("\nstopped following; the environment keeps running", err=True)
    finally:
        if live is not None:
            live.stop()


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


def _states(state: State, runtime: str | None, context: str | None) -> list[EnvironmentState]:
    rt, _, _ = open_for(state, runtime, context, None, None, need_env=False)
    return rt.environments()


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
