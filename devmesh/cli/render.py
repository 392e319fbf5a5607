"""`devmesh render`: print what the kind runtime would apply. Pure: no cluster, no Docker."""

from __future__ import annotations

import click

from devmesh.cli import State, pass_state


@click.command()
@click.option("--branch", "-b", help="Branch to render (default: the checked-out branch).")
@click.option("--all", "fork_all", is_flag=True, help="Fork every service, not only the changed ones.")
@pass_state
def render(state: State, branch: str | None, fork_all: bool) -> None:
    """Print the Namespace, Deployments, Services, Gateway, VirtualServices and
    DestinationRules for the branch's environment and the baseline, as multi-document YAML."""
    from devmesh.environments import select
    from devmesh.plan.k8s import render_objects, to_yaml
    from devmesh.plan.routing import plan_for_project

    project = state.project()
    chosen = select(project, branch, fork_all=fork_all)
    plan = plan_for_project(project, [chosen.environment])
    forks = ", ".join(chosen.environment.forks) or "none"
    click.echo(f"# branch {chosen.branch.label} → environment {chosen.environment.name}; forked: {forks}")
    if not chosen.environment.is_baseline:
        click.echo(f"# preview: {plan.preview_url(chosen.environment.name)}")
    click.echo(to_yaml(render_objects(project, plan)), nl=False)
