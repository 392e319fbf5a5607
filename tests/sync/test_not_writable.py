"""A sync target the container cannot write: what real tar and rm print (busybox's in the test
base image, GNU tar and coreutils on this machine), read into one line that names the path and
why (the kind runtime's exec runs as the container's user)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from devmesh.config import load_project
from devmesh.sync.changes import ChangeSet
from devmesh.sync.engine import ServiceSync
from devmesh.sync.events import SyncFailed
from devmesh.sync.rules import ServiceSources
from devmesh.sync.transport import DELETE_SCRIPT, ExecResult, NotWritable, Target, _failure
from tests.conftest import ProjectFactory
from tests.docker_env import BASE_IMAGE

TARGET = Target("c1", "api-one", "api", "one", "running")


def _tar(name: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        data = b"X = 2\n"
        member = tarfile.TarInfo(name)
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return out.getvalue()


def _in_container(*flags: str, stdin: bytes, mode: str = "tar", pairs: tuple[str, ...] = ()) -> ExecResult:
    """DELETE_SCRIPT in a real container of the test base image (GNU tar, coreutils rm)."""
    done = subprocess.run(["docker", "run", "--rm", "-i", *flags, BASE_IMAGE,
                           "sh", "-c", DELETE_SCRIPT, "devmesh-sync", mode, "-", *pairs],
                          input=stdin, capture_output=True, timeout=120)
    return ExecResult(done.returncode, (done.stdout + done.stderr).decode())


@pytest.mark.docker
def test_a_folder_the_containers_user_cannot_write(docker_engine: None) -> None:
    result = _in_container("--user", "65534", stdin=_tar("usr/local/lib/app.py"))
    refused = _failure("applying the change set", TARGET, result)
    assert isinstance(refused, NotWritable), result.output
    assert str(refused) == ("the user api-one runs as cannot write /usr/local (Permission "
                            "denied): the synced folder must belong to that user")


@pytest.mark.docker
def test_a_file_the_containers_user_cannot_remove(docker_engine: None) -> None:
    result = _in_container("--user", "65534", stdin=b"", mode="-", pairs=("/etc", "/etc/passwd"))
    refused = _failure("applying the change set", TARGET, result)
    assert isinstance(refused, NotWritable), result.output
    assert refused.path == "/etc/passwd" and refused.why == "Permission denied"


@pytest.mark.docker
def test_a_read_only_root_file_system(docker_engine: None) -> None:
    result = _in_container("--read-only", stdin=_tar("srv/app.py"))
    refused = _failure("applying the change set", TARGET, result)
    assert isinstance(refused, NotWritable), result.output
    assert str(refused) == ("api-one's file system is read-only at /srv: a sync target must be "
                            "writable (a read-only root file system needs a writable volume there)")


def _as_nobody(mode: str, *pairs: str, stdin: bytes = b"") -> ExecResult:
    done = subprocess.run(["runuser", "-u", "nobody", "--", "sh", "-c", DELETE_SCRIPT, "devmesh-sync", mode, "-", *pairs],
                          input=stdin, capture_output=True, timeout=60)
    return ExecResult(done.returncode, (done.stdout + done.stderr).decode())


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the script as another user, which needs root")
def test_gnu_tar_and_coreutils_rm_refused_by_the_user(tmp_path: Path) -> None:
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "old.py").write_text("X = 1\n")
    tmp_path.chmod(0o755)
    for result, path in ((_as_nobody("tar", stdin=_tar(f"{str(folder).lstrip('/')}/app.py")), folder / "app.py"),
                         (_as_nobody("-", str(folder), str(folder / "old.py")), folder / "old.py")):
        refused = _failure("applying the change set", TARGET, result)
        assert isinstance(refused, NotWritable), result.output
        assert (refused.path, refused.why) == (str(path), "Permission denied"), result.output


class Refusing:
    name = "fake"

    def targets(self, env: str, service: str) -> list[Target]:
        return [TARGET]

    def apply(self, target: Target, archive: object, deletions: object) -> None:
        raise NotWritable("the user api-one runs as cannot write /app/app.py (Permission denied): "
                          "the synced folder must belong to that user", path="/app/app.py",
                          why="Permission denied")

    def restart(self, target: Target) -> None: ...

    def signal(self, target: Target, signal: str) -> None: ...

    def run(self, target: Target, argv: object) -> None: ...


def _engine(make_project: ProjectFactory, dockerfile: str) -> ServiceSync:
    root = make_project(extra={"services/api/Dockerfile": dockerfile})
    sources = ServiceSources.of(load_project(root / "devmesh.yaml"), "api")
    return ServiceSync(sources, "one", Refusing(), sink=lambda event: None)


def _modified(path: str) -> ChangeSet:
    changes = ChangeSet()
    changes.add(path, "modified")
    return changes


def test_the_failure_says_what_the_dockerfile_can_do(make_project: ProjectFactory) -> None:
    engine = _engine(make_project, "FROM debian:bookworm-slim\nRUN useradd app\nUSER app\n"
                                   "WORKDIR /app\nCOPY . /app\nCMD [\"python3\", \"app.py\"]\n")
    failed = engine.handle(_modified("app.py"))
    assert isinstance(failed, SyncFailed)
    assert failed.reason == (
        "the user api-one runs as cannot write /app/app.py (Permission denied): the synced folder "
        "must belong to that user; services/api/Dockerfile runs the service as app (USER) and its "
        "COPY (services/api/Dockerfile:5) leaves the files to root: COPY --chown=app makes them theirs")


def test_without_a_user_in_the_dockerfile_the_rule_is_named(make_project: ProjectFactory) -> None:
    engine = _engine(make_project, "FROM debian:bookworm-slim\nCOPY . /app\nCMD [\"python3\", \"/app/app.py\"]\n")
    failed = engine.handle(_modified("app.py"))
    assert isinstance(failed, SyncFailed)
    assert failed.reason.endswith("; give the files of the sync rule (services/api/Dockerfile:2) to "
                                  "the container's user (COPY --chown=…)")
