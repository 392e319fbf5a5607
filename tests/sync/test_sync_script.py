"""The sync command's signal after the files, in a real container of the test base image:
its PID 1 gets the signal when the change set applied, and nothing when it failed."""

from __future__ import annotations

import io
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath

import pytest

from devmesh.sync.changes import Deletion
from devmesh.sync.transport import SIGNAL_FAILED, script_argv
from tests.docker_env import BASE_IMAGE

# PID 1 of the container: says which signal reached it, and keeps running.
MAIN = ("trap 'echo got HUP' HUP; trap 'echo got 37' 37; "
        "while :; do sleep 0.05; done")


def _tar(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        member = tarfile.TarInfo(name)
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture
def container(docker_engine: None) -> Iterator[str]:
    name = f"devmesh-test-script-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--name", name, BASE_IMAGE, "sh", "-c", MAIN],
                   check=True, capture_output=True, timeout=60)
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)


def _run(container: str, argv: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["docker", "exec", "-i", container, *argv], input=stdin, capture_output=True,
                          timeout=60)


def _logs(container: str, wanted: str | None = None) -> str:
    deadline = time.monotonic() + 5
    while True:
        out = subprocess.run(["docker", "logs", container], capture_output=True, text=True, timeout=30).stdout
        if wanted is None or wanted in out or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


@pytest.mark.docker
@pytest.mark.parametrize("signal", ["HUP", "37"])
def test_the_signal_follows_the_files(container: str, signal: str) -> None:
    done = _run(container, script_argv([], True, signal), _tar("srv/app.py", b"X = 2\n"))
    assert done.returncode == 0, done.stderr
    assert _run(container, ["cat", "/srv/app.py"]).stdout == b"X = 2\n"
    assert _logs(container, f"got {signal}").splitlines() == [f"got {signal}"]


@pytest.mark.docker
def test_a_change_set_that_fails_sends_no_signal(container: str) -> None:
    _run(container, ["sh", "-c", "mkdir -p /srv/real && ln -s /etc /srv/app"])
    refused = _run(container, script_argv([Deletion(PurePosixPath("/srv/app/passwd"), PurePosixPath("/srv"))], False, "HUP"))
    assert refused.returncode == 3 and b"symbolic link" in refused.stderr
    broken = _run(container, script_argv([], True, "HUP"), b"not a tar archive")
    assert broken.returncode == 1
    time.sleep(0.3)
    assert _logs(container) == ""


@pytest.mark.docker
def test_a_signal_that_cannot_be_sent_is_its_own_status(container: str) -> None:
    done = _run(container, script_argv([], True, "NOSUCHSIGNAL"), _tar("srv/app.py", b"X = 3\n"))
    assert done.returncode == SIGNAL_FAILED
    assert _run(container, ["cat", "/srv/app.py"]).stdout == b"X = 3\n"  # the files did arrive
