"""Orchestrates `devmesh up`: choose the runtime, build what is needed, bring the environment up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.events import Sink, Step, Warning, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.environments import Selection
    from devmesh.runtime.base import UpResult
    from devmesh.runtime.docker import DockerRuntime


def choose_runtime(project: Project, requested: str | None = None) -> str:
    """``--runtime``, else devmesh.yaml's ``runtime``; ``auto`` picks what this machine can run."""
    name = requested or project.runtime
    if name == "auto":
        name = "docker"  # the only runtime this version ships
    if name == "kind":
        raise UserInputError(
            "the kind runtime is not available in this version of devmesh",
            hint="use --runtime docker (or runtime: docker in devmesh.yaml)",
        )
    return name


def open_runtime(project: Project, requested: str | None = None) -> DockerRuntime:
    choose_runtime(project, requested)
    from devmesh.runtime.docker import DockerRuntime

    return DockerRuntime(project)


@dataclass(frozen=True)
class UpOutcome:
    selection: Selection
    result: UpResult


def up(project: Project, branch: str | None = None, *, fork_all: bool = False,
       runtime: str | None = None, sink: Sink = discard) -> UpOutcome:
    """Build the baseline and the branch's changed services, then run them beside each other."""
    from devmesh.build import ensure_image
    from devmesh.environments import select
    from devmesh.workspace import baseline_commit, checkout

    selection = select(project, branch, fork_all=fork_all, require_forks=True)
    rt = open_runtime(project, runtime)
    rt.check_gateway_port()
    environment = selection.environment
    base_name, base_sha = baseline_commit(project)
    sink(Step(f"baseline: {base_name} at {base_sha[:12]}", changed=False))
    base_root = checkout(project, base_sha, "baseline")
    if selection.branch.is_current or environment.is_baseline:
        fork_root = project.root
    else:
        fork_root = checkout(project, selection.branch.commit, environment.name)

    images: dict[Backend, str] = {}
    for service in project.services:
        context_in_base = base_root / project.services[service].context
        root = base_root
        if not context_in_base.is_dir():
            sink(Warning(f"{service} does not exist on {base_name}: its baseline runs the branch's version"))
            root = fork_root
        images[Backend(service, BASELINE_ENV)] = ensure_image(rt.client, project, service, root=root, sink=sink).ref
    for service in environment.forks:
        images[Backend(service, environment.name)] = ensure_image(
            rt.client, project, service, root=fork_root, sink=sink).ref
    result = rt.up(environment, sink=sink, images=images, baseline_commit=base_sha)
    return UpOutcome(selection, result)
