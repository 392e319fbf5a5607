"""Live sync latency: from a file's write to the first response served by the new code.

    python benchmarks/sync_latency.py [--edits 20] [--rebuilds 5] [--transport archive|exec]

Runs the shop starter on the docker runtime (real engine, real Envoy; the local test images
from .ci/build-images), forks ``api`` on a branch and starts live sync in this process. Each
edit rewrites ``api``'s price table in ``services/api/app.py`` with a new value, then polls the
preview URL (web → api → stock through Envoy) until the answer carries that value.

Two reload actions are timed: ``restart`` (the python-web preset's default: devmesh's
supervisor runs the command again in the same container, with no help from the app) and
``{signal: HUP}`` for an app that re-executes itself on SIGHUP (the benchmark's
copy of ``api`` gets that handler), which keeps the container and its network up. The poller
gives up on a request after 100 ms and asks again: a request that arrives while a container
restarts waits for Envoy's connect timeout instead (reported separately, as the in-flight
stall). The same figure is then taken for a full rebuild and redeploy of ``api`` (what
``devmesh up`` does after the same one-file edit: content-tagged build, new container, Envoy
readiness), and set beside the live sync figures as a ratio. The transports are compared as
well: the tar stream through the engine's archive API against exec with stdin, and the cost of
a deletion.

The floor of a reload is measured in the same run: the tar into the container (archive API)
plus a cold start of the image's own command in the running container (to its first accepted
connection), and the supervised restart is set against it and against the targets (median
≤ 250 ms, ≤ 2× the floor, ≤ 0.25× a rebuild).

Nothing is asserted: the figures are for people (on a busy machine they vary; run it alone).
Everything created (containers, network, images, the temporary project) is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devmesh.events import Event  # noqa: E402

BASE_IMAGE = os.environ.get("DEVMESH_TEST_BASE_IMAGE", "devmesh/python-base:bookworm")
ENVOY_IMAGE = os.environ.get("DEVMESH_TEST_ENVOY_IMAGE", "devmesh/envoy:test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"})


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _summary(values: Sequence[float]) -> str:
    return (f"median {statistics.median(values) * 1000:7.0f} ms   p95 {_p95(values) * 1000:7.0f} ms   "
            f"min {min(values) * 1000:6.0f} ms   max {max(values) * 1000:6.0f} ms   (n={len(values)})")


POLL_TIMEOUT = 0.1

def _apple(port: int, host: str, timeout: float = POLL_TIMEOUT) -> float | None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    prices = body.get("api", {}).get("prices") if isinstance(body.get("api"), dict) else None
    return prices.get("apple") if isinstance(prices, dict) else None


def _wait_for_apple(port: int, host: str, value: float, timeout: float = 120.0) -> float:
    """Poll until the preview answers with ``value``; the moment it did (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if _apple(port, host) == value:
            return time.perf_counter()
        time.sleep(0.005)
    raise RuntimeError(f"the preview did not answer with apple={value} within {timeout} s")


def _set_apple(app_py: Path, value: float) -> None:
    text = app_py.read_text()
    start = text.index("PRICES = ")
    end = text.index("\n", start)
    app_py.write_text(text[:start] + f'PRICES = {{"apple": {value}, "pear": 0.8}}' + text[end:])


class _Collector:
    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.events.append((time.perf_counter(), event))

    def since(self, t0: float, kind: type[Event]) -> list[tuple[float, Any]]:
        with self.lock:
            return [(t, e) for t, e in self.events if t >= t0 and isinstance(e, kind)]


def _stall(port: int, host: str, app: str, env: str) -> float:
    """How long a request waits that arrives while api's container restarts (what a reload
    does for an image without a shell)."""
    import docker

    client = docker.from_env()
    container = client.containers.list(filters={"label": [
        f"devmesh.dev/app={app}", f"devmesh.dev/env={env}", "devmesh.dev/service=api"]})[0]
    result: list[float] = []

    def ask() -> None:
        time.sleep(0.2)  # after the stop (about 0.1 s), before the start is done
        t0 = time.perf_counter()
        _apple(port, host, timeout=10)
        result.append(time.perf_counter() - t0)

    asker = threading.Thread(target=ask)
    asker.start()
    container.restart(timeout=2)
    asker.join()
    client.close()
    time.sleep(1.0)
    return result[0]


_API_RELOAD = re.compile(r"(  api:\n(?:    .*\n)*?)    reload: [^\n]*\n")


def set_api_reload(config: Path, reload: str) -> None:
    """Give the starter's api another ``reload`` in its devmesh.yaml."""
    config.write_text(_API_RELOAD.sub(rf"\1    reload: {reload}\n", config.read_text(), count=1))


def bench_project(root: Path, runtime: str, port: int, files: Sequence[Path] = ()) -> tuple[str, Path]:
    """The shop starter at ``root`` under a unique app name, on ``runtime`` with its gateway on
    ``port`` (``files`` copied into it beside devmesh.yaml's folder, such as a kind-config/),
    checked out on branch ``bench``, whose api has another price and reloads by ``restart``
    (the starter's api re-executes itself on SIGHUP; the restart is timed first). The app's
    name and its devmesh.yaml."""
    from devmesh.scaffold import create_starter

    create_starter("shop", root, base_image=BASE_IMAGE)
    app = "bench" + secrets.token_hex(3)
    config = root / "devmesh.yaml"
    config.write_text(config.read_text().replace("app: shop", f"runtime: {runtime}\napp: {app}", 1).replace(
        "routing:\n", f"routing:\n  gateway_port: {port}\n", 1))
    for folder in files:
        shutil.copytree(folder, root / folder.name, dirs_exist_ok=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qam", "benchmark settings")
    _git(root, "checkout", "-q", "-b", "bench")
    _set_apple(root / "services/api/app.py", 0.99)
    _git(root, "commit", "-qam", "api on the branch")
    set_api_reload(config, "restart")
    _git(root, "commit", "-qam", "api restarts on sync")
    return app, config


def _measure_sync(project: Any, port: int, host: str, edits: int, transport_mode: str,
                  runtime: str = "docker") -> dict[str, list[float]]:
    from devmesh.app import environments as session
    from devmesh.sync.events import SyncDone, SyncFailed
    from devmesh.app.live import open_live_sync
    from devmesh.runtime.docker.sync import DockerTransport

    events = _Collector()
    live = open_live_sync(project, runtime=runtime, sink=events)
    if transport_mode == "exec":
        transport = DockerTransport(session.open_runtime(project, "docker"), mode="exec")  # type: ignore[arg-type]
        for engine in live.engines:
            engine.transport = transport
    app_py = project.root / "services/api/app.py"
    figures: dict[str, list[float]] = {"write → new answer": [], "sync + reload (engine)": [],
                                       "write → sync starts (watch + debounce)": []}
    live.start()
    try:
        if not live.wait_ready(10):
            raise RuntimeError("the watcher did not start")
        for i in range(edits):
            value = round(1 + i / 100 + secrets.randbelow(10_000) / 1e7, 7)
            t0 = time.perf_counter()
            _set_apple(app_py, value)
            t1 = _wait_for_apple(port, host, value)
            figures["write → new answer"].append(t1 - t0)
            time.sleep(0.05)
            failed = events.since(t0, SyncFailed)
            if failed:
                raise RuntimeError(failed[0][1].message)
            done = events.since(t0, SyncDone)
            if done:
                at, event = done[0]
                figures["sync + reload (engine)"].append(event.ms / 1000)
                figures["write → sync starts (watch + debounce)"].append(at - t0 - event.ms / 1000)
            time.sleep(0.4)  # let the restarted process settle before the next edit
    finally:
        live.stop()
    return figures


def measure_reloads(config: Path, port: int, host: str, edits: int, transport_mode: str,
                    runtime: str = "docker") -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """The edits timed with api's ``reload: restart`` (as ``bench_project`` leaves it), then
    with ``{signal: HUP}``."""
    from devmesh.config import load_project

    print(f"{edits} edits with reload restart …", flush=True)
    restart = _measure_sync(load_project(config), port, host, edits, transport_mode, runtime)
    set_api_reload(config, "{signal: HUP}")
    print(f"{edits} edits with reload {{signal: HUP}} …", flush=True)
    signalled = _measure_sync(load_project(config), port, host, edits, transport_mode, runtime)
    return restart, signalled


def report_reloads(heading: str, restart: dict[str, list[float]], signalled: dict[str, list[float]],
                   rebuild: list[float], more: Sequence[str] = ()) -> int:
    """Print each figure of both reloads and of the rebuild, and each reload against the
    rebuild; the width of the name column (wide enough for ``more`` names too)."""
    rows = {f"{label}: {name}": values
            for label, figures in (("restart", restart), ("signal", signalled))
            for name, values in figures.items() if values}
    rows["rebuild + redeploy: write → new answer"] = rebuild
    width = max(len(k) for k in [*rows, *more]) + 2
    print(f"\n{heading}")
    for name, values in rows.items():
        print(f"  {name:<{width}} {_summary(values)}")
    rebuild_median = statistics.median(rebuild)
    for label, figures in (("restart", restart), ("signal", signalled)):
        median = statistics.median(figures["write → new answer"])
        print(f"  live sync ({label}) is {rebuild_median / median:.1f}× faster than a rebuild "
              f"(median {median * 1000:.0f} ms against {rebuild_median * 1000:.0f} ms; "
              f"{median / rebuild_median:.2f}×)")
    return width


def _measure_rebuild(project: Any, port: int, host: str, rebuilds: int, branch: str,
                     runtime: str = "docker") -> list[float]:
    from devmesh.app import environments as session

    app_py = project.root / "services/api/app.py"
    times = []
    for i in range(rebuilds):
        value = round(5 + i / 100 + secrets.randbelow(10_000) / 1e7, 7)
        t0 = time.perf_counter()
        _set_apple(app_py, value)
        session.up(project, branch, runtime=runtime)
        t1 = _wait_for_apple(port, host, value)
        times.append(t1 - t0)
    return times


def _measure_transports(project: Any, env: str, runs: int) -> dict[str, list[float]]:
    """One file applied to the running api container, per transport (no reload)."""
    from devmesh.app import environments as session
    from devmesh.sync.archive import build_archive
    from devmesh.sync.changes import ChangeSet, plan_sync
    from devmesh.sync.rules import ServiceSources
    from devmesh.runtime.docker.sync import DockerTransport

    rt = session.open_runtime(project, "docker")
    sources = ServiceSources.of(project, "api")
    scratch = sources.context / "bench_scratch.py"
    scratch.write_text("X = 1\n" * 40)
    changes = ChangeSet()
    changes.add("bench_scratch.py", "modified")
    plan = plan_sync(sources, changes)
    results: dict[str, list[float]] = {}
    for mode in ("archive", "exec"):
        transport = DockerTransport(rt, mode=mode)  # type: ignore[arg-type]
        target = next(t for t in transport.targets(env, "api") if t.state == "running")
        label = "archive API (put_archive)" if mode == "archive" else "exec with stdin (sh + tar -x)"
        results[label] = []
        for _ in range(runs):
            archive = build_archive(plan.uploads)
            t0 = time.perf_counter()
            transport.apply(target, archive, ())
            results[label].append(time.perf_counter() - t0)
            archive.close()
    scratch.unlink()
    deletion = plan_sync(sources, changes).deletions
    transport = DockerTransport(rt)  # type: ignore[arg-type]
    target = next(t for t in transport.targets(env, "api") if t.state == "running")
    results["deletion (exec, guarded rm)"] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        transport.apply(target, None, deletion)
        results["deletion (exec, guarded rm)"].append(time.perf_counter() - t0)
    return results


# Run inside api's container: start the image's command on another port and time it until it
# accepts a connection (the cold start a reload cannot avoid).
_COLD_START = """
import os, socket, subprocess, sys, time
t0 = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], env={**os.environ, "PORT": "8765", "LISTEN_HOST": "127.0.0.1"},
                         stdout=subprocess.DEVNULL)
while True:
    try:
        socket.create_connection(("127.0.0.1", 8765), timeout=1).close()
        break
    except OSError:
        time.sleep(0.002)
print(time.perf_counter() - t0)
child.kill()
child.wait()
"""


def _measure_cold_start(app: str, env: str, runs: int) -> list[float]:
    """The image's own command started afresh in api's running container, to its first accepted
    connection (the floor of any reload, with the tar into the container)."""
    import docker

    client = docker.from_env()
    container = client.containers.list(filters={"label": [
        f"devmesh.dev/app={app}", f"devmesh.dev/env={env}", "devmesh.dev/service=api"]})[0]
    image = client.images.get(container.image.id).attrs["Config"]
    command = [*(image.get("Entrypoint") or ()), *(image.get("Cmd") or ())]
    times = []
    for _ in range(runs):
        done = container.exec_run(["python3", "-c", _COLD_START, *command], workdir=image.get("WorkingDir") or "/")
        times.append(float(done.output.decode().split()[-1]))
    client.close()
    return times


def _cleanup(app: str, project: Any, env: str) -> None:
    import docker

    from devmesh.app import environments as session

    try:
        session.open_runtime(project, "docker").down(env, baseline=True)
    except Exception as exc:  # still remove what is left by label
        print(f"down failed: {exc}", file=sys.stderr)
    client = docker.from_env()
    label = {"label": [f"devmesh.dev/app={app}"]}
    for c in client.containers.list(all=True, filters=label):
        c.remove(force=True, v=True)
    for n in client.networks.list(filters=label):
        n.remove()
    for image in client.images.list(filters=label):
        client.images.remove(image.id, force=True)
    client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=20, help="one-file edits to time (default 20)")
    parser.add_argument("--rebuilds", type=int, default=5, help="rebuild + redeploy runs (default 5)")
    parser.add_argument("--transport", choices=["archive", "exec"], default="archive",
                        help="how the edits reach the container (default: archive)")
    parser.add_argument("--transport-runs", type=int, default=20, help="runs per transport (default 20)")
    args = parser.parse_args(argv)

    from devmesh.app import environments as session
    from devmesh.config import load_project

    os.environ.setdefault("DEVMESH_ENVOY_IMAGE", ENVOY_IMAGE)
    with tempfile.TemporaryDirectory(prefix="devmesh-sync-bench-") as tmp:
        os.environ["DEVMESH_STATE_DIR"] = str(Path(tmp) / "state")
        port = _free_port()
        app, config = bench_project(Path(tmp) / "shop", "docker", port)
        project = load_project(config)
        print(f"starting the shop ({app}) on the docker runtime, gateway 127.0.0.1:{port} …", flush=True)
        outcome = session.up(project, "bench", runtime="docker")
        env = outcome.result.environment.name
        host = f"{env}.{app}.localhost"
        try:
            _wait_for_apple(port, host, 0.99)
            restart, signalled = measure_reloads(config, port, host, args.edits, args.transport)
            stalls = [_stall(port, host, app, env) for _ in range(3)]
            print(f"{args.rebuilds} rebuilds …", flush=True)
            rebuild = _measure_rebuild(project, port, host, args.rebuilds, "bench")
            transports = _measure_transports(project, env, args.transport_runs)
            cold = _measure_cold_start(app, env, args.transport_runs)
        finally:
            _cleanup(app, project, env)

    width = report_reloads(f"one-file edit of api ({os.cpu_count()} CPUs), transport {args.transport}, "
                           f"poller timeout {POLL_TIMEOUT * 1000:.0f} ms", restart, signalled, rebuild,
                           list(transports))
    rebuild_median = statistics.median(rebuild)
    print(f"  a request arriving while a container restarts (images without a shell) waits "
          f"{statistics.median(stalls) * 1000:.0f} ms (Envoy's connect timeout, then a retry)")
    tar = statistics.median(transports["archive API (put_archive)"])
    floor = tar + statistics.median(cold)
    supervised = statistics.median(restart["write → new answer"])
    print(f"  floor: the tar into the container ({tar * 1000:.0f} ms) + a cold start of the same command "
          f"in it ({statistics.median(cold) * 1000:.0f} ms median of {len(cold)}) = {floor * 1000:.0f} ms")
    print(f"  reload restart (no help from the app): median {supervised * 1000:.0f} ms (target ≤ 250 ms), "
          f"{supervised / floor:.2f}× the floor (target ≤ 2×), {supervised / rebuild_median:.2f}× a rebuild "
          "(target ≤ 0.25×)")
    print("\ntransports (one 240-byte file, no reload):")
    for name, values in transports.items():
        print(f"  {name:<{width}} {_summary(values)}")


if __name__ == "__main__":
    main()
