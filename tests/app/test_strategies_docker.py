"""The strategy use cases on the docker runtime: the starter app with a branch that changes
web, the real engine and the real Envoy; the use cases called in process, the gateway asked
which route served each request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from devmesh.app import strategies
from devmesh.config import load_project
from devmesh.runtime.docker import DockerRuntime
from tests.conftest import GIT_ENV
from tests.docker_env import cleanup, devmesh, get, run_git, scaffold_shop

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[tuple[Path, str, int]]:
    tmp = tmp_path_factory.mktemp("app-strategies")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in GIT_ENV.items():
            mp.setenv(key, value)
        mp.setenv("HOME", str(tmp))
        mp.setenv("DEVMESH_STATE_DIR", str(tmp / "state"))
        root, app, port = scaffold_shop(tmp / "shop")
        try:
            run_git(root, "checkout", "-q", "-b", "feat")
            app_py = root / "services" / "web" / "app.py"
            app_py.write_text(app_py.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"'))
            run_git(root, "commit", "-qam", "web v2")
            done = devmesh(root, "up", "--detach")
            assert done.returncode == 0, done.stderr
            yield root, app, port
        finally:
            devmesh(root, "down", "--baseline")
            cleanup(app)
            _remove_images(app)


def _remove_images(app: str) -> None:
    client = docker.from_env()
    try:
        for image in client.images.list(filters={"label": f"devmesh.dev/app={app}"}):
            client.images.remove(image.id, force=True)
    finally:
        client.close()


def _route(port: int, host: str, want: str) -> None:
    """Envoy picks up the re-rendered routes within milliseconds; wait until it has."""
    deadline = time.monotonic() + 5
    while True:
        status, _, headers = get(port, host, "/healthz")
        if status == 200 and headers.get("x-devmesh-route") == want:
            return
        assert time.monotonic() < deadline, f"route {want} not in effect (last: {headers.get('x-devmesh-route')})"
        time.sleep(0.05)


def test_switch_and_end_take_effect_on_the_gateway(shop: tuple[Path, str, int]) -> None:
    root, app, port = shop
    project = load_project(root / "devmesh.yaml")
    rt = DockerRuntime(project)
    host = f"{app}.localhost"
    _route(port, host, "baseline")
    applied = strategies.switch(project, rt, "web", "feat")
    assert applied.summary.startswith("web: switch: every request without x-devmesh-env goes to feat's version")
    _route(port, host, "switch")
    canary = strategies.canary(project, rt, "web", "feat", weight=50)
    assert canary.replaced_summary is not None and canary.replaced_summary.startswith("switch:")
    _route(port, host, "canary")
    assert strategies.end(project, rt, "web") is not None
    _route(port, host, "baseline")
