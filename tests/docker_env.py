"""Helpers for tests that run the starter app on the docker runtime (real engine, real Envoy)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

BASE_IMAGE = os.environ.get("DEVMESH_TEST_BASE_IMAGE", "devmesh/python-base:bookworm")
ENVOY_IMAGE = os.environ.get("DEVMESH_TEST_ENVOY_IMAGE", "devmesh/envoy:test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scaffold_shop(dest: Path) -> tuple[Path, str, int]:
    """The starter app as a git repo with a unique app name and a free gateway port."""
    from devmesh.scaffold import create_starter

    create_starter("shop", dest, base_image=BASE_IMAGE)
    app = "t" + secrets.token_hex(4)
    port = free_port()
    config = dest / "devmesh.yaml"
    text = config.read_text().replace("app: shop", f"app: {app}", 1)
    text = text.replace("routing:\n", f"routing:\n  gateway_port: {port}\n", 1)
    config.write_text(text)
    run_git(dest, "commit", "-qam", "test settings")
    return dest, app, port


def run_git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def devmesh(cwd: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess, as a user would."""
    full_env = {**os.environ, "DEVMESH_ENVOY_IMAGE": ENVOY_IMAGE, **(env or {})}
    return subprocess.run([sys.executable, "-m", "devmesh", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def get(port: int, host: str, path: str = "/", headers: dict[str, str] | None = None,
        method: str = "GET") -> tuple[int, dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers={"Host": host, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = resp.read()
            return resp.status, json.loads(body or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, {"raw": exc.read().decode(errors="replace")}, dict(exc.headers)


def wait_for(port: int, host: str, predicate: Any, timeout: float = 20.0,
             headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            status, body, _ = get(port, host, headers=headers)
            last = (status, body)
            if status == 200 and predicate(body):
                return body
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s; last answer: {last}")


def app_objects(app: str) -> list[str]:
    """Names of every container and network labelled with the app."""
    import docker

    client = docker.from_env()
    try:
        label = [f"devmesh.dev/app={app}"]
        names = [c.name for c in client.containers.list(all=True, filters={"label": label})]
        names += [f"network {n.name}" for n in client.networks.list(filters={"label": label})]
        return names
    finally:
        client.close()


def cleanup(app: str) -> None:
    import docker

    client = docker.from_env()
    try:
        label = [f"devmesh.dev/app={app}"]
        for c in client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True, v=True)
        for n in client.networks.list(filters={"label": label}):
            n.remove()
    finally:
        client.close()


def remove_images(app: str) -> None:
    """Every image built for the app (labelled with it)."""
    import docker

    client = docker.from_env()
    try:
        for image in client.images.list(filters={"label": f"devmesh.dev/app={app}"}):
            client.images.remove(image.id, force=True)
    finally:
        client.close()


@dataclass
class StarterShop:
    """The starter app up on the docker runtime for a module of tests, with its own state
    directory: the real CLI run in it (``run``; ``ok`` also checks it succeeded)."""

    root: Path
    app: str
    port: int
    state: Path

    @property
    def env(self) -> dict[str, str]:
        return {"DEVMESH_STATE_DIR": str(self.state)}

    def host(self, env: str | None = None) -> str:
        return f"{env}.{self.app}.localhost" if env else f"{self.app}.localhost"

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return devmesh(self.root, *args, env=self.env, timeout=timeout)

    def ok(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, timeout=timeout)
        assert done.returncode == 0, f"devmesh {' '.join(args)}: {done.stdout}{done.stderr}"
        return done


Shop = TypeVar("Shop", bound=StarterShop)


@contextmanager
def starter_shop(tmp: Path, cls: type[Shop]) -> Iterator[Shop]:
    """The starter app scaffolded in ``tmp`` (git identity, HOME and state directory set for the
    whole module); brought down with its containers and images afterwards, whatever happened."""
    from tests.conftest import GIT_ENV

    with pytest.MonkeyPatch.context() as mp:
        for key, value in GIT_ENV.items():
            mp.setenv(key, value)
        mp.setenv("HOME", str(tmp))
        mp.setenv("DEVMESH_STATE_DIR", str(tmp / "state"))
        root, app, port = scaffold_shop(tmp / "shop")
        shop = cls(root, app, port, tmp / "state")
        try:
            yield shop
        finally:
            devmesh(root, "down", "--baseline", env=shop.env)
            cleanup(app)
            remove_images(app)
