"""Whether ``devmesh canary SERVICE --auto`` slows the requests it watches.

    python benchmarks/canary_auto_latency.py [--rounds 3] [--seconds 20] [--rate 40]

Runs the shop starter on the docker runtime (real engine, real Envoy; the local test images
from .ci/build-images), forks ``api`` on a branch (healthy, same code but its version string)
and puts it at a 50 % canary by hand. A client then sends requests without the routing header
through the gateway at a steady rate — the traffic a canary splits and ``--auto`` judges — and
times each from sending to the last byte of the answer.

Two kinds of phases alternate, ``rounds`` of each, in the same run: **without** analysis (the
canary at 50 % by hand: Envoy writes its records either way), and **with** the real CLI's
``canary api --auto`` following the mesh's records and judging the step four times a second (a
preset whose one step is 50 % and whose ``min_requests`` is never reached, so the analysis runs
for the whole phase and is then stopped with Ctrl-C). Prints each phase's p50/p95/p99, the
pooled figures of each kind, the ratio of the phases' medians with/without and in how many rounds
the phase with analysis was the slower one (about half of them when it makes no difference),
the spread between the phases without analysis (what "measurable" has to exceed), and the CPU
the analysis process and the Docker engine used. A phase with analysis starts a second after
``--auto`` began judging: its own start (Python, the connection to the engine) is once a run.

Nothing is asserted: the figures are for people (on a busy machine they vary; run it alone).
Everything created (containers, network, images, the temporary project) is removed at the end.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.docker_env import ENVOY_IMAGE, cleanup, devmesh, remove_images, run_git, scaffold_shop  # noqa: E402

PRESET = """\
description: one step that is judged only after more requests than a phase sends
variables: {}
defaults:
  kind: canary
  steps: [50]
  sticky_header: ""
  analysis: {min_requests: 1000000, max_error_increase: 1, max_latency_ratio: 1.2,
             latency_slack_ms: 5, step_timeout: 86400}
"""
TICKS = os.sysconf("SC_CLK_TCK")


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _figures(values: Sequence[float]) -> str:
    return (f"n {len(values):5d}   p50 {statistics.median(values) * 1000:6.2f} ms   "
            f"p95 {_quantile(values, 0.95) * 1000:6.2f} ms   p99 {_quantile(values, 0.99) * 1000:6.2f} ms")


def _load(port: int, host: str, seconds: float, rate: float) -> list[float]:
    """Requests without the routing header at ``rate`` a second for ``seconds``: their latencies."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    took: list[float] = []
    start = time.perf_counter()
    n = 0
    try:
        while True:
            due = start + n / rate
            now = time.perf_counter()
            if due - start >= seconds:
                return took
            if due > now:
                time.sleep(due - now)
            n += 1
            sent = time.perf_counter()
            conn.request("GET", "/", headers={"Host": host})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"the gateway answered {resp.status}: the benchmark needs a healthy app")
            took.append(time.perf_counter() - sent)
    finally:
        conn.close()


def _dockerd() -> int | None:
    """The Docker engine's process, which streams the records to a follower."""
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() == "dockerd":
                return int(proc.name)
        except OSError:
            continue
    return None


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return math.nan
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


class Analysis:
    """The real CLI's ``canary api --auto`` for one phase, from its first judging to Ctrl-C."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devmesh", "canary", "api", "--auto", "--preset", "bench", "--branch", "feat"],
            cwd=root, env={**os.environ, "DEVMESH_ENVOY_IMAGE": ENVOY_IMAGE, **env},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        seen: list[str] = []
        while not any("waiting for" in line for line in seen):
            line = self.proc.stderr.readline()
            if not line:
                raise SystemExit("canary --auto ended before judging:\n" + "".join(seen))
            seen.append(line)
        time.sleep(1.0)  # its follower connected, its first judgings done
        self.cpu_at_start = _cpu_seconds(self.proc.pid)

    def stop(self) -> float:
        """Ctrl-C; the CPU seconds it used while the phase ran."""
        used = _cpu_seconds(self.proc.pid) - self.cpu_at_start
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 130:
            raise SystemExit(f"canary --auto ended with {self.proc.returncode}:\n{err}")
        return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="phases of each kind (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of a phase (default 20)")
    parser.add_argument("--rate", type=float, default=40.0, help="requests a second (default 40)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="devmesh-bench-"))
    os.environ.update({"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost",
                       "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp)})
    env = {"DEVMESH_STATE_DIR": str(tmp / "state")}
    root, app, port = scaffold_shop(tmp / "shop")
    host = f"{app}.localhost"

    def cli(*words: str) -> None:
        done = devmesh(root, *words, env=env)
        if done.returncode != 0:
            raise SystemExit(f"devmesh {' '.join(words)}: {done.stdout}{done.stderr}")

    try:
        strategies = root / "presets" / "strategies"
        strategies.mkdir(parents=True)
        (strategies / "bench.yaml").write_text(PRESET)
        run_git(root, "add", "-A")
        run_git(root, "commit", "-qm", "benchmark preset")
        run_git(root, "checkout", "-q", "-b", "feat")
        api = root / "services" / "api" / "app.py"
        api.write_text(api.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"'))
        run_git(root, "commit", "-qam", "api: v2")
        cli("up", "--detach")
        run_git(root, "checkout", "-q", "main")
        cli("canary", "api", "--weight", "50", "--branch", "feat")
        _load(port, host, 3.0, args.rate)  # warm up: connections, Envoy's pools, the apps

        print(f"docker runtime, {args.rate:g} requests/s without the routing header through the gateway, "
              f"api at a 50 % canary, {args.seconds:g} s a phase")
        without: list[list[float]] = []
        with_auto: list[list[float]] = []
        cpu: list[float] = []
        engine = _dockerd()
        engine_cpu: dict[str, list[float]] = {"without": [], "with": []}

        def phase() -> tuple[list[float], float]:
            before = _cpu_seconds(engine)
            took = _load(port, host, args.seconds, args.rate)
            return took, (_cpu_seconds(engine) - before) / args.seconds

        for n in range(args.rounds):
            took, used = phase()
            without.append(took)
            engine_cpu["without"].append(used)
            print(f"  round {n + 1} without analysis  {_figures(took)}   dockerd {used:5.1%}")
            analysis = Analysis(root, env)
            took, used = phase()
            cpu.append(analysis.stop() / args.seconds)
            with_auto.append(took)
            engine_cpu["with"].append(used)
            print(f"  round {n + 1} with --auto       {_figures(took)}   dockerd {used:5.1%}   "
                  f"analysis {cpu[-1]:5.1%} of a core")

        off = [t for phase in without for t in phase]
        on = [t for phase in with_auto for t in phase]
        print(f"without analysis  {_figures(off)}")
        print(f"with --auto       {_figures(on)}")
        for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            off_phases = [_quantile(p, q) for p in without]
            on_phases = [_quantile(p, q) for p in with_auto]
            ratio = statistics.median(on_phases) / statistics.median(off_phases)
            worse = sum(a > b for a, b in zip(on_phases, off_phases))
            print(f"  {name}: median of the phases with/without {ratio:.3f}; higher with --auto in {worse} of "
                  f"{len(on_phases)} rounds; the phases without analysis alone span "
                  f"{min(off_phases) * 1000:.2f}–{max(off_phases) * 1000:.2f} ms "
                  f"({max(off_phases) / min(off_phases):.3f}×)")
        print(f"  CPU, of a core: the analysis process {statistics.mean(cpu):.1%} (following the records, "
              f"judging 4 times a second); the Docker engine {statistics.mean(engine_cpu['with']):.1%} with it, "
              f"{statistics.mean(engine_cpu['without']):.1%} without (it streams the records to the follower)")
    finally:
        devmesh(root, "down", "--baseline", env=env)
        cleanup(app)
        remove_images(app)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
