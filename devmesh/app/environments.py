"""Environments: choose and open the runtime, and bring a branch's environment up.

``up`` builds the baseline (the default branch's commit) and the services the branch changed,
then hands the images to the runtime (``devmesh.runtime.base.Runtime``) which runs them beside
each other and routes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devmesh import doctor
from devmesh.build import ensure_image
from devmesh.environments import Selection, select
from devmesh.errors import UserInputError
from devmesh.events import Sink, Step, Warning, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend
from devmesh.runtime.base import Runtime, UpResult
from devmesh.runtime.docker import DockerRuntime
from devmesh.runtime.kind.runtime import KindRuntime
from devmesh.workspace import baseline_commit, checkout

if TYPE_CHECKING:
    from devmesh.config import Project


def choose_runtime(project: Project, requested: str | None = None, context: str | None = None) -> str:
    """``--runtime``, else devmesh.yaml's ``runtime``; ``auto`` picks what this machine can run:
    kind when kind and a Docker engine exist (the rule ``devmesh doctor`` reports), else docker.
    A kube context (``--context`` or ``cluster.context``) means the kind runtime."""
    name = requested or project.runtime
    context = context or project.cluster.context
    if name == "auto":
        if context:
            return "kind"
        checks = {"kind": doctor.check_tool(next(t for t in doctor.TOOLS if t.name == "kind")),
                  "docker": doctor.check_docker()}
        name = doctor.choose_runtime("auto", None, checks)[0]
    if name == "docker" and context:
        raise UserInputError(
            f"a kube context ({context}) needs the kind runtime, not docker",
            hint="drop --context (or cluster.context), or use --runtime kind",
        )
    return name


def open_runtime(project: Project, requested: str | None = None, context: str | None = None) -> Runtime:
    """The runtime ``choose_runtime`` names, ready to use."""
    if choose_runtime(project, requested, context) == "kind":
        return KindRuntime(project, context=context)
    return DockerRuntime(project)


@dataclass(frozen=True)
class UpOutcome:
    selection: Selection
    result: UpResult


def up(project: Project, branch: str | None = None, *, fork_all: bool = False,
       runtime: str | None = None, sink: Sink = discard, context: str | None = None,
       rt: Runtime | None = None) -> UpOutcome:
    """Build the baseline and the branch's changed services, then run them beside each other
    on ``rt`` (default: the runtime ``open_runtime`` opens for ``runtime`` and ``context``)."""
    selection = select(project, branch, fork_all=fork_all, require_forks=True)
    if rt is None:
        rt = open_runtime(project, runtime, context)
    rt.prepare(sink=sink)
    rt.preflight()
    engine = rt.image_engine
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
        root = base_root
        if not (base_root / project.services[service].context).is_dir():
            sink(Warning(f"{service} does not exist on {base_name}: its baseline runs the branch's version"))
            root = fork_root
        images[Backend(service, BASELINE_ENV)] = ensure_image(engine, project, service, root=root, sink=sink).ref
    for service in environment.forks:
        images[Backend(service, environment.name)] = ensure_image(
            engine, project, service, root=fork_root, sink=sink).ref
    result = rt.up(environment, images=images, baseline_commit=base_sha, sink=sink)
    return UpOutcome(selection, result)
