"""Live sync into the docker runtime's containers (see devmesh.sync.transport).

The tar of a sync goes through the engine's archive API (``put_archive`` at ``/``), which needs
nothing inside the container; deletions run the guarded delete script through exec
(``DockerExec``, the runtime's ``ExecChannel``), which needs ``sh`` and ``rm`` there.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, Literal

import docker
import docker.errors
import requests.exceptions
from docker.utils.socket import frames_iter

from devmesh.plan.envoy import cluster_name
from devmesh.plan.routing import Backend
from devmesh.runtime.docker.envoy import EnvoyMesh
from devmesh.sync.archive import Archive
from devmesh.sync.changes import Deletion
from devmesh.plan.supervisor import RELOAD_SIGNAL, SUPERVISED_LABEL
from devmesh.sync.reload import wait_drained
from devmesh.sync.transport import ExecResult, ExecTransport, Target, TargetGone, TransportError

if TYPE_CHECKING:
    from devmesh.runtime.docker.app import DockerApp


ENGINE_ERRORS: tuple[type[BaseException], ...] = (
    docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def _translate(exc: BaseException, target: Target) -> TransportError:
    if isinstance(exc, docker.errors.NotFound):
        return TargetGone(f"container {target.name} is gone")
    if isinstance(exc, docker.errors.APIError):
        text = str(exc.explanation or exc)
        if exc.status_code == 409 or "is not running" in text or "is restarting" in text:
            return TargetGone(f"container {target.name} is not running ({text})")
        return TransportError(f"the Docker engine refused the sync into {target.name}: {text}")
    return TransportError(f"cannot reach the Docker engine: {exc}")


def _raw(sock: Any) -> socket.socket:
    return getattr(sock, "_sock", sock)  # type: ignore[no-any-return]


class DockerExec:
    """ExecChannel over the Docker engine's exec API (stdin through the attach socket)."""

    def __init__(self, client: docker.DockerClient, runtime: DockerApp, *, stop_timeout: int = 2) -> None:
        self.client = client
        self.runtime = runtime
        self.stop_timeout = stop_timeout
        self._supervised: set[str] = set()  # containers running devmesh's supervisor
        self._admin: str | None = None  # Envoy's admin URL, once found

    def targets(self, env: str, service: str) -> list[Target]:
        found = self.runtime.service_containers(env, service)
        self._supervised |= {str(c.id) for c in found if c.labels.get(SUPERVISED_LABEL)}
        return [Target(str(c.id), str(c.name), service, env, c.status) for c in found]

    def exec(self, target: Target, argv: Sequence[str], stdin: IO[bytes] | None = None) -> ExecResult:
        api = self.client.api
        try:
            exec_id = api.exec_create(target.id, list(argv), stdin=stdin is not None)["Id"]
            sock = api.exec_start(exec_id, socket=True)
            try:
                raw = _raw(sock)
                if stdin is not None:
                    while chunk := stdin.read(1 << 16):
                        raw.sendall(chunk)
                    raw.shutdown(socket.SHUT_WR)
                output = b"".join(data for _, data in frames_iter(sock, tty=False))  # type: ignore[no-untyped-call]
            finally:
                sock.close()
            code = api.exec_inspect(exec_id).get("ExitCode")
        except ENGINE_ERRORS as exc:
            raise _translate(exc, target) from exc
        return ExecResult(int(code) if code is not None else -1, output.decode(errors="replace"))

    def restart(self, target: Target) -> None:
        """Run the service's command again: in place under devmesh's supervisor (the container
        stays), else by restarting the container."""
        api = self.client.api
        try:
            if target.id in self._supervised:
                self._drain(target)
                api.kill(target.id, signal=RELOAD_SIGNAL)
            else:
                api.restart(target.id, timeout=self.stop_timeout)
        except ENGINE_ERRORS as exc:
            raise _translate(exc, target) from exc

    def _drain(self, target: Target) -> None:
        """Before a reload in place: wait (up to the grace period) until Envoy has an answer to
        every request it sent to this container, so that none is cut off by the reload."""
        if not isinstance(self.runtime, EnvoyMesh):
            return
        cluster = cluster_name(Backend(target.service, target.env))
        url = self._admin
        active = self.runtime.active_requests(url, cluster) if url else None
        if url is None or active is None:  # not found yet, or Envoy was made again (another port)
            url = self._admin = self.runtime.envoy_admin_url()
            if url is None:
                return
            active = self.runtime.active_requests(url, cluster)
        if active is None:  # Envoy knows no such cluster
            return
        runtime = self.runtime
        wait_drained(lambda: runtime.active_requests(url, cluster), interval=0.01, first=active)


class DockerTransport:
    """The docker runtime's transport: archive API for the tar, exec for deletions."""

    name = "docker"

    def __init__(self, runtime: DockerApp, *, mode: Literal["archive", "exec"] = "archive",
                 stop_timeout: int = 2) -> None:
        self.runtime = runtime
        self.client = runtime.client
        self.mode = mode
        self.channel = DockerExec(self.client, runtime, stop_timeout=stop_timeout)
        self.exec_transport = ExecTransport(self.channel)

    def targets(self, env: str, service: str) -> list[Target]:
        return self.channel.targets(env, service)

    def apply(self, target: Target, archive: Archive | None, deletions: Sequence[Deletion]) -> None:
        if self.mode == "exec":
            self.exec_transport.apply(target, archive, deletions)
            return
        if deletions:
            self.exec_transport.apply(target, None, deletions)
        if archive is not None:
            try:
                # At "/", which always exists (the archive API answers 404 for a missing
                # folder); member names carry the full path and parents are created.
                self.client.api.put_archive(target.id, "/", archive.read_all())
            except ENGINE_ERRORS as exc:
                raise _translate(exc, target) from exc

    def restart(self, target: Target) -> None:
        self.channel.restart(target)

    def signal(self, target: Target, signal: str) -> None:
        try:
            self.client.api.kill(target.id, signal=signal)
        except ENGINE_ERRORS as exc:
            raise _translate(exc, target) from exc

    def run(self, target: Target, argv: Sequence[str]) -> None:
        self.exec_transport.run(target, argv)
