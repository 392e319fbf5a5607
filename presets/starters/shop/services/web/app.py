"""web: the shop's front door. Calls api and shows what it answered."""

import json
import os
import signal
import sys
import urllib.error
import urllib.request
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "web"
VERSION = os.environ.get("SHOP_VERSION", "v1")
ENV = os.environ.get("DEVMESH_ENV")  # set by devmesh: which environment runs this copy
HEADER = os.environ.get("DEVMESH_HEADER", "x-devmesh-env")
REQUEST_ID = "x-request-id"  # the mesh gives each request one at the gateway
API_URL = os.environ.get("API_URL", "http://api:8000").rstrip("/")


def call(url: str, method: str, incoming: Message, body: bytes | None) -> dict:
    """Call a downstream service, passing the routing header and the request id on."""
    request = urllib.request.Request(url, data=body, method=method)
    # Every app in the mesh must do this: copy the routing header from the incoming request
    # onto each outgoing one, or the next hop falls back to the baseline version; and copy
    # x-request-id, or 'devmesh traffic' cannot tell which request this call belongs to.
    for name in (HEADER, REQUEST_ID):
        value = incoming.get(name)
        if value:
            request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"{}")  # a HEAD reply has no body
    except urllib.error.HTTPError as exc:  # it answered, with an error: show what it said
        return {"error": f"{method} {url}: HTTP {exc.code}", "reply": exc.read().decode(errors="replace")}
    except (OSError, ValueError) as exc:
        return {"error": f"{method} {url}: {exc}"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so every reply needs a Content-Length
    disable_nagle_algorithm = True  # otherwise reused connections stall ~40 ms behind Envoy

    def do_GET(self) -> None:
        self.answer()

    def do_HEAD(self) -> None:
        self.answer()

    def do_POST(self) -> None:
        self.answer()

    def answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = self.headers.get(HEADER)
        if self.path == "/healthz":
            status, reply = 200, {"service": SERVICE, "ok": True}
        elif self.path.split("?")[0] == "/":
            api = call(API_URL + "/", self.command, self.headers, body or None)
            status = 502 if "error" in api else 200
            reply = {"service": SERVICE, "version": VERSION, "env": ENV, "method": self.command,
                     "header": route, "api": api}
        else:
            status, reply = 404, {"service": SERVICE, "error": f"no route for {self.path}"}
        data = json.dumps(reply).encode() + b"\n"
        # Log before answering, so the line is out even if the caller stops us right after.
        print(f"{SERVICE} {self.command} {self.path} {HEADER}={route or '-'} {status}", flush=True)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass  # answer() logs one line per request to stdout instead


def main() -> None:
    # As PID 1 in a container, Python would ignore SIGTERM and every stop would take 10 s.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # devmesh's live sync sends SIGHUP after copying saved files in (reload: {signal: HUP}):
    # the process replaces itself with a fresh interpreter that runs the new code, in the same
    # container, which is several times faster than restarting the container.
    signal.signal(signal.SIGHUP, lambda *_: os.execv(sys.executable, [sys.executable, *sys.argv]))
    host = os.environ.get("LISTEN_HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    server = ThreadingHTTPServer((host, port), Handler)
    print(f"{SERVICE} {VERSION} listening on {host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
