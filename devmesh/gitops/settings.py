"""Where the manifest repo is: ``manifests:`` in devmesh.yaml, or ``DEVMESH_MANIFESTS``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from devmesh.errors import UserInputError
from devmesh.naming import check_branch_name

if TYPE_CHECKING:
    from devmesh.config import Project

ENV_VAR = "DEVMESH_MANIFESTS"
DEFAULT_REGISTRY = "127.0.0.1:5001"

# scheme://…, or scp-like user@host:path / host:path (but not a Windows drive letter).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP = re.compile(r"^(?:[^@/:]+@)?[^/:]{2,}:")


@dataclass(frozen=True)
class ManifestSettings:
    """The resolved manifest repo: where it is, which folder and branch, how changes land."""

    url: str
    path: str = "."
    branch: str = "main"
    mode: Literal["push", "pull-request"] = "push"
    registry: str = DEFAULT_REGISTRY
    app: str | None = None

    @property
    def is_local(self) -> bool:
        return is_local_repo(self.url)


def is_local_repo(repo: str) -> bool:
    """Whether ``repo`` names a directory on this machine rather than a remote URL."""
    if repo.startswith("file://"):
        return True
    return not (_URL.match(repo) or _SCP.match(repo))


def normalise_repo(repo: str, base: Path) -> str:
    """A local path becomes absolute (relative to ``base``); a URL is kept as written."""
    repo = repo.strip()
    if not repo:
        raise UserInputError("the manifest repo is empty: give a git URL or a local path")
    if repo.startswith("file://"):
        return repo
    if is_local_repo(repo):
        return str((base / Path(repo).expanduser()).resolve())
    return repo


def check_repo_path(path: str) -> str:
    """The folder inside the repo: relative, without '..'."""
    posix = PurePosixPath(path)
    if posix.is_absolute() or ".." in posix.parts:
        raise UserInputError(
            f"manifests.path: expected a folder inside the repo (relative, without '..'), got {path!r}"
        )
    return str(posix)


def manifest_settings(
    project: Project | None, environ: Mapping[str, str] | None = None
) -> ManifestSettings:
    """The manifest repo for ``project``; ``DEVMESH_MANIFESTS`` overrides ``manifests.repo``."""
    env = os.environ if environ is None else environ
    override = env.get(ENV_VAR, "").strip()
    configured = project.manifests if project is not None else None
    if not override and configured is None:
        raise UserInputError(
            "no manifest repo configured",
            hint=f"run 'devmesh init --manifests REPO', or set {ENV_VAR}=REPO",
        )
    if override:
        url = normalise_repo(override, Path.cwd())
    else:
        assert configured is not None and project is not None
        url = normalise_repo(configured.repo, project.root)
    branch = configured.branch if configured else "main"
    try:
        check_branch_name(branch)
    except UserInputError as exc:
        raise UserInputError(f"manifests.branch: {exc}") from None
    registry = DEFAULT_REGISTRY
    if project is not None:
        registry = project.cluster.registry
    if configured is not None and configured.registry:
        registry = configured.registry
    return ManifestSettings(
        url=url,
        path=check_repo_path(configured.path) if configured else ".",
        branch=branch,
        mode=configured.mode if configured else "push",
        registry=registry,
        app=project.app if project is not None else None,
    )
