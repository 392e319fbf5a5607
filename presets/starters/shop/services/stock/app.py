"""stock: what is on the shelf. The end of the chain: it calls nothing."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "stock"
VERSION = os.environ.get("SHOP_VERSION", "v1")
ENV = os.environ.get("DEVMESH_ENV")  # set by devmesh: which environment runs this copy
HEADER = os.environ.get("DEVMESH_HEADER", "x-devmesh-env")
ITEMS = {"apple": 12, "pear": 3}


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
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # keep the connection in step
        route = self.headers.get(HEADER)
        if self.path == "/healthz":
            status, reply = 200, {"service": SERVICE, "ok": True}
        elif self.path.split("?")[0] == "/":
            status = 200
            reply = {"service": SERVICE, "version": VERSION, "env": ENV, "method": self.command,
                     "header": route, "items": ITEMS}
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
