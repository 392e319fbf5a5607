"""Teardown and inspection when devmesh.yaml cannot be loaded: everything from labels.

Whatever devmesh starts carries its app, environment and service as labels, so ``down``,
``ls`` and ``logs`` need only the app's name to find it. That name is read from the broken
file's top-level ``app:`` line without parsing the file as YAML (the file may be what is
broken); failing that, it is the one app whose containers run on this machine's Docker engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import git

from devmesh.build import docker_client
from devmesh.errors import DevmeshError, UserInputError
from devmesh.naming import BASELINE_ENV, check_branch_name, detached_env_name, env_name
from devmesh.plan.k8s import APP_LABEL, MANAGED_BY
from devmesh.runtime.base import RuntimeApp
from devmesh.runtime.docker import DockerApp
from devmesh.runtime.kind.runtime import KindApp

_APP_LINE = re.compile(r"""app:[ \t]*(["']?)([a-z0-9]([-a-z0-9]*[a-z0-9])?)\1[ \t]*(#.*)?""")
_RUNTIME_LINE = re.compile(r"""runtime:[ \t]*(["']?)(auto|docker|kind)\1[ \t]*(#.*)?""")
DEFAULT_KIND_CONTEXT = "kind-devmesh"


@dataclass(frozen=True)
class Salvaged:
    """What could be read of a devmesh.yaml that does not load."""

    path: Path
    app: str | None
    runtime: str | None


def salvage(path: Path) -> Salvaged:
    """The app's name and runtime from their top-level lines, if they read plainly."""
    try:
        text = path.read_bytes()[:1_000_000].decode("utf-8", errors="replace")
    except OSError:
        return Salvaged(path, None, None)
    app = runtime = None
    for line in text.splitlines():
        found = _APP_LINE.fullmatch(line.rstrip())
        if found and app is None:
            app = found.group(2)
        found = _RUNTIME_LINE.fullmatch(line.rstrip())
        if found and runtime is None:
            runtime = found.group(2)
    return Salvaged(path, app, runtime)


def _docker_apps() -> set[str]:
    client = docker_client()
    return {c.labels.get(APP_LABEL, "") for c in client.containers.list(
        all=True, filters={"label": [f"{MANAGED_BY}=devmesh"]})} - {""}


def open_by_labels(found: Salvaged, requested: str | None, context: str | None) -> RuntimeApp:
    """The app's objects on the runtime asked for (``--runtime``, the file's, else the one
    where the app runs: a kube context means kind, else the Docker engine if it has the app)."""
    name = requested if requested not in (None, "auto") else found.runtime
    if context:
        name = "kind"
    app = found.app
    if name in (None, "auto", "docker") and app is None:
        apps = sorted(_docker_apps())
        if len(apps) != 1:
            running = f"apps running here: {', '.join(apps)}" if apps else "no devmesh app runs on this Docker engine"
            raise UserInputError(
                f"{found.path.name}: cannot tell the app's name (no plain top-level 'app:' line); {running}",
                hint="fix the 'app:' line so devmesh can find what it started",
            )
        app = apps[0]
    if app is None:
        raise UserInputError(f"{found.path.name}: cannot tell the app's name (no plain top-level 'app:' line)",
                             hint="fix the 'app:' line so devmesh can find what it started")
    if name == "kind":
        return KindApp(app, context=context or DEFAULT_KIND_CONTEXT)

    if name == "docker":
        return DockerApp(app)
    try:
        docker_app = DockerApp(app)
        if docker_app.environments():
            return docker_app
    except DevmeshError:
        pass  # no Docker engine here: the app can only be on a cluster
    return KindApp(app, context=DEFAULT_KIND_CONTEXT)


def env_by_labels(rt: RuntimeApp, project_dir: Path, branch: str | None) -> str:
    """The environment of ``branch`` (default: the checked-out one) as the labels name it.

    Without the configuration the baseline branch is unknown, so a branch's environment is the
    one whose objects carry that branch; the name it would be given otherwise is the fallback.
    """
    if branch is None:
        branch = _checked_out(project_dir)
        if branch is None or branch.startswith("detached:"):
            return detached_env_name(branch.removeprefix("detached:")) if branch else BASELINE_ENV
    check_branch_name(branch)
    for live in rt.live_environments():
        if live.branch == branch:
            return live.name
    return env_name(branch)


def _checked_out(project_dir: Path) -> str | None:
    try:
        with git.Repo(project_dir, search_parent_directories=True) as repo:
            if repo.head.is_detached:
                return f"detached:{repo.head.commit.hexsha}"
            return str(repo.active_branch.name)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError, TypeError):
        return None
