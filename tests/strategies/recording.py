"""Backends for the Envoy tests of strategies: like the harness's echo servers, but they record
every request (mirrored copies included), answer HEAD and POST, and can be told to fail or to
be slow, so retries, timeouts, circuit breaking and outlier detection can be watched."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devmesh.plan.envoy import cluster_name
from devmesh.plan.routing import Backend


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Behaviour:
    fail_next: int = 0  # answer this many requests with 503, then 200
    status: int = 200  # the answer after that
    delay: float = 0.0  # seconds before answering
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        server: _Server = self.server  # type: ignore[assignment]
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        b = server.behaviour
        with b.lock:
            b.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            failing = b.fail_next > 0
            if failing:
                b.fail_next -= 1
        if b.delay:
            time.sleep(b.delay)
        status = 503 if failing else b.status
        body = json.dumps({"backend": server.identity, "method": self.command}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    identity = ""
    behaviour: Behaviour

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # Envoy hung up first (a timeout under test): nothing to report


class RecordingBackends:
    """A drop-in for the harness's ``EchoBackends`` (``address_of``, ``serving``, ``stop_all``)."""

    def __init__(self) -> None:
        self._servers: dict[Backend, _Server] = {}
        self.behaviour: dict[str, Behaviour] = {}

    def address_of(self, backend: Backend) -> tuple[str, int]:
        if backend not in self._servers:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.identity = cluster_name(backend)
            server.behaviour = self.behaviour.setdefault(server.identity, Behaviour())
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                             daemon=True).start()
            self._servers[backend] = server
        return ("127.0.0.1", int(self._servers[backend].server_address[1]))

    def serving(self) -> list[Backend]:
        """The backends whose servers run now."""
        return list(self._servers)

    def of(self, name: str) -> Behaviour:
        """The behaviour (and the record) of backend ``<service>.<env>``."""
        return self.behaviour.setdefault(name, Behaviour())

    def stop_all(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()
