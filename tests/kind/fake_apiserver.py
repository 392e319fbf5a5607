"""A tiny Kubernetes API server over HTTP on 127.0.0.1, backed by ``FakeCluster``, plus a
kubeconfig pointing at it — so the real ``KubeClient`` (and the kubernetes client inside it)
runs against HTTP, as lightkube's tests do. It records every request it gets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from devmesh.runtime.kind.client import RESOURCES, ClusterError
from tests.kind.fake_cluster import FakeCluster

TOKEN = "devmesh-test-token"
_BY_PLURAL = {(r.api_version, r.plural): r for r in RESOURCES.values()}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any = None


@dataclass
class FakeApiServer:
    cluster: FakeCluster
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""


def _route(path: str) -> tuple[Any, str | None, str | None, str | None]:
    """(resource, namespace, name, subresource) of an API path."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[:2] == ["api", "v1"]:
        version, rest = "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise KeyError(path)
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    res = _BY_PLURAL[(version, rest[0])]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return res, namespace, name, sub


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeApiServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, status: int, message: str, reason: str) -> None:
        self._send(status, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "message": message, "reason": reason, "code": status})

    def _handle(self, method: str) -> None:
        state = self.server_state
        url = urlparse(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        state.requests.append(Recorded(method, url.path, query, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._status(401, "Unauthorized", "Unauthorized")
            return
        if url.path == "/version":
            self._send(200, {"gitVersion": state.cluster.version})
            return
        try:
            res, namespace, name, sub = _route(url.path)
        except (KeyError, IndexError):
            self._status(404, f"the server could not find the requested resource ({url.path})", "NotFound")
            return
        cluster = state.cluster
        try:
            if method == "GET" and sub == "log":
                self._logs(namespace or "", name or "", query)
            elif method == "GET" and name:
                found = cluster.get(res.api_version, res.kind, name, namespace)
                if found is None:
                    self._status(404, f'{res.plural} "{name}" not found', "NotFound")
                else:
                    self._send(200, found)
            elif method == "GET":
                items = cluster.list(res.api_version, res.kind, namespace=namespace,
                                     selector=query.get("labelSelector", [""])[0])
                for item in items:  # as the API does: no kind or apiVersion per item
                    item.pop("kind", None)
                    item.pop("apiVersion", None)
                self._send(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version, "items": items})
            elif method == "PATCH":
                if self.headers.get("Content-Type") != "application/apply-patch+yaml":
                    self._status(415, "only server-side apply is served here", "UnsupportedMediaType")
                    return
                manager = query.get("fieldManager", [""])[0]
                if not manager:
                    self._status(422, "fieldManager is required for apply requests", "Invalid")
                    return
                force = query.get("force", ["false"])[0] == "true"
                stored = cluster.write(body or {}, manager=manager, force=force, operation="Apply")
                self._send(200, stored)
            elif method == "DELETE":
                if cluster.delete(res.api_version, res.kind, name or "", namespace):
                    self._send(200, {"kind": "Status", "status": "Success"})
                else:
                    self._status(404, f'{res.plural} "{name}" not found', "NotFound")
            else:
                self._status(405, "method not allowed", "MethodNotAllowed")
        except ClusterError as exc:
            self._status(exc.status or 500, str(exc), exc.reason or "InternalError")

    def _logs(self, namespace: str, pod: str, query: dict[str, list[str]]) -> None:
        cluster = self.server_state.cluster
        tail = query.get("tailLines", [None])[0]
        lines = cluster.pod_logs(namespace, pod, container=query.get("container", [""])[0],
                                 follow=query.get("follow", ["false"])[0] == "true",
                                 tail=int(tail) if tail is not None else None,
                                 previous=query.get("previous", ["false"])[0] == "true",
                                 timestamps=query.get("timestamps", ["false"])[0] == "true")
        first = next(lines, None)  # errors (no such pod) before the status line
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for line in ([first] if first is not None else []):
                self._chunk(line.encode() + b"\n")
            for line in lines:
                # Split a line over two chunks: the client must join them.
                data = line.encode() + b"\n"
                self._chunk(data[:5])
                self._chunk(data[5:])
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self._handle("GET")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


@contextmanager
def serve(cluster: FakeCluster) -> Iterator[FakeApiServer]:
    state = FakeApiServer(cluster)
    handler = type("Handler", (_Handler,), {"server_state": state, "protocol_version": "HTTP/1.1"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def write_kubeconfig(path: Path, url: str, context: str = "fake") -> Path:
    import yaml

    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": context, "user": {"token": TOKEN}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
    }))
    return path
