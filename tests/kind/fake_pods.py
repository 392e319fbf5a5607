"""Exec into the fake cluster's pods that does what the container would: an ``ExecHandler``
for ``FakeCluster`` keeping one in-memory file system per pod.

- the sync command (the guarded delete script with a tar on stdin) removes the listed paths
  and extracts the tar, with the rules of ``tests.sync.container_model`` (a deletion through a
  symbolic link is refused with the script's status 3);
- ``kill -s SIG 1`` records the signal sent to the pod's main process;
- any other command is recorded and succeeds (or answers from ``replies``).

A pod replaced by the Deployment controller has another name, so it starts with an empty file
system — as a new container starts from its image, without what was synced into the old one.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field

from devmesh.runtime.kind.client import ExecResult
from devmesh.sync.transport import DELETE_SCRIPT, TransportError
from tests.kind.fake_cluster import ExecCall
from tests.sync.container_model import ContainerFS


@dataclass
class PodFiles:
    """What each pod's container holds and what was done to it, by pod name."""

    fs: dict[str, ContainerFS] = field(default_factory=dict)
    signals: dict[str, list[str]] = field(default_factory=dict)
    commands: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    replies: dict[tuple[str, ...], ExecResult] = field(default_factory=dict)

    def of(self, pod: str) -> ContainerFS:
        return self.fs.setdefault(pod, ContainerFS())

    def __call__(self, call: ExecCall) -> ExecResult:
        argv = call.command
        if argv[:2] == ("sh", "-c") and len(argv) >= 5 and argv[3] == "devmesh-sync":
            if argv[2] != DELETE_SCRIPT:
                return ExecResult(2, b"", b"sh: an unknown script\n")
            return self._sync(call.pod, argv[4], argv[5:], call.stdin)
        self.commands.setdefault(call.pod, []).append(argv)
        if len(argv) == 4 and argv[:2] == ("kill", "-s") and argv[3] == "1":
            self.signals.setdefault(call.pod, []).append(argv[2])
            return ExecResult(0, b"", b"")
        return self.replies.get(argv, ExecResult(0, b"", b""))

    def _sync(self, pod: str, mode: str, pairs: tuple[str, ...], stdin: bytes | None) -> ExecResult:
        fs = self.of(pod)
        status, errors = 0, []
        for dest, path in zip(pairs[::2], pairs[1::2]):
            if not fs.delete(dest, path):
                errors.append(f"not removing {path}: a symbolic link in the container")
                status = 3
        if mode == "tar":
            if stdin is None:
                return ExecResult(1, b"", b"tar: short read\n")
            try:
                fs.extract(stdin)
            except (TransportError, tarfile.TarError) as exc:
                errors.append(f"tar: {exc}")
                status = 1
        return ExecResult(status, b"", "".join(f"{e}\n" for e in errors).encode())
