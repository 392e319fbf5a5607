"""The kind runtime's `up` of the starter's three services on the real API server, beside the
same `up` on the fake cluster, in one run.

    python benchmarks/kind_up_apiserver.py [--runs 5]

Each run is a fresh app (its own namespace): baseline plus one branch forking `api`, that is
server-side apply of every object and a wait until every Deployment has rolled out (kwok's
nodes make the pods Ready), then a second `up` that changes nothing, then `down`. Images are
named by a stand-in publisher (no registry, no Docker build). The control plane is started by
`.ci/apiserver up --name bench` (built first if missing) and stopped at the end. Nothing is
asserted: the figures are medians and ratios for people.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devmesh.config import load_project  # noqa: E402
from devmesh.events import Sink, discard  # noqa: E402
from devmesh.naming import BASELINE_ENV  # noqa: E402
from devmesh.plan.routing import Backend, Environment  # noqa: E402
from devmesh.runtime.kind.client import ClusterClient, open_client  # noqa: E402
from devmesh.runtime.kind.runtime import KindRuntime  # noqa: E402

STARTER = """\
app: {app}
baseline: main
runtime: kind
services:
  web: {{context: services/web, entry: true, port: 8000}}
  api: {{context: services/api, port: 8000}}
  stock: {{context: services/stock, port: 8000}}
"""


class Named:
    """A publisher that only names the pinned image (nothing is pushed)."""

    def publish(self, local_ref: str, *, sink: Sink = discard) -> str:
        return f"127.0.0.1:5001/{local_ref.split(':')[0]}@sha256:{'0' * 64}"


def _project(root: Path) -> Any:
    app = f"b{uuid.uuid4().hex[:8]}"
    for service in ("web", "api", "stock"):
        (root / "services" / service).mkdir(parents=True)
        (root / "services" / service / "Dockerfile").write_text("FROM scratch\n")
    (root / "devmesh.yaml").write_text(STARTER.format(app=app))
    return load_project(root / "devmesh.yaml")


def one_run(cluster: ClusterClient, context: str) -> tuple[float, float, float]:
    """(first up, second up, down) in seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp))
        env = Environment("feature-x", ("api",), "feature/x")
        images = {Backend(s, BASELINE_ENV): f"{project.app}/{s}:base" for s in project.services}
        images[Backend("api", env.name)] = f"{project.app}/api:x"
        rt = KindRuntime(project, context=context, cluster=cluster, publisher=Named(), timeout=120)
        started = time.perf_counter()
        rt.up(env, images=images)
        first = time.perf_counter() - started
        started = time.perf_counter()
        rt.up(env, images=images)
        second = time.perf_counter() - started
        started = time.perf_counter()
        rt.down(env.name)
        gone = time.perf_counter() - started
        return first, second, gone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs

    sys.path.insert(0, str(REPO))
    from tests.kind.fake_cluster import FakeCluster

    up = subprocess.run([str(REPO / ".ci" / "apiserver"), "up", "--name", "bench"], capture_output=True,
                        text=True, check=True)
    kubeconfig = up.stdout.strip().splitlines()[-1]
    real = open_client("devmesh-apiserver-bench", kubeconfig=kubeconfig)
    try:
        figures: dict[str, list[tuple[float, float, float]]] = {"fake cluster": [], "real API server": []}
        for _ in range(runs):  # alternating, so drift on a busy machine hits both alike
            figures["fake cluster"].append(one_run(FakeCluster(), "kind-devmesh"))
            figures["real API server"].append(one_run(real, "devmesh-apiserver-bench"))
    finally:
        real.close()
        subprocess.run([str(REPO / ".ci" / "apiserver"), "down", "--name", "bench"], capture_output=True)

    print(f"kind runtime, starter (3 services + 1 fork), {runs} runs, medians:")
    print(f"{'':18} {'up (apply+rollout)':>20} {'up again':>10} {'down':>8}")
    medians = {}
    for name, rows in figures.items():
        medians[name] = [statistics.median(column) for column in zip(*rows)]
        first, second, gone = medians[name]
        print(f"{name:18} {first:>19.3f}s {second:>9.3f}s {gone:>7.3f}s")
    ratio = [r / f if f else float("nan") for r, f in zip(medians["real API server"], medians["fake cluster"])]
    print(f"{'real / fake':18} {ratio[0]:>19.1f}x {ratio[1]:>9.1f}x {ratio[2]:>7.1f}x")


if __name__ == "__main__":
    main()
