"""The sync engine against the in-memory container: events, reloads, retries, gone containers,
rebuilds; and live sync with real watchfiles on a temporary tree."""

from __future__ import annotations

import os
import queue
import time
from pathlib import Path

import pytest

from devmesh.errors import DevmeshError
from devmesh.events import Event, Step
from devmesh.sync.changes import ChangeSet
from devmesh.sync.engine import ServiceSync
from devmesh.sync.events import SyncDone, SyncFailed, SyncRefused
from devmesh.sync.live import HeadGuard, LiveSync
from devmesh.sync.rules import ServiceSources
from devmesh.sync.transport import TransportError
from tests.sync.container_model import FakeContainer, FakeTransport
from tests.sync.conftest import SourcesFactory


def changed(*items: tuple[str, str]) -> ChangeSet:
    cs = ChangeSet()
    for path, kind in items:
        cs.add(path, kind)  # type: ignore[arg-type]
    return cs


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.queue: queue.Queue[Event] = queue.Queue()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.queue.put(event)

    def of(self, kind: type[Event]) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, kind: type[Event], timeout: float = 10.0) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.queue.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(event, kind):
                return event
        raise AssertionError(f"no {kind.__name__} within {timeout} s; events: {self.events}")


def engine(sources: ServiceSources, *containers: FakeContainer, rebuild: object = None) -> tuple[ServiceSync, FakeTransport, Recorder]:
    transport = FakeTransport(containers or [FakeContainer("api-1")])
    for c in transport.containers.values():
        c.fs.mkdir("/app/lib")
    events = Recorder()
    return ServiceSync(sources, "feature-x", transport, sink=events, rebuild=rebuild), transport, events  # type: ignore[arg-type]


def test_edit_reaches_the_container_and_restarts_it(make_sources: SourcesFactory) -> None:
    src = make_sources()
    sync, transport, events = engine(src)
    (src.context / "app.py").write_text("print('v2')\n")
    done = sync.handle(changed(("app.py", "modified")))
    assert isinstance(done, SyncDone)
    container = transport.containers["api-1"]
    assert container.fs.read("/app/app.py") == b"print('v2')\n"
    assert container.restarts == 1
    assert (done.result, done.files, done.deleted, done.containers, done.reload) == ("synced", 1, 0, 1, "restart")
    assert done.bytes >= 512 and done.ms >= 0 and done.paths == ("app.py",)
    assert done.message.startswith("api: synced app.py (1 file, ")
    assert "into 1 container, restarted — " in done.message


def test_deletion_removes_the_file(make_sources: SourcesFactory) -> None:
    src = make_sources()
    sync, transport, _ = engine(src)
    fs = transport.containers["api-1"].fs
    sync.handle(changed(("lib/util.py", "modified")))
    assert fs.read("/app/lib/util.py") == b"X = 1\n"
    os.remove(src.context / "lib/util.py")
    done = sync.handle(changed(("lib/util.py", "deleted")))
    assert isinstance(done, SyncDone) and done.deleted == 1
    assert fs.kind("/app/lib/util.py") is None and fs.kind("/app/lib") == "dir"


def test_every_container_of_the_service_gets_the_change(make_sources: SourcesFactory) -> None:
    src = make_sources()
    sync, transport, _ = engine(src, FakeContainer("api-1"), FakeContainer("api-2"))
    done = sync.handle(changed(("app.py", "modified")))
    assert isinstance(done, SyncDone) and done.containers == 2
    assert all(c.fs.read("/app/app.py") == b"print('v1')\n" and c.restarts == 1
               for c in transport.containers.values())


@pytest.mark.parametrize("reload, check", [
    ("{signal: HUP}", lambda c: c.signals == ["SIGHUP"] and c.restarts == 0),
    ("{command: 'touch /tmp/reload'}", lambda c: c.commands == [("touch", "/tmp/reload")]),
    ("none", lambda c: c.restarts == 0 and not c.signals and not c.commands),
])
def test_reload_actions(make_sources: SourcesFactory, reload: str, check: object) -> None:
    sync, transport, _ = engine(make_sources(reload=reload))
    assert isinstance(sync.handle(changed(("app.py", "modified"))), SyncDone)
    assert check(transport.containers["api-1"])  # type: ignore[operator]


def test_failed_sync_is_reported_and_retried_with_the_next_change(make_sources: SourcesFactory) -> None:
    src = make_sources()
    sync, transport, events = engine(src)
    transport.fail_next.append(TransportError("the engine said no"))
    failed = sync.handle(changed(("app.py", "modified")))
    assert isinstance(failed, SyncFailed) and failed.result == "failed"
    assert "the engine said no" in failed.reason and "the next change retries it" in failed.message
    fs = transport.containers["api-1"].fs
    assert fs.read("/app/app.py") is None
    done = sync.handle(changed(("lib/util.py", "modified")))
    assert isinstance(done, SyncDone) and set(done.paths) == {"app.py", "lib/util.py"}
    assert fs.read("/app/app.py") == b"print('v1')\n"


def test_gone_container_is_detected(make_sources: SourcesFactory) -> None:
    sync, transport, _ = engine(make_sources())
    transport.containers.clear()
    failed = sync.handle(changed(("app.py", "modified")))
    assert isinstance(failed, SyncFailed) and failed.result == "gone"
    assert "no container of api in environment feature-x" in failed.reason
    assert "'devmesh up' starts it again" in failed.reason


def test_dead_container_is_gone_but_an_exited_one_is_restarted(make_sources: SourcesFactory) -> None:
    src = make_sources(reload="{signal: HUP}")
    crashed = FakeContainer("api-1", state="exited")
    sync, transport, _ = engine(src, crashed)
    done = sync.handle(changed(("app.py", "modified")))
    assert isinstance(done, SyncDone)
    assert crashed.restarts == 1 and crashed.signals == []  # started, not signalled
    crashed.state = "dead"
    failed = sync.handle(changed(("app.py", "modified")))
    assert isinstance(failed, SyncFailed) and failed.result == "gone" and "api-1 is dead" in failed.reason


def test_unsafe_link_is_refused_once_and_the_rest_synced(make_sources: SourcesFactory) -> None:
    src = make_sources()
    os.symlink("/etc/passwd", src.context / "passwd")
    sync, transport, events = engine(src)
    done = sync.handle(changed(("passwd", "added"), ("app.py", "modified")))
    assert isinstance(done, SyncDone) and done.files == 1
    refused = events.of(SyncRefused)
    assert len(refused) == 1 and refused[0].path == "passwd"  # type: ignore[attr-defined]
    assert "points outside" in refused[0].message
    assert transport.containers["api-1"].fs.kind("/app/passwd") is None
    assert not sync.pending  # refused paths are not retried


def test_dependency_change_rebuilds_instead_of_syncing(make_sources: SourcesFactory) -> None:
    calls: list[str] = []
    sync, transport, events = engine(make_sources(), rebuild=calls.append)
    done = sync.handle(changed(("requirements.txt", "modified"), ("app.py", "modified")))
    assert calls == ["api"]
    assert isinstance(done, SyncDone) and done.result == "rebuilt"
    assert transport.applied == 0
    step = events.of(Step)[0]
    assert "requirements.txt changed (matches rebuild_on)" in step.message


def test_failed_rebuild_is_retried(make_sources: SourcesFactory) -> None:
    attempts: list[str] = []

    def rebuild(service: str) -> None:
        attempts.append(service)
        if len(attempts) == 1:
            raise DevmeshError("build of api failed at step 3/5 (RUN pip install): exit 1")

    sync, _, _ = engine(make_sources(), rebuild=rebuild)
    failed = sync.handle(changed(("requirements.txt", "modified")))
    assert isinstance(failed, SyncFailed) and "rebuild failed: build of api failed" in failed.reason
    done = sync.handle(changed(("app.py", "modified")))
    assert isinstance(done, SyncDone) and done.result == "rebuilt" and attempts == ["api", "api"]


def test_vanished_files_send_nothing(make_sources: SourcesFactory) -> None:
    src = make_sources()
    sync, transport, events = engine(src)
    (src.context / "tmpfile.py").write_text("x")
    cs = changed(("tmpfile.py", "added"))
    os.remove(src.context / "tmpfile.py")
    cs.add("tmpfile.py", "deleted")
    done = sync.handle(cs)
    assert isinstance(done, SyncDone) and done.deleted == 1 and done.files == 0


# --- live sync with real watchfiles ---------------------------------------------------------


def live(sync: ServiceSync, head: Path | None = None) -> LiveSync:
    guard = HeadGuard(head) if head is not None else None
    running = LiveSync([sync], sink=sync.sink, guard=guard)
    running.start()
    assert running.wait_ready(10), "the watcher did not start"
    return running


def test_live_sync_follows_saves(make_sources: SourcesFactory) -> None:
    src = make_sources()
    sync, transport, events = engine(src)
    running = live(sync)
    try:
        (src.context / "app.py").write_text("print('saved')\n")
        done = events.wait_for(SyncDone)
        assert "app.py" in done.paths  # type: ignore[attr-defined]
        assert transport.containers["api-1"].fs.read("/app/app.py") == b"print('saved')\n"
        (src.context / "lib" / "__pycache__").mkdir()
        (src.context / "lib" / "__pycache__" / "util.cpython-311.pyc").write_bytes(b"\0")
        (src.context / "new").mkdir()
        (src.context / "new" / "mod.py").write_text("Y = 2\n")
        events.wait_for(SyncDone)
        time.sleep(0.3)
        fs = transport.containers["api-1"].fs
        assert fs.read("/app/new/mod.py") == b"Y = 2\n"
        assert fs.kind("/app/lib/__pycache__") is None
    finally:
        running.stop()


def test_a_burst_of_saves_is_one_or_a_few_syncs(make_sources: SourcesFactory) -> None:
    src = make_sources()
    sync, transport, events = engine(src)
    running = live(sync)
    try:
        for i in range(60):  # like a checkout: many files within a few milliseconds
            (src.context / f"gen_{i:02d}.py").write_text(f"N = {i}\n")
        deadline = time.monotonic() + 10
        fs = transport.containers["api-1"].fs
        while time.monotonic() < deadline and fs.read("/app/gen_59.py") is None:
            time.sleep(0.05)
        time.sleep(0.3)
        syncs = events.of(SyncDone)
        assert sum(e.files for e in syncs) >= 60  # type: ignore[attr-defined]
        assert len(syncs) <= 3, [e.message for e in syncs]
        assert all(fs.read(f"/app/gen_{i:02d}.py") == f"N = {i}\n".encode() for i in range(60))
    finally:
        running.stop()


def test_live_sync_stops_when_the_branch_changes(make_sources: SourcesFactory, tmp_path: Path) -> None:
    head = tmp_path / "HEAD"
    head.write_text("ref: refs/heads/feature-x\n")
    src = make_sources()
    sync, transport, events = engine(src)
    running = live(sync, head)
    try:
        head.write_text("ref: refs/heads/other\n")
        (src.context / "app.py").write_text("print('other branch')\n")
        stopped = events.wait_for(SyncFailed)
        assert stopped.result == "stopped"  # type: ignore[attr-defined]
        assert "branch changed (now other)" in stopped.message
        assert running.wait(5)
        assert transport.containers["api-1"].fs.read("/app/app.py") is None
    finally:
        running.stop()
