"""The kind runtime end to end against a real kind cluster with Istio: the docker runtime's
scenarios (tests/test_docker_runtime.py) on Kubernetes.

Opt in with ``DEVMESH_E2E_KIND=1`` (needs kind, istioctl 1.31, a Docker engine that can pull
kind's node image and Istio's images, and the test base image from .ci/build-images). The first
test runs ``devmesh cluster up`` (a few minutes the first time); the cluster is kept for the
next run — ``devmesh cluster down`` removes it. Ordered last by tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import docker_env
from tests.docker_env import get, run_git, scaffold_shop, wait_for

pytestmark = [
    pytest.mark.e2e_kind,
    pytest.mark.skipif(os.environ.get("DEVMESH_E2E_KIND") != "1",
                       reason="end-to-end kind tests are opt-in: set DEVMESH_E2E_KIND=1 "
                              "(needs kind, istioctl 1.31 and a Docker engine)"),
]

GATEWAY_PORT = int(os.environ.get("DEVMESH_E2E_GATEWAY_PORT", "8080"))
TIMEOUT = 900


# A kind-config/ for the test projects (cluster.yaml, istio.yaml): .ci/kind-cluster writes one
# for machines that pull no image (`eval "$(.ci/kind-cluster env)"` sets this); without it the
# projects use devmesh's own.
KIND_CONFIG = os.environ.get("DEVMESH_E2E_KIND_CONFIG")
# A directory with kind, kubectl and istioctl (.ci/kind-cluster's), put first on PATH for the
# devmesh these tests run and for nothing else: with kind on PATH, runtime "auto" picks kind,
# which the rest of the suite must not.
KIND_TOOLS = os.environ.get("DEVMESH_E2E_KIND_TOOLS")
# The local registry's image (DEVMESH_REGISTRY_IMAGE) for the devmesh these tests run.
REGISTRY_IMAGE = os.environ.get("DEVMESH_E2E_REGISTRY_IMAGE")


def devmesh(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {}
    if KIND_TOOLS:
        env["PATH"] = f"{KIND_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"
    if REGISTRY_IMAGE:
        env["DEVMESH_REGISTRY_IMAGE"] = REGISTRY_IMAGE
    return docker_env.devmesh(cwd, *args, env=env, timeout=timeout)


def _kind_project(dest: Path) -> tuple[Path, str]:
    root, app, port = scaffold_shop(dest)
    config = root / "devmesh.yaml"
    text = config.read_text().replace(f"gateway_port: {port}", f"gateway_port: {GATEWAY_PORT}")
    config.write_text(text.replace("app: ", "runtime: kind\napp: ", 1))
    if KIND_CONFIG:
        (root / "kind-config").mkdir(exist_ok=True)
        for name in ("cluster.yaml", "istio.yaml"):
            shutil.copyfile(Path(KIND_CONFIG) / name, root / "kind-config" / name)
        run_git(root, "add", "kind-config")
    run_git(root, "commit", "-qam", "kind runtime")
    return root, app


def app_objects(root: Path) -> list[str]:
    """Deployments of the app left in the cluster (by label, as devmesh finds them)."""
    listed = json.loads(devmesh(root, "ls", "--json").stdout or "{}")
    return [f"{s['service']}-{s['env']}" for e in listed.get("environments", []) for s in e["services"]
            if s["state"] != "missing"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, _ = _kind_project(tmp_path_factory.mktemp("cluster") / "shop")
    done = devmesh(root, "cluster", "up", timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    again = devmesh(root, "cluster", "up", timeout=TIMEOUT)
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stderr
    status = devmesh(root, "cluster", "status", "--json")
    assert status.returncode == 0, status.stdout
    return root


@pytest.fixture
def shop(cluster: Path, tmp_path: Path) -> Iterator[tuple[Path, str, int]]:
    root, app = _kind_project(tmp_path / "shop")
    yield root, app, GATEWAY_PORT
    devmesh(root, "down", "--baseline", timeout=TIMEOUT)


def _change_api(root: Path, version: str) -> None:
    app_py = root / "services/api/app.py"
    app_py.write_text(app_py.read_text().replace('"SHOP_VERSION", "v1"', f'"SHOP_VERSION", "{version}"'))


def test_branch_preview_routes_changed_service_and_falls_back(shop: tuple[Path, str, int]) -> None:
    root, app, port = shop
    run_git(root, "checkout", "-q", "-b", "feature/cheaper-stock")
    _change_api(root, "v2")
    run_git(root, "commit", "-qam", "api v2")
    first = devmesh(root, "up", "--detach", timeout=TIMEOUT)
    assert first.returncode == 0, first.stderr
    env = next(line.split()[1] for line in first.stdout.splitlines() if line.startswith("environment "))
    assert f"preview: http://{env}.{app}.localhost:{port}/" in first.stdout
    body = wait_for(port, f"{env}.{app}.localhost", lambda b: "api" in b, timeout=120)
    assert body["service"] == "web" and body["env"] == "baseline"
    assert body["api"]["version"] == "v2" and body["api"]["env"] == env
    assert body["api"]["stock"]["env"] == "baseline"
    _, plain, _ = get(port, f"{app}.localhost")
    assert plain["api"]["version"] == "v1"
    _, by_header, _ = get(port, f"{app}.localhost", headers={"x-devmesh-env": env})
    assert by_header["api"]["env"] == env

    second = devmesh(root, "up", "--detach", timeout=TIMEOUT)
    assert second.returncode == 0 and "nothing changed" in second.stderr, second.stderr

    listed = json.loads(devmesh(root, "ls", "--json").stdout)
    assert {e["name"] for e in listed["environments"]} == {"baseline", env}
    status = json.loads(devmesh(root, "status", "--json").stdout)
    assert status["running"] and status["runtime"] == "kind"
    logs = devmesh(root, "logs", "api")
    assert logs.returncode == 0 and f"x-devmesh-env={env}" in logs.stdout
    assert devmesh(root, "down", timeout=TIMEOUT).returncode == 0
    assert app_objects(root) == []


def test_two_branches_share_the_baseline(shop: tuple[Path, str, int]) -> None:
    root, app, port = shop
    run_git(root, "checkout", "-q", "-b", "one")
    _change_api(root, "one")
    run_git(root, "commit", "-qam", "api one")
    assert devmesh(root, "up", "-d", timeout=TIMEOUT).returncode == 0
    run_git(root, "checkout", "-q", "main")
    run_git(root, "checkout", "-q", "-b", "two")
    stock = root / "services/stock/app.py"
    stock.write_text(stock.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "two"'))
    assert devmesh(root, "up", "-d", timeout=TIMEOUT).returncode == 0
    one = wait_for(port, f"one.{app}.localhost", lambda b: "api" in b, timeout=120)
    assert one["api"]["version"] == "one" and one["api"]["stock"]["version"] == "v1"
    two = wait_for(port, f"two.{app}.localhost", lambda b: "api" in b, timeout=120)
    assert two["api"]["version"] == "v1" and two["api"]["stock"]["version"] == "two"
    assert devmesh(root, "down", timeout=TIMEOUT).returncode == 0
    one = wait_for(port, f"one.{app}.localhost", lambda b: b.get("api", {}).get("version") == "one", timeout=60)
    assert devmesh(root, "down", "--branch", "one", timeout=TIMEOUT).returncode == 0
    assert app_objects(root) == []


def test_no_changed_service_says_so(shop: tuple[Path, str, int]) -> None:
    root, _, _ = shop
    run_git(root, "checkout", "-q", "-b", "docs-only")
    (root / "NOTES.md").write_text("notes\n")
    done = devmesh(root, "up", "-d")
    assert done.returncode == 2 and "changes no service" in done.stderr


def test_service_crashing_at_start_shows_its_last_lines(shop: tuple[Path, str, int]) -> None:
    root, _, _ = shop
    run_git(root, "checkout", "-q", "-b", "broken")
    (root / "services/stock/app.py").write_text(
        "import sys\nprint('stock cannot start: missing STOCK_DB', flush=True)\nsys.exit(3)\n")
    done = devmesh(root, "up", "-d", timeout=TIMEOUT)
    assert done.returncode == 1
    assert "stock (broken) keeps exiting with status 3" in done.stderr
    assert "missing STOCK_DB" in done.stderr


def test_build_failure_names_the_step_and_starts_nothing(shop: tuple[Path, str, int]) -> None:
    root, _, _ = shop
    run_git(root, "checkout", "-q", "-b", "bad-build")
    dockerfile = root / "services/api/Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "COPY . /app", "COPY . /app\nRUN echo compiling prices && exit 7"))
    done = devmesh(root, "up", "-d", timeout=TIMEOUT)
    assert done.returncode == 1 and "build of api failed at step" in done.stderr
    assert app_objects(root) == []


def test_down_by_env_name_after_the_branch_is_gone(shop: tuple[Path, str, int]) -> None:
    root, _, _ = shop
    run_git(root, "checkout", "-q", "-b", "short-lived")
    _change_api(root, "gone")
    run_git(root, "commit", "-qam", "api gone")
    assert devmesh(root, "up", "-d", timeout=TIMEOUT).returncode == 0
    run_git(root, "checkout", "-q", "main")
    run_git(root, "branch", "-qD", "short-lived")
    logs = devmesh(root, "logs", "--env", "short-lived", "api")
    assert logs.returncode == 0 and "api gone listening" in logs.stdout
    assert devmesh(root, "down", "--env", "short-lived", timeout=TIMEOUT).returncode == 0
    assert app_objects(root) == []
