"""`devmesh render`: print what the kind runtime would apply. Pure: no cluster, no Docker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from devmesh.cli import State, pass_state

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.plan.strategy import Strategy


@click.command()
@click.option("--branch", "-b", help="Branch to render (default: the checked-out branch).")
@click.option("--all", "fork_all", is_flag=True, help="Fork every service, not only the changed ones.")
@pass_state
def render(state: State, branch: str | None, fork_all: bool) -> None:
    """Print the Namespace, Deployments, Services, Gateway, VirtualServices and
    DestinationRules for the branch's environment and the baseline, as multi-document YAML."""
    from devmesh.environments import select
    from devmesh.plan.k8s import render_objects, to_yaml
    from devmesh.plan.launch import dockerfile_launch
    from devmesh.plan.routing import plan_for_project
    from devmesh.plan.strategy import describe

    project = state.project()
    chosen = select(project, branch, fork_all=fork_all)
    env = chosen.environment
    # Release strategies applied to this environment (canary, mirror, switch) are part of what
    # the cluster runs; the store is only read here.
    strategies = [s for s in _stored_strategies(project) if s.env == env.name and s.service in env.forks]
    plan = plan_for_project(project, [env], strategies)
    forks = ", ".join(env.forks) or "none"
    click.echo(f"# branch {chosen.branch.label} → environment {env.name}; forked: {forks}")
    for strategy in strategies:
        click.echo(f"# {describe(strategy, project.routing.header)}")
    if not chosen.environment.is_baseline:
        click.echo(f"# preview: {plan.preview_url(chosen.environment.name)}")
    # The branch's live-synced services run under devmesh's supervisor, with their image's
    # command: read from the Dockerfile here, from the built image by `devmesh up`.
    launches = {b: dockerfile_launch(project, b) for b in plan.backends}
    for b, launch in launches.items():
        if launch is not None and not launch.supervised:
            click.echo(f"# {b.service} ({b.env}) runs without devmesh's supervisor here: {launch.why}")
    click.echo(to_yaml(render_objects(project, plan, launch_for=launches.get)), nl=False)


def _stored_strategies(project: Project) -> tuple[Strategy, ...]:
    from devmesh.routes_state import StrategyStore
    from devmesh.dirs import state_dir

    return StrategyStore(state_dir() / project.app).load()
