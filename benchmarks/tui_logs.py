"""The TUI's Logs tab under load, and how fast the TUI shows its first frame.

    python benchmarks/tui_logs.py [--seconds S] [--rates 5000,20000,...] [--million N]

Prints, with the real app running headless (120×40) on recorded state:

- sustained ingest: for each offered rate, the lines per second that reached the log buffer
  while a key is pressed every 100 ms, how long each key took from arriving to its action
  having run (p50, p95, max), and how many lines the stream's inbox dropped because the UI
  had not taken them yet; the verdict is the highest rate whose p95 stays under 100 ms;
- memory: the process's resident set after 100,000 and after 1,000,000 lines went through the
  Logs tab (the buffer keeps 10,000, so the two should be close);
- time to first frame: from starting a fresh interpreter to the main screen's first refresh,
  and from constructing the app to that refresh in-process.

Nothing is asserted: the figures are for people.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devmesh.runtime.base import LogLine  # noqa: E402

SIZE = (120, 40)
_SCRATCH = tempfile.TemporaryDirectory(prefix="devmesh-bench-")  # removed when the process ends


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RecordedState:
    """A runtime's recorded environments (the baseline and a branch) and their routes."""

    name = "docker"
    app = "shop"

    def __init__(self) -> None:
        from tests.tui.fakes import baseline_state, branch_state

        self.sent = 0
        self.states = [baseline_state(), branch_state()]

    def environments(self) -> list[Any]:
        return list(self.states)

    def down(self, env: str, *, baseline: bool = False, sink: Any = None) -> list[str]:
        return []

    def route_plan(self) -> Any:
        from devmesh.plan.routing import Environment, plan_for_project

        return plan_for_project(_project(), [Environment("feat", ("api",))])


class Firehose(RecordedState):
    """A runtime whose log stream yields ``rate`` lines a second (0: as fast as it can)."""

    def __init__(self, rate: int, total: int | None = None) -> None:
        super().__init__()
        self.rate = rate
        self.total = total
        self.finished = threading.Event()

    def logs(self, env: str, services: Sequence[str], *, follow: bool, tail: int | None = None,
             stop: threading.Event | None = None) -> Iterator[LogLine]:
        stop = stop or threading.Event()
        services_ = ("api", "web", "worker")
        start = time.perf_counter()
        n = 0
        batch = 200
        while not stop.is_set() and (self.total is None or n < self.total):
            for _ in range(batch):
                yield LogLine(services_[n % 3], env, f"GET /stock/{n} x-devmesh-env={env} status=200 took=3ms",
                              "2025-05-02T11:59:00.000000000Z")
                n += 1
            self.sent = n
            if self.rate:
                ahead = n / self.rate - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
        self.finished.set()


def _project() -> Any:
    """The scratch project the benchmark's app runs on (written the first time)."""
    from devmesh.config import load_project
    from tests.gitops.gitops_helpers import write_project

    root = Path(_SCRATCH.name)
    return load_project(root / "shop" / "devmesh.yaml") if (root / "shop").is_dir() else \
        load_project(write_project(root / "shop", None))


def fake_runtime() -> Any:
    """The tests' runtime of recorded state, on the scratch project."""
    from devmesh.routes_state import StrategyStore
    from tests.tui.fakes import FakeRuntime

    project = _project()
    return FakeRuntime(project, StrategyStore(Path(_SCRATCH.name) / "state" / project.app))


def make_app(runtime: Any, log_lines: int = 10_000) -> Any:
    from tests.tui.fakes import NOW, selection
    from tui.app import DevmeshApp
    from tui.sources import Health, Sources

    project = _project()
    sources = Sources(project, runtime=runtime, selection=selection(),
                      health=lambda rt: Health(True, "engine"), now=lambda: NOW)
    return DevmeshApp(sources, cursor_blink=False, poll_seconds=0, log_lines=log_lines)


def _buffer(app: Any) -> Any:
    from tui.widgets.logs_pane import LogsPane

    return app.main.query_one(LogsPane).view.buffer


async def _press(app: Any, key: str, answered: asyncio.Event) -> float:
    """Milliseconds from a key arriving (as the terminal driver delivers it) to its action."""
    from textual import events

    answered.clear()
    t0 = time.perf_counter()
    app.post_message(events.Key(key, key))
    await asyncio.wait_for(answered.wait(), 30)
    return (time.perf_counter() - t0) * 1000


def _instrument(app: Any) -> asyncio.Event:
    """Note when the follow/pause action (the `f` key) has run."""
    answered = asyncio.Event()
    original = app.main.action_follow

    def follow() -> None:
        original()
        answered.set()

    app.main.action_follow = follow
    return answered


async def _keys_for(app: Any, answered: Any, seconds: float) -> list[float]:
    """A key ("f") every 100 ms for ``seconds``: how long each took to be answered (ms)."""
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        t0 = time.perf_counter()
        latencies.append(await _press(app, "f", answered))
        await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))
    return latencies


async def _ingest(rate: int, seconds: float) -> tuple[float, list[float], int]:
    """Lines/s into the buffer at an offered ``rate``, key latencies (ms), lines dropped."""
    app = make_app(Firehose(rate))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        answered = _instrument(app)
        while _buffer(app).received == 0:
            await asyncio.sleep(0.01)
        first = _buffer(app).received
        started = time.perf_counter()
        latencies = await _keys_for(app, answered, seconds)
        elapsed = time.perf_counter() - started
        got = _buffer(app).received - first
        dropped = app.main.inbox.dropped
    return got / elapsed, latencies, dropped


async def _memory(total: int) -> list[tuple[int, float]]:
    runtime = Firehose(0, total)
    app = make_app(runtime)
    marks: list[tuple[int, float]] = []
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        for mark in (100_000, total):
            while runtime.sent < mark and not runtime.finished.is_set():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            marks.append((runtime.sent, rss_mib()))
        assert _buffer(app).total == 10_000
    return marks


async def _first_frame_in_process() -> float:
    started = time.perf_counter()
    app = make_app(fake_runtime())
    done = asyncio.Event()
    app.call_later(lambda: app.main.call_after_refresh(done.set))
    async with app.run_test(size=SIZE):
        await done.wait()
        return time.perf_counter() - started


_CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
from benchmarks.tui_logs import fake_runtime, make_app
app = make_app(fake_runtime())
def first_frame():
    print(time.time(), flush=True)
    app.exit()
app.call_later(lambda: app.main.call_after_refresh(first_frame))
app.run(headless=True, size=(120, 40))
"""


def first_frame_cold(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.time()
        done = subprocess.run([sys.executable, "-c", _CHILD.format(repo=str(REPO))], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
        if done.returncode != 0 or not done.stdout.split():
            raise SystemExit(f"the app in a fresh process did not start:\n{done.stderr}")
        out.append(float(done.stdout.split()[0]) - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per offered rate")
    parser.add_argument("--rates", default="5000,20000,50000,100000,0",
                        help="offered lines/s, comma-separated (0: as fast as the stream can)")
    parser.add_argument("--million", type=int, default=1_000_000, help="lines for the memory figure")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes for the first-frame figure")
    args = parser.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, terminal {SIZE[0]}x{SIZE[1]}, headless")
    print("\nsustained ingest while a key is pressed every 100 ms")
    print(f"{'offered':>10}  {'ingested lines/s':>16}  {'key p50 ms':>10}  {'p95 ms':>7}  {'max ms':>7}"
          f"  {'dropped':>9}")
    best = lossless = 0.0
    for rate in [int(r) for r in args.rates.split(",")]:
        got, lat, dropped = asyncio.run(_ingest(rate, args.seconds))
        lat.sort()
        p95 = lat[min(len(lat) - 1, int(len(lat) * 0.95))]
        offered = f"{rate:,}" if rate else "max"
        print(f"{offered:>10}  {got:>16,.0f}  {statistics.median(lat):>10.1f}  {p95:>7.1f}  {lat[-1]:>7.1f}"
              f"  {dropped:>9,}")
        if p95 < 100:
            best = max(best, got)
            if dropped == 0:
                lossless = max(lossless, got)
    print(f"=> keys answered within 100 ms (p95) at {best:,.0f} lines/s ingested; "
          f"{lossless:,.0f} lines/s with no line dropped before the UI took it")
    print("   (a dropped line is one that more than 10,000 newer lines had already pushed out of the buffer)")

    print("\nmemory (RSS) with the default 10,000-line buffer, before any lines: ", end="")
    print(f"{rss_mib():.0f} MiB in this process")
    for count, mib in asyncio.run(_memory(args.million)):
        print(f"  after {count:>9,} lines: {mib:.0f} MiB")

    warm = [asyncio.run(_first_frame_in_process()) for _ in range(3)]
    cold = first_frame_cold(args.runs)
    print("\ntime to first frame")
    print(f"  fresh interpreter to first refresh: median {statistics.median(cold) * 1000:.0f} ms "
          f"(min {min(cold) * 1000:.0f}, max {max(cold) * 1000:.0f}; {len(cold)} runs)")
    print(f"  app constructed to first refresh, in process: median {statistics.median(warm) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
