"""Live sync latency on the kind runtime: from a file's write to the first answer by the new
code, through Istio's ingress gateway.

    eval "$(.ci/kind-cluster env)"   # or any kind cluster devmesh made, with its tools on PATH
    python benchmarks/sync_latency_kind.py [--edits 10] [--rebuilds 2]

Runs the shop starter on the kind runtime of the cluster ``devmesh cluster up`` made (context
kind-devmesh; .ci/kind-cluster's kind-config/ when DEVMESH_E2E_KIND_CONFIG names one), forks
``api`` on a branch and starts live sync in this process. Each edit rewrites ``api``'s price
table and polls the preview URL (web → api → stock, every hop through a sidecar) until the
answer carries the new value.

Timed: ``reload: restart`` (devmesh's supervisor in the pod: the sidecar's count of requests in
flight is read through exec, then the command runs again in the same container), ``{signal:
HUP}`` (the app re-executes itself), and a rebuild + redeploy (build, push to the local
registry, rollout) of the same edit, which the live figures are set against. The figures of the
docker runtime come from benchmarks/sync_latency.py. Nothing is asserted; everything created
(the app's namespace, its images, the temporary project) is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.sync_latency import (  # noqa: E402
    _measure_rebuild,
    _wait_for_apple,
    bench_project,
    measure_reloads,
    report_reloads,
)


def _tools() -> None:
    """What .ci/kind-cluster env names: its tools first on PATH, its registry image."""
    tools = os.environ.get("DEVMESH_E2E_KIND_TOOLS")
    if tools:
        os.environ["PATH"] = f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"
    if os.environ.get("DEVMESH_E2E_REGISTRY_IMAGE"):
        os.environ.setdefault("DEVMESH_REGISTRY_IMAGE", os.environ["DEVMESH_E2E_REGISTRY_IMAGE"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=10, help="one-file edits to time per reload (default 10)")
    parser.add_argument("--rebuilds", type=int, default=2, help="rebuild + redeploy runs (default 2)")
    args = parser.parse_args(argv)
    _tools()
    port = int(os.environ.get("DEVMESH_E2E_GATEWAY_PORT", "8080"))

    from devmesh.app import environments as session
    from devmesh.config import load_project

    with tempfile.TemporaryDirectory(prefix="devmesh-kind-sync-bench-") as tmp:
        os.environ["DEVMESH_STATE_DIR"] = str(Path(tmp) / "state")
        kind_config = os.environ.get("DEVMESH_E2E_KIND_CONFIG")
        app, config = bench_project(Path(tmp) / "shop", "kind", port,
                                    [Path(kind_config)] if kind_config else [])
        project = load_project(config)
        print(f"starting the shop ({app}) on the kind runtime, gateway 127.0.0.1:{port} …", flush=True)
        outcome = session.up(project, "bench", runtime="kind")
        env = outcome.result.environment.name
        host = f"{env}.{app}.localhost"
        try:
            _wait_for_apple(port, host, 0.99)
            restart, signalled = measure_reloads(config, port, host, args.edits, "archive", runtime="kind")
            print(f"{args.rebuilds} rebuilds …", flush=True)
            rebuild = _measure_rebuild(project, port, host, args.rebuilds, "bench", runtime="kind")
        finally:
            try:
                session.open_runtime(project, "kind").down(env, baseline=True)
            except Exception as exc:  # the namespace may be left: say so
                print(f"down failed: {exc}", file=sys.stderr)
            import docker

            client = docker.from_env()
            for image in client.images.list(filters={"label": [f"devmesh.dev/app={app}"]}):
                client.images.remove(image.id, force=True)
            client.close()

    report_reloads(f"one-file edit of api on kind ({os.cpu_count()} CPUs), through the ingress gateway",
                   restart, signalled, rebuild)
    supervised = statistics.median(restart["write → new answer"])
    hup = statistics.median(signalled["write → new answer"])
    print(f"  reload restart under the supervisor (no help from the app): median {supervised * 1000:.0f} ms "
          f"(target ≤ 250 ms), {supervised / hup:.2f}× the app's own SIGHUP re-exec")


if __name__ == "__main__":
    main()
