"""Exec into the fake cluster's pods that does what the container would: an ``ExecHandler``
for ``FakeCluster`` keeping one in-memory file system per pod.

- the sync command (the guarded delete script with a tar on stdin) removes the listed paths
  and extracts the tar, with the rules of ``tests.sync.container_model`` (a deletion through a
  symbolic link is refused with the script's status 3);
- ``kill -s SIG 1`` records the signal sent to the pod's main process, and so do the shell's
  ``kill -SIG 1`` (devmesh's supervisor reload) and the sync command's signal after the files;
- the sidecar's ``pilot-agent request GET stats?…`` answers Envoy's count of requests in
  flight to the container (``in_flight``: one count per query, the last one kept);
- any other command is recorded and succeeds (or answers from ``replies``).

A pod replaced by the Deployment controller has another name, so it starts with an empty file
system — as a new container starts from its image, without what was synced into the old one.
"""

from __future__ import annotations

import re
import tarfile
import urllib.parse
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
    in_flight: dict[str, list[int]] = field(default_factory=dict)
    ports: tuple[int, ...] = (8000,)  # the inbound ports the sidecar has clusters for

    def of(self, pod: str) -> ContainerFS:
        return self.fs.setdefault(pod, ContainerFS())

    def __call__(self, call: ExecCall) -> ExecResult:
        argv = call.command
        if argv[:2] == ("sh", "-c") and len(argv) >= 6 and argv[3] == "devmesh-sync":
            if argv[2] != DELETE_SCRIPT:
                return ExecResult(2, b"", b"sh: an unknown script\n")
            done = self._sync(call.pod, argv[4], argv[6:], call.stdin)
            if done.exit_code == 0 and argv[5] != "-":  # then the signal to the main process
                self.signals.setdefault(call.pod, []).append(argv[5])
            return done
        self.commands.setdefault(call.pod, []).append(argv)
        if len(argv) == 4 and argv[:2] == ("kill", "-s") and argv[3] == "1":
            self.signals.setdefault(call.pod, []).append(argv[2])
            return ExecResult(0, b"", b"")
        shell_kill = re.fullmatch(r"kill -(\w+) 1", argv[2]) if argv[:2] == ("/bin/sh", "-c") else None
        if shell_kill:
            self.signals.setdefault(call.pod, []).append(shell_kill[1])
            return ExecResult(0, b"", b"")
        if call.container == "istio-proxy" and argv[:3] == ("pilot-agent", "request", "GET"):
            # Envoy's admin: /stats?filter=<regex over stat names>, one "name: value" a line.
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(argv[3]).query)
            counts = self.in_flight.get(call.pod) or [0]
            count = counts.pop(0) if len(counts) > 1 else counts[0]
            # as Istio's sidecar names them (";" separates what its stats tags extract)
            stats = {f"cluster.inbound|{port}||;.upstream_rq_active": count for port in self.ports}
            stats["cluster.xds-grpc;.upstream_rq_active"] = 1
            pattern = re.compile(query.get("filter", [""])[0])
            line = "".join(f"{k}: {v}\n" for k, v in stats.items() if pattern.search(k))
            return ExecResult(0, line.encode(), b"")
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
