"""``devmesh demo``: from nothing to a branch's preview in one command, on the real engine."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.app import demo as use_case
from devmesh.errors import UserInputError
from tests.docker_env import BASE_IMAGE, ENVOY_IMAGE

REPO = Path(__file__).resolve().parent.parent


def devmesh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devmesh", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, host: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host, **(headers or {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.loads(response.read())
    assert isinstance(answer, dict)
    return answer


def test_without_a_docker_engine_it_says_so_and_makes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    done = devmesh("demo", str(target), "--no-tui",
                   env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"error: devmesh demo runs on a Docker engine: DOCKER_HOST is unix://{tmp_path}/no-engine.sock, "
        f"and {tmp_path}/no-engine.sock does not exist")
    assert "hint: unset DOCKER_HOST" in done.stderr
    assert not target.exists()


def test_a_folder_that_is_not_empty_is_refused_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    done = devmesh("demo", str(tmp_path), "--no-tui", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        f"error: {tmp_path} is not an empty folder; the demo goes into a new or empty one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_port_that_is_taken_is_refused(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = devmesh("demo", str(tmp_path / "d"), "--no-tui", "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: --port {port}: 127.0.0.1:{port} is taken (")


def test_the_first_free_port_is_chosen() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        assert use_case.free_port(range(taken, taken + 50)) > taken
        with pytest.raises(Exception, match=f"no free port for the demo's gateway on 127.0.0.1 between {taken} and {taken}"):
            use_case.free_port(range(taken, taken + 1))


@pytest.mark.docker
def test_an_image_given_that_cannot_be_had_is_one_line() -> None:
    import docker

    client = docker.from_env()
    try:
        with pytest.raises(UserInputError) as raised:
            use_case.ensure_images(client, base="devmesh-test/no-such-image:nowhere", envoy=ENVOY_IMAGE)
    finally:
        client.close()
    assert str(raised.value).startswith(
        "the services' Python base image devmesh-test/no-such-image:nowhere is not on this engine and cannot be pulled: ")


@pytest.mark.docker
def test_an_image_that_cannot_be_pulled_is_built_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """No registry answers here: the default is not on the engine, the pull fails, the build runs
    (recorded, not run: the builders have their own tests) and its image is the one used."""
    import docker

    built: list[str] = []
    monkeypatch.setattr(use_case, "STARTER_BASE_IMAGE", "devmesh-test/not-pullable:1")
    monkeypatch.setattr(use_case, "PYTHON_BASE_IMAGE", "devmesh-test/not-built-either:1")
    monkeypatch.setattr(use_case, "build_python_base", lambda client, sink: built.append("base"))
    monkeypatch.setattr(use_case, "check_python_base", lambda client: built.append("checked"))
    events: list[str] = []
    client = docker.from_env()
    try:
        images = use_case.ensure_images(client, envoy=ENVOY_IMAGE, sink=lambda e: events.append(str(e.message)))
    finally:
        client.close()
    assert built == ["base", "checked"]
    assert images == use_case.Images("devmesh-test/not-built-either:1", ENVOY_IMAGE)
    assert events[0] == "pulling devmesh-test/not-pullable:1 (the services' Python base)"
    assert events[1].startswith("cannot pull devmesh-test/not-pullable:1 (")
    assert events[1].endswith("); building devmesh-test/not-built-either:1 here instead")


@pytest.fixture
def demo_dir(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "demo"
    yield root
    if (root / "devmesh.yaml").is_file():
        removed = devmesh("down", "--baseline", cwd=root)
        assert removed.returncode == 0, removed.stderr


@pytest.mark.docker
def test_the_demo_brings_up_a_changed_branch_beside_the_baseline(demo_dir: Path) -> None:
    port = free_port()
    done = devmesh("demo", str(demo_dir), "--no-tui", "--port", str(port),
                   "--base-image", BASE_IMAGE, "--envoy-image", ENVOY_IMAGE)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert f"demo ready: app demo in {demo_dir}" in lines
    assert f"  preview   http://cheaper-pears.demo.localhost:{port}/" in lines
    assert f"  baseline  http://demo.localhost:{port}/" in lines
    assert f"  or        curl -H 'x-devmesh-env: cheaper-pears' http://127.0.0.1:{port}/" in lines
    # The branch's api answers on the preview, the baseline's everywhere else.
    preview = get(port, f"cheaper-pears.demo.localhost:{port}")
    assert preview["api"]["prices"] == {"apple": 0.5, "pear": 0.6}
    assert preview["api"]["env"] == "cheaper-pears" and preview["env"] == "baseline"
    assert get(port, f"demo.localhost:{port}")["api"]["prices"] == {"apple": 0.5, "pear": 0.8}
    by_header = get(port, f"demo.localhost:{port}", {"x-devmesh-env": "cheaper-pears"})
    assert by_header["api"]["prices"] == {"apple": 0.5, "pear": 0.6}
    # A real repository: main as the starter left it, the branch one commit ahead, checked out.
    log = subprocess.run(["git", "log", "--format=%s", "main..cheaper-pears"], cwd=demo_dir,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert log[0] == "Pears are cheaper"
    head = subprocess.run(["git", "branch", "--show-current"], cwd=demo_dir, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert head == "cheaper-pears"
    status = devmesh("status", cwd=demo_dir)
    assert status.returncode == 0, status.stderr
    assert "api" in status.stdout
