"""Helpers shared by the GitOps tests (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from devmesh.gitops.cache import Checkout
from devmesh.gitops.images import ImageRef

SERVICES = ("api", "web", "worker")


def git(cwd: Path, *args: str) -> str:
    """Run git for a test's own checks."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def digest_ref(char: str, name: str = "127.0.0.1:5001/shop/api") -> ImageRef:
    """A made-up image pinned by a digest of 64 ``char``s."""
    return ImageRef(name, "sha256:" + char * 64)


def write_project(root: Path, repo: str | None, services: tuple[str, ...] = SERVICES, extra: str = "") -> Path:
    """A devmesh.yaml with ``services`` (each a build context with a Dockerfile)."""
    root.mkdir(parents=True, exist_ok=True)
    lines = ["# the shop", "app: shop", "services:"]
    for i, name in enumerate(services):
        (root / name).mkdir(exist_ok=True)
        (root / name / "Dockerfile").write_text("FROM scratch\n")
        lines += [f"  {name}:", f"    context: {name}", f"    port: {8000 + i}"]
        if i == 0:
            lines += ["    entry: true", "    env:", "      MODE: dev"]
    if repo is not None:
        lines += ["manifests:", f"  repo: {repo}"]
    (root / "devmesh.yaml").write_text("\n".join(lines) + "\n" + extra)
    return root / "devmesh.yaml"


def log_subjects(remote: Path) -> list[str]:
    return git(remote, "log", "--format=%s", "main").splitlines()


@dataclass
class Result:
    code: int
    out: str
    err: str


def pin_of(co: Checkout, tier: str, service: str) -> ImageRef | None:
    return co.layout().pin(tier, "shop", service)
