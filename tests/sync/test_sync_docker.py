"""Live sync end to end: the starter app on the real Docker engine, behind the real Envoy."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from devmesh.config import load_project
from devmesh.events import Event
from devmesh.sync.events import SyncDone, SyncFailed
from devmesh.app.live import open_live_sync
from tests.docker_env import ENVOY_IMAGE, cleanup, devmesh, run_git, scaffold_shop, wait_for

pytestmark = pytest.mark.docker


def remove_images(app: str) -> None:
    import docker

    client = docker.from_env()
    label = {"label": [f"devmesh.dev/app={app}"]}
    try:
        for image in client.images.list(filters=label):
            client.images.remove(image.id, force=True)
        assert not client.images.list(filters=label)
    finally:
        client.close()


def api_container(app: str, env: str) -> Any:
    import docker

    client = docker.from_env()
    found = client.containers.list(all=True, filters={"label": [
        f"devmesh.dev/app={app}", f"devmesh.dev/env={env}", "devmesh.dev/service=api"]})
    assert len(found) == 1, found
    return found[0]


class Events:
    def __init__(self) -> None:
        self.queue: queue.Queue[Event] = queue.Queue()
        self.all: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.all.append(event)
        self.queue.put(event)

    def next(self, kind: type[Event], timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(event, SyncFailed):
                raise AssertionError(event.message)
            if isinstance(event, kind):
                return event
        raise AssertionError(f"no {kind.__name__} within {timeout} s: {[e.message for e in self.all]}")


@contextmanager
def syncing(project: Any) -> Iterator[tuple[Any, Events]]:
    """Live sync of ``project`` on the docker runtime, started and watching; stopped after."""
    events = Events()
    live = open_live_sync(project, runtime="docker", sink=events)
    live.start()
    try:
        assert live.wait_ready(10)
        yield live, events
    finally:
        live.stop()


@pytest.fixture
def preview(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str, int, str]]:
    """The shop on branch 'live' with api forked and running: (root, app, port, env)."""
    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DEVMESH_ENVOY_IMAGE", ENVOY_IMAGE)
    root, app, port = scaffold_shop(tmp_path / "shop")
    try:
        config = root / "devmesh.yaml"
        config.write_text(config.read_text().replace("routing:\n", "runtime: docker\nrouting:\n", 1))
        run_git(root, "commit", "-qam", "docker runtime")
        run_git(root, "checkout", "-q", "-b", "live")
        app_py = root / "services/api/app.py"
        app_py.write_text(app_py.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "live"'))
        run_git(root, "commit", "-qam", "api on the branch")
        up = devmesh(root, "up", "--detach")
        assert up.returncode == 0, up.stderr
        env = next(line.split()[1] for line in up.stdout.splitlines() if line.startswith("environment "))
        wait_for(port, f"{env}.{app}.localhost", lambda b: b.get("api", {}).get("version") == "live")
        yield root, app, port, env
    finally:
        cleanup(app)
        remove_images(app)


def with_restart(config: str) -> str:
    """The devmesh.yaml text with api's reload set to ``restart`` (the starter re-executes itself
    on SIGHUP; these tests need an app that does not)."""
    return re.sub(r"(  api:\n(?:    .*\n)*?)    reload: [^\n]*\n", r"\1    reload: restart\n", config, count=1)


def edit_prices(root: Path, apple: float) -> None:
    app_py = root / "services/api/app.py"
    text = app_py.read_text()
    start = text.index("PRICES = ")
    end = text.index("\n", start)
    app_py.write_text(text[:start] + f'PRICES = {{"apple": {apple}, "pear": 0.8}}' + text[end:])


def test_edit_delete_and_dependency_change(preview: tuple[Path, str, int, str]) -> None:
    root, app, port, env = preview
    host = f"{env}.{app}.localhost"
    # The starter's api re-executes itself on SIGHUP; here the container restart is exercised.
    config = root / "devmesh.yaml"
    config.write_text(with_restart(config.read_text()))
    project = load_project(config)
    assert project.services["api"].reload.action == "restart"
    before = api_container(app, env)
    with syncing(project) as (live, events):
        assert [e.service for e in live.engines] == ["api"]

        # Editing the handler changes the preview's answer, without a rebuild.
        edit_prices(root, 0.42)
        done = events.next(SyncDone)
        assert done.result == "synced" and done.files == 1 and done.paths == ("app.py",)
        assert done.bytes > 0 and done.reload == "restart"
        body = wait_for(port, host, lambda b: b["api"].get("prices", {}).get("apple") == 0.42)
        assert body["api"]["env"] == env and body["api"]["stock"]["env"] == "baseline"
        after = api_container(app, env)
        assert after.id == before.id and after.labels["devmesh.dev/image"] == before.labels["devmesh.dev/image"]
        # Reloaded in place by devmesh's supervisor: the container itself never restarted.
        assert after.attrs["Config"]["Entrypoint"] == ["/bin/sh", "/.devmesh/supervise"]
        assert after.attrs["Config"]["Cmd"] == ["python3", "app.py"]
        assert after.attrs["State"]["StartedAt"] == before.attrs["State"]["StartedAt"]
        assert after.attrs["RestartCount"] == 0

        # A new file arrives; deleting it removes it in the container.
        (root / "services/api/notes").mkdir()
        (root / "services/api/notes/todo.txt").write_text("ship it\n")
        events.next(SyncDone)
        assert after.exec_run(["cat", "/app/notes/todo.txt"]).output == b"ship it\n"
        (root / "services/api/notes/todo.txt").unlink()
        removed = events.next(SyncDone)
        assert removed.deleted == 1
        assert after.exec_run(["test", "-e", "/app/notes/todo.txt"]).exit_code == 1

        # A dependency file rebuilds and redeploys api: a new image and a new container.
        with (root / "services/api/requirements.txt").open("a") as f:
            f.write("# pinned later\n")
        rebuilt = events.next(SyncDone, timeout=300)
        assert rebuilt.result == "rebuilt"
        fresh = api_container(app, env)
        assert fresh.id != before.id
        assert fresh.labels["devmesh.dev/image"] != before.labels["devmesh.dev/image"]
        body = wait_for(port, host, lambda b: b["api"].get("prices", {}).get("apple") == 0.42)
        assert body["api"]["version"] == "live"

        # Syncing goes on into the new container.
        edit_prices(root, 0.43)
        events.next(SyncDone)
        wait_for(port, host, lambda b: b["api"].get("prices", {}).get("apple") == 0.43)


def test_removed_container_is_reported_and_the_next_change_retries(preview: tuple[Path, str, int, str]) -> None:
    root, app, port, env = preview
    project = load_project(root / "devmesh.yaml")
    with syncing(project) as (live, events):
        api_container(app, env).remove(force=True)
        edit_prices(root, 0.5)
        deadline = time.monotonic() + 30
        while not any(isinstance(e, SyncFailed) for e in events.all) and time.monotonic() < deadline:
            time.sleep(0.05)
        failed = next(e for e in events.all if isinstance(e, SyncFailed))
        assert failed.result == "gone" and "'devmesh up' starts it again" in failed.reason
        assert failed.paths == ("app.py",)
    up = devmesh(root, "up", "--detach")
    assert up.returncode == 0, up.stderr
    wait_for(port, f"{env}.{app}.localhost", lambda b: b["api"].get("prices", {}).get("apple") == 0.5)


def _read_lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line.rstrip("\n"))


def start_sync(root: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """`devmesh sync` in ``root``, as a user runs it; its stderr's lines arrive in the queue."""
    proc = subprocess.Popen([sys.executable, "-m", "devmesh", "sync"], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    threading.Thread(target=_read_lines, args=(proc.stderr, err), daemon=True).start()
    return proc, err


def _expect(lines: queue.Queue[str], text: str, seen: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} not seen within {timeout} s; got:\n" + "\n".join(seen))


def test_up_syncs_while_following_logs(preview: tuple[Path, str, int, str]) -> None:
    root, app, port, env = preview
    env_vars = {**os.environ, "DEVMESH_ENVOY_IMAGE": ENVOY_IMAGE}
    proc = subprocess.Popen([sys.executable, "-m", "devmesh", "up"], cwd=root, env=env_vars,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: queue.Queue[str] = queue.Queue()
    err: queue.Queue[str] = queue.Queue()
    seen_out: list[str] = []
    seen_err: list[str] = []
    for stream, into in ((proc.stdout, out), (proc.stderr, err)):
        threading.Thread(target=_read_lines, args=(stream, into), daemon=True).start()
    try:
        _expect(err, "syncing saved files into api", seen_err)
        time.sleep(1.0)  # the watcher starts recording within ~0.5 s
        edit_prices(root, 0.61)
        _expect(err, "api: synced app.py", seen_err)
        wait_for(port, f"{env}.{app}.localhost", lambda b: b["api"].get("prices", {}).get("apple") == 0.61)
        # The restarted container's log lines still reach the terminal.
        _expect(out, "api live listening", seen_out, timeout=20)
        _expect(out, "GET / x-devmesh-env=" + env, seen_out, timeout=20)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_sync_command(preview: tuple[Path, str, int, str]) -> None:
    root, app, port, env = preview
    elsewhere = devmesh(root, "sync", "--branch", "main")
    assert elsewhere.returncode == 2 and "baseline branch" in elsewhere.stderr
    edit_prices(root, 0.7)  # while nothing syncs: the container no longer matches the sources
    proc, err = start_sync(root, {**os.environ, "DEVMESH_ENVOY_IMAGE": ENVOY_IMAGE})
    seen: list[str] = []
    try:
        _expect(err, f"syncing environment {env}", seen)
        assert any("api: . → /app (from services/api/Dockerfile); rebuild on requirements.txt, "
                   "pyproject.toml, Dockerfile; after a sync: sent SIGHUP" in line for line in seen), seen
        assert any("api: the running container was built from other sources" in line for line in seen)
        time.sleep(1.0)
        edit_prices(root, 0.77)
        _expect(err, "api: synced app.py", seen)
        wait_for(port, f"{env}.{app}.localhost", lambda b: b["api"].get("prices", {}).get("apple") == 0.77)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_sync_refuses_what_it_cannot_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    root, app, _ = scaffold_shop(tmp_path / "shop")
    config = root / "devmesh.yaml"
    config.write_text(config.read_text().replace("routing:\n", "runtime: docker\nrouting:\n", 1))
    run_git(root, "commit", "-qam", "docker runtime")
    run_git(root, "branch", "elsewhere")
    run_git(root, "checkout", "-q", "-b", "idle")
    not_running = devmesh(root, "sync")
    assert not_running.returncode == 2
    assert "environment idle (branch idle) is not running" in not_running.stderr
    assert "'devmesh up' starts it" in not_running.stderr
    other = devmesh(root, "sync", "--branch", "elsewhere")
    assert other.returncode == 2
    assert "branch elsewhere is not checked out: live sync copies your working tree" in other.stderr
    assert "Traceback" not in other.stderr + not_running.stderr


def test_code_that_crashes_after_a_reload_keeps_the_container_until_the_next_sync(
        preview: tuple[Path, str, int, str]) -> None:
    root, app, port, env = preview
    host = f"{env}.{app}.localhost"
    config = root / "devmesh.yaml"
    config.write_text(with_restart(config.read_text()))
    before = api_container(app, env)
    with syncing(load_project(config)) as (live, events):
        app_py = root / "services/api/app.py"
        good = app_py.read_text()
        app_py.write_text("def broken(:\n" + good)
        events.next(SyncDone)
        deadline = time.monotonic() + 30
        while b"waiting for the next sync" not in before.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        logs = before.logs().decode(errors="replace")
        assert "SyntaxError" in logs
        assert "devmesh: python3 exited with status 1; waiting for the next sync to run it again" in logs
        before.reload()
        assert before.status == "running"  # the container stays, so the next sync reaches it
        app_py.write_text(good.replace('PRICES = {"apple": 0.5', 'PRICES = {"apple": 0.55'))
        events.next(SyncDone)
        wait_for(port, host, lambda b: b["api"].get("prices", {}).get("apple") == 0.55)
        assert api_container(app, env).id == before.id


def test_an_image_without_a_shell_is_restarted_on_a_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DEVMESH_ENVOY_IMAGE", ENVOY_IMAGE)
    root, app, port = scaffold_shop(tmp_path / "shop")
    try:
        config = root / "devmesh.yaml"
        config.write_text(with_restart(config.read_text().replace("routing:\n", "runtime: docker\nrouting:\n", 1)))
        run_git(root, "commit", "-qam", "docker runtime")
        run_git(root, "checkout", "-q", "-b", "noshell")
        with (root / "services/api/Dockerfile").open("a") as f:
            f.write('RUN ["/bin/rm", "/bin/sh"]\n')  # exec form: there is no shell left to run it
        run_git(root, "commit", "-qam", "api without a shell")
        up = devmesh(root, "up", "--detach")
        assert up.returncode == 0, up.stderr
        assert "its image has no /bin/sh, so a reload after a sync restarts the container" in up.stderr
        env = next(line.split()[1] for line in up.stdout.splitlines() if line.startswith("environment "))
        before = api_container(app, env)
        assert "devmesh.dev/supervised" not in before.labels
        assert before.attrs["Config"]["Entrypoint"] is None
        with syncing(load_project(config)) as (live, events):
            edit_prices(root, 0.91)
            assert events.next(SyncDone).reload == "restart"
            wait_for(port, f"{env}.{app}.localhost", lambda b: b["api"].get("prices", {}).get("apple") == 0.91)
            after = api_container(app, env)
            assert after.id == before.id and after.attrs["State"]["StartedAt"] != before.attrs["State"]["StartedAt"]
    finally:
        cleanup(app)
        remove_images(app)


def test_a_request_in_flight_during_a_reload_is_answered(preview: tuple[Path, str, int, str]) -> None:
    from tests.docker_env import get

    root, app, port, env = preview
    host = f"{env}.{app}.localhost"
    config = root / "devmesh.yaml"
    config.write_text(with_restart(config.read_text()))
    with syncing(load_project(config)) as (live, events):
        # api answers slowly, and it stops at once on SIGTERM (the starter's handler exits), so
        # only waiting for its answer before the reload keeps the request from being cut off.
        app_py = root / "services/api/app.py"
        app_py.write_text(app_py.read_text().replace("import json\n", "import json\nimport time\n", 1).replace(
            "        route = self.headers.get(HEADER)\n",
            "        route = self.headers.get(HEADER)\n        time.sleep(1.5)\n", 1))
        events.next(SyncDone)
        wait_for(port, host, lambda b: b["api"].get("prices", {}).get("apple") == 0.5, timeout=30)
        answers: list[tuple[int, dict[str, Any]]] = []
        slow = threading.Thread(target=lambda: answers.append(get(port, host)[:2]))
        slow.start()
        time.sleep(0.5)  # the request is inside api now
        edit_prices(root, 0.66)
        done = events.next(SyncDone)
        slow.join(timeout=30)
        status, body = answers[0]
        assert status == 200 and body["api"].get("prices", {}).get("apple") == 0.5, body
        assert done.reload == "restart"
        wait_for(port, host, lambda b: b["api"].get("prices", {}).get("apple") == 0.66, timeout=30)
