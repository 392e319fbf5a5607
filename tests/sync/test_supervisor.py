"""devmesh's supervisor script (devmesh.plan.supervisor), run by the shells of this machine."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devmesh.plan.supervisor import RELOAD_SIGNAL, SCRIPT

SHELLS = [s for s in ("dash", "bash", "busybox") if shutil.which(s)]
# A child that says who it is, and notes the signals an app may handle itself.
CHILD = """
import os, signal, sys, time
out = sys.argv[1]
open(out + '/pid', 'w').write(str(os.getpid()))
signal.signal(signal.SIGUSR1, lambda *_: open(out + '/usr1', 'a').write(str(os.getpid()) + '\\n'))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
code = open(out + '/exit').read() if os.path.exists(out + '/exit') else ''
if code:
    sys.exit(int(code))
while True:
    time.sleep(1)
"""


def until(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


@pytest.fixture(params=SHELLS or [pytest.param("none", marks=pytest.mark.skip(reason="no POSIX shell here"))])
def supervise(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    script = tmp_path / "supervise"
    script.write_text(SCRIPT)
    (tmp_path / "child.py").write_text(CHILD)
    started: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        shell = [request.param, "sh"] if request.param == "busybox" else [request.param]
        proc = subprocess.Popen([*shell, str(script), sys.executable, str(tmp_path / "child.py"), str(tmp_path)],
                                stderr=subprocess.PIPE, text=True, env={"PATH": "/usr/bin:/bin", "DEVMESH_RELOAD_GRACE": "2"})
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def pid(tmp_path: Path) -> str:
    path = tmp_path / "pid"
    return path.read_text() if path.exists() else ""


def alive(process_id: str) -> bool:
    """Whether the process runs; "" (its pid file is being written) is no process yet."""
    if not process_id.strip():
        return False
    try:
        return "zombie" not in Path(f"/proc/{process_id.strip()}/status").read_text()
    except FileNotFoundError:  # it has exited, or exits as we look
        return False


def test_a_reload_runs_the_command_again_and_other_signals_reach_it(
        supervise: Callable[[], subprocess.Popen[str]], tmp_path: Path) -> None:
    proc = supervise()
    until(lambda: pid(tmp_path) != "", "the first run")
    first = pid(tmp_path)
    proc.send_signal(signal.SIGUSR1)
    until(lambda: (tmp_path / "usr1").exists(), "SIGUSR1 passed on")
    assert (tmp_path / "usr1").read_text() == f"{first}\n" and pid(tmp_path) == first
    proc.send_signal(RELOAD_SIGNAL)
    until(lambda: pid(tmp_path) not in ("", first), "the second run")
    assert not alive(first) and proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    assert not alive(pid(tmp_path))


def test_a_command_that_exits_at_once_ends_the_supervisor_with_its_status(
        supervise: Callable[[], subprocess.Popen[str]], tmp_path: Path) -> None:
    (tmp_path / "exit").write_text("3")
    assert supervise().wait(timeout=10) == 3


def test_a_command_that_exits_after_a_reload_waits_for_the_next(
        supervise: Callable[[], subprocess.Popen[str]], tmp_path: Path) -> None:
    proc = supervise()
    until(lambda: pid(tmp_path) != "", "the first run")
    first = pid(tmp_path)
    (tmp_path / "exit").write_text("1")  # the next run fails, as code with a syntax error does
    proc.send_signal(RELOAD_SIGNAL)
    until(lambda: pid(tmp_path) != first, "the failing run")
    time.sleep(1.5)  # the supervisor looks at its child at least once a second
    assert proc.poll() is None  # still there, for the next sync
    (tmp_path / "exit").unlink()
    failing = pid(tmp_path)
    proc.send_signal(RELOAD_SIGNAL)
    until(lambda: pid(tmp_path) != failing and alive(pid(tmp_path)), "the run after the fix")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143
    assert proc.stderr is not None
    assert "exited with status 1; waiting for the next sync to run it again" in proc.stderr.read()
