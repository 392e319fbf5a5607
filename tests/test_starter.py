"""The shop starter: its services forward the routing header web → api → stock."""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.config.presets import presets_root

SHOP = presets_root() / "starters" / "shop"
HEADER = "x-devmesh-env"


class Service:
    """One starter service running as a local process on an ephemeral 127.0.0.1 port."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(SHOP / "services" / name / "app.py")],
            env={**os.environ, "LISTEN_HOST": "127.0.0.1", "PORT": "0", **env},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.port = self._wait_for_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def _wait_for_port(self) -> int:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=10):
                self.proc.kill()
                raise AssertionError(f"{self.name} did not start within 10 s")
        line = self.proc.stdout.readline()
        found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert found, f"{self.name} printed {line!r} instead of its address"
        return int(found.group(1))

    def stop(self) -> list[str]:
        """Stop the process (SIGTERM, as a container runtime would) and return its log lines."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        assert self.proc.returncode == 0, f"{self.name} exited with {self.proc.returncode} on SIGTERM"
        return out.splitlines()


def request(service: Service, method: str = "GET", path: str = "/", headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}
    finally:
        conn.close()


ShopFactory = Callable[..., dict[str, Service]]


@pytest.fixture
def shop() -> Iterator[ShopFactory]:
    """Start stock, api and web, each pointed at the next one's local address."""
    started: list[Service] = []

    def start(api_url: str | None = None, **extra_env: str) -> dict[str, Service]:
        stock = Service("stock", {"DEVMESH_ENV": "stock-env", **extra_env})
        started.append(stock)
        api = Service("api", {"STOCK_URL": stock.url, **extra_env})
        started.append(api)
        web = Service("web", {"API_URL": api_url or api.url, "DEVMESH_ENV": "feature-x", **extra_env})
        started.append(web)
        return {"web": web, "api": api, "stock": stock}

    yield start
    for service in started:
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait()


def test_routing_header_is_forwarded_through_every_hop(shop: ShopFactory) -> None:
    services = shop()
    status, reply = request(services["web"], headers={HEADER: "feature-x"})
    assert status == 200
    api = reply["api"]
    stock = api["stock"]
    assert [reply["service"], api["service"], stock["service"]] == ["web", "api", "stock"]
    assert [reply["header"], api["header"], stock["header"]] == ["feature-x"] * 3
    assert [reply["version"], api["version"], stock["version"]] == ["v1"] * 3
    assert (reply["env"], api["env"], stock["env"]) == ("feature-x", None, "stock-env")
    assert stock["items"] and api["prices"]

    logs = {name: svc.stop() for name, svc in services.items()}
    for name in ("web", "api", "stock"):
        assert f"{name} GET / {HEADER}=feature-x 200" in logs[name]


def test_without_the_header_nothing_is_invented(shop: ShopFactory) -> None:
    services = shop()
    status, reply = request(services["web"])
    assert status == 200
    assert reply["header"] is None and reply["api"]["header"] is None
    assert reply["api"]["stock"]["header"] is None
    assert f"stock GET / {HEADER}=- 200" in services["stock"].stop()


def test_header_name_and_version_come_from_the_environment(shop: ShopFactory) -> None:
    services = shop(DEVMESH_HEADER="x-team-env", SHOP_VERSION="v2")
    _, reply = request(services["web"], headers={"x-team-env": "pr-7", HEADER: "ignored"})
    stock = reply["api"]["stock"]
    assert (reply["header"], stock["header"], stock["version"]) == ("pr-7", "pr-7", "v2")


def test_post_travels_down_the_chain_with_its_method(shop: ShopFactory) -> None:
    services = shop()
    status, reply = request(services["web"], "POST", body=b'{"order": 1}', headers={HEADER: "feature-x"})
    assert status == 200
    assert [reply["method"], reply["api"]["method"], reply["api"]["stock"]["method"]] == ["POST"] * 3
    assert f"stock POST / {HEADER}=feature-x 200" in services["stock"].stop()


def test_keep_alive_connections_get_correct_lengths(shop: ShopFactory) -> None:
    services = shop()
    conn = http.client.HTTPConnection("127.0.0.1", services["stock"].port, timeout=10)
    try:
        for method in ("GET", "HEAD", "POST", "GET"):
            conn.request(method, "/", body=b"x" if method == "POST" else None)
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200
            assert response.version == 11 and not response.will_close
            length = int(response.headers["Content-Length"])
            assert len(body) == (0 if method == "HEAD" else length)
    finally:
        conn.close()


def test_healthz_does_not_call_downstream(shop: ShopFactory) -> None:
    # Port 9 on loopback: nothing listens there, so a downstream call would fail.
    services = shop(api_url="http://127.0.0.1:9")
    assert request(services["web"], path="/healthz") == (200, {"service": "web", "ok": True})
    status, reply = request(services["web"])
    assert status == 502
    assert "127.0.0.1:9" in reply["api"]["error"]
    assert request(services["web"], path="/nowhere")[0] == 404


# --- the same chain in containers -------------------------------------------------------

BASE_IMAGE = "devmesh/python-base:bookworm"


@pytest.mark.docker
def test_starter_images_build_and_forward_the_header_in_containers(tmp_path: Path) -> None:
    import docker

    client = docker.from_env()
    try:
        try:
            client.images.get(BASE_IMAGE)
        except docker.errors.ImageNotFound:
            message = f"{BASE_IMAGE} is missing: run .ci/build-images"
            if os.environ.get("DEVMESH_REQUIRE_DOCKER") == "1":
                pytest.fail(message)
            pytest.skip(message)
        _run_in_containers(client, f"devmesh-test-{uuid.uuid4().hex[:8]}")
    finally:
        client.close()


def _run_in_containers(client: Any, tag: str) -> None:
    network = client.networks.create(tag, labels={"devmesh.dev/test": tag})
    containers = []
    try:
        for name in ("stock", "api", "web"):
            client.images.build(path=str(SHOP / "services" / name), tag=f"{tag}-{name}:test",
                                buildargs={"BASE_IMAGE": BASE_IMAGE}, rm=True)
            container = client.containers.run(
                f"{tag}-{name}:test", detach=True, name=f"{tag}-{name}", network=tag,
                labels={"devmesh.dev/test": tag}, environment={"DEVMESH_ENV": f"{name}-env"},
                ports={"8000/tcp": ("127.0.0.1", None)} if name == "web" else {},
            )
            # The services find each other by the names the defaults use (api, stock).
            network.disconnect(container)
            network.connect(container, aliases=[name])
            containers.append(container)
        web = containers[-1]
        web.reload()
        port = int(web.ports["8000/tcp"][0]["HostPort"])
        reply = _get_when_ready(port, {HEADER: "feature-x"})
        stock = reply["api"]["stock"]
        assert [reply["header"], reply["api"]["header"], stock["header"]] == ["feature-x"] * 3
        assert stock["env"] == "stock-env"
    finally:
        for container in containers:
            container.remove(force=True)
        network.remove()
        for name in ("stock", "api", "web"):
            try:
                client.images.remove(f"{tag}-{name}:test", force=True)
            except Exception:  # built images are cleaned up best-effort
                pass


def _get_when_ready(port: int, headers: dict[str, str]) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + 15
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/", headers=headers)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            if response.status == 200:
                return dict(json.loads(body))
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the containerised shop did not answer 200 within 15 s")
        time.sleep(0.1)
