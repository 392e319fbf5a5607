"""Promotion latency on a large manifest repo: the cached clone against cloning afresh.

    python benchmarks/gitops_promote.py [--services 500] [--tiers 4] [--runs 10]

Generates a bare repository holding the layout for N services × T tiers (every service
pinned in every tier, plus a history of promotions), then times `promote` end to end
(lock, fetch, edit, commit, push) with a warm cache and with an empty cache each time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from devmesh.gitops.cache import open_checkout
from devmesh.gitops.images import ImageRef
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.scaffold import ServiceSpec, scaffold
from devmesh.gitops.settings import ManifestSettings
from devmesh.gitops.yamlio import write_file

REGISTRY = "127.0.0.1:5001"


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def generate(remote: Path, work: Path, services: int, tiers: int) -> ManifestSettings:
    """The repo: layout commit, one commit pinning everything, a few hundred promotions."""
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(remote)], check=True)
    settings = ManifestSettings(url=str(remote))
    names = [f"svc{i:03d}" for i in range(services)]
    tier_names = ["dev", "beta", "beta-prod", "prod"][:tiers] + [f"t{i}" for i in range(4, tiers)]
    specs = [ServiceSpec(name, 8080, {}) for name in names]
    with open_checkout(settings, cache=work) as co:
        scaffold(co, "bench", specs, tier_names)
        layout = co.layout()
        for tier in tier_names:
            doc = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"../../base/{n}" for n in names],
                "images": [
                    {"name": f"bench/{n}", "newName": f"{REGISTRY}/bench/{n}", "digest": _digest(i)}
                    for i, n in enumerate(names)
                ],
            }
            write_file(layout.tier_file(tier), doc, header=f"# tier {tier}\n")
        co.commit("pin every service in every tier", [co.settings.path])
        co.git("push", "--quiet", "origin", "HEAD:refs/heads/main")
        co.sync()
        for i in range(200):  # some history for git log to read
            name = names[i % len(names)]
            promote(co, PromotionRequest(name, "dev", ImageRef(f"{REGISTRY}/bench/{name}", _digest(10_000 + i))))
    return settings


def _time_promotion(settings: ManifestSettings, cache: Path, n: int) -> float:
    image = ImageRef(f"{REGISTRY}/bench/svc001", _digest(1_000_000 + n))
    started = time.perf_counter()
    with open_checkout(settings, cache=cache) as co:
        result = promote(co, PromotionRequest("svc001", "dev", image))
    elapsed = time.perf_counter() - started
    assert result.landed.commit is not None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--tiers", type=int, default=4)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("GIT_AUTHOR_NAME", "Bench")
    os.environ.setdefault("GIT_AUTHOR_EMAIL", "bench@example.test")
    os.environ.setdefault("GIT_COMMITTER_NAME", "Bench")
    os.environ.setdefault("GIT_COMMITTER_EMAIL", "bench@example.test")
    with tempfile.TemporaryDirectory(prefix="devmesh-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        settings = generate(root / "manifests.git", root / "gen-cache", args.services, args.tiers)
        files = subprocess.run(
            ["git", "-C", str(root / "manifests.git"), "ls-tree", "-r", "--name-only", "main"],
            capture_output=True, text=True, check=True,
        ).stdout.count("\n")
        print(f"generated {args.services} services × {args.tiers} tiers ({files} files) in {time.perf_counter() - started:.1f}s")

        warm = root / "warm-cache"
        _time_promotion(settings, warm, 0)  # fill the cache once
        cached = [_time_promotion(settings, warm, n) for n in range(1, args.runs + 1)]
        fresh = []
        for n in range(args.runs):
            cold = root / f"cold-{n}"
            fresh.append(_time_promotion(settings, cold, 100 + n))
            shutil.rmtree(cold)
        c, f = statistics.median(cached), statistics.median(fresh)
        print(f"promotion with the cached clone: median {c * 1000:.0f} ms (min {min(cached) * 1000:.0f}, max {max(cached) * 1000:.0f})")
        print(f"promotion cloning afresh:        median {f * 1000:.0f} ms (min {min(fresh) * 1000:.0f}, max {max(fresh) * 1000:.0f})")
        print(f"ratio (afresh / cached): {f / c:.1f}x")


if __name__ == "__main__":
    main()
