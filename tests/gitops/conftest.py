"""Fixtures for the GitOps tests: real bare repositories, a real registry, a real engine."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from devmesh.config import load_project
from devmesh.gitops.cache import open_checkout
from devmesh.gitops.scaffold import scaffold, specs_from_project
from devmesh.gitops.settings import ManifestSettings, manifest_settings
from tests.gitops.gitops_helpers import Result, write_project

@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Own cache, fixed identity, no override from the outer environment."""
    monkeypatch.setenv("DEVMESH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DEVMESH_MANIFESTS", raising=False)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Ada Tester")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "ada@example.test")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """An empty bare repository standing for the shared manifest repo."""
    path = tmp_path / "manifests.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True)
    return path


@pytest.fixture
def project_file(tmp_path: Path, remote: Path) -> Path:
    return write_project(tmp_path / "shop", str(remote))


@pytest.fixture
def settings(project_file: Path) -> ManifestSettings:
    return manifest_settings(load_project(project_file))


@pytest.fixture
def laid_out(settings: ManifestSettings, project_file: Path) -> ManifestSettings:
    """The remote with the layout written for api, web and worker, tiers dev, beta, prod."""
    with open_checkout(settings) as checkout:
        scaffold(checkout, "shop", specs_from_project(load_project(project_file)), ["dev", "beta", "prod"])
    return settings


@pytest.fixture
def checkout(laid_out: ManifestSettings) -> Callable[..., Any]:
    """``with checkout() as co:`` — the cached clone at the remote tip."""

    def opened(notify: Callable[[str], None] | None = None) -> Any:
        return open_checkout(laid_out, notify=notify or (lambda _: None))

    return opened


@pytest.fixture
def devmesh(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run the real ``devmesh`` entry point in-process: ``devmesh(cwd, "tiers", "--json")``."""
    from devmesh.cli import main

    def run(cwd: Path, *args: str) -> Result:
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


# --- Docker and a real registry ----------------------------------------------------------


def _require_docker() -> Any:
    """A docker client, or skip (fail under DEVMESH_REQUIRE_DOCKER=1) with the reason."""
    reason = None
    try:
        import docker

        client = docker.from_env()
        client.ping()
        return client
    except Exception as exc:  # any failure to reach the engine means "no Docker here"
        reason = f"no Docker engine: {exc}"
    if os.environ.get("DEVMESH_REQUIRE_DOCKER") == "1":
        pytest.fail(f"DEVMESH_REQUIRE_DOCKER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def docker_client() -> Iterator[Any]:
    client = _require_docker()
    yield client
    client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_registry(root: Path) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1:<free port>, storage under ``root``; yields host:port.

    A context manager of its own so that a module-scoped fixture can share one registry."""
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not Path(binary).exists():
        message = "docker-registry is not installed (apt-get install docker-registry)"
        if os.environ.get("DEVMESH_REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    config = root / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'registry'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/v2/", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"docker-registry did not start: {err[-500:]}")
            time.sleep(0.05)
    try:
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1:<free port> with storage in tmp; yields host:port."""
    with serve_registry(tmp_path) as address:
        yield address


@pytest.fixture
def local_image(docker_client: Any) -> Iterator[str]:
    """A tiny image made with ``docker import`` (no registry pull needed); yields its tag."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        payload = f"devmesh test {time.time_ns()}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    tag = f"devmesh-test/tiny:{os.getpid()}-{time.time_ns()}"
    repository, version = tag.rsplit(":", 1)
    docker_client.api.import_image_from_data(data.getvalue(), repository=repository, tag=version)
    yield tag
    image = docker_client.images.get(tag)
    docker_client.images.remove(image.id, force=True)



