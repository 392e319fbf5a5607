"""Start-up time of `devmesh --version` and `devmesh --help`, next to a bare interpreter.

    python benchmarks/startup.py [--runs N] [--imports]

Each command runs N times as a fresh process (round-robin, so drift on a busy machine hits all
of them alike); the figures are wall-clock median and 95th percentile, and the ratio of the
median to `python -c pass` measured in the same run. Nothing is asserted: the figures are for
people. `--imports` also lists the slowest imports of `devmesh --help` (from -X importtime).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "devmesh --version": [sys.executable, "-m", "devmesh", "--version"],
    "devmesh --help": [sys.executable, "-m", "devmesh", "--help"],
}


def _env() -> dict[str, str]:
    # Measure this source tree, whatever else is installed.
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


def _once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]  # nearest rank


def measure(runs: int) -> dict[str, list[float]]:
    env = _env()
    for argv in COMMANDS.values():  # warm the file cache and the bytecode
        _once(argv, env)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            samples[name].append(_once(argv, env))
    return samples


def slowest_imports(count: int = 10) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of `devmesh --help`'s slowest top-level imports."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "devmesh", "--help"],
                          env=_env(), capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # imported directly, not on behalf of another module
            rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per command (default 20)")
    parser.add_argument("--imports", action="store_true", help="list the slowest imports of --help")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    samples = measure(args.runs)
    baseline = statistics.median(samples["python -c pass"])
    print(f"{args.runs} runs each, Python {sys.version.split()[0]}, {sys.executable}")
    print()
    print(f"{'command':<20} {'median':>9} {'p95':>9} {'× python':>9}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<20} {median * 1000:>7.1f}ms {_p95(values) * 1000:>7.1f}ms {median / baseline:>8.2f}×")
    print()
    extra = statistics.median(samples["devmesh --help"]) - baseline
    print(f"devmesh --help costs {extra * 1000:.1f} ms over a bare interpreter")
    if args.imports:
        print()
        print("slowest imports of devmesh --help (cumulative):")
        for micros, module in slowest_imports():
            print(f"  {micros / 1000:>7.1f}ms  {module}")


if __name__ == "__main__":
    main()
