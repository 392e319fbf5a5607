"""Promotion and tier canary latency on a large manifest repo; the cached clone against
cloning afresh.

    python benchmarks/gitops_promote.py [--services 500] [--tiers 4] [--runs 10]

Generates a project of N services and a bare repository holding its layout for N services ×
T tiers (every service pinned in every tier, every tier with each service's traffic file,
plus a history of promotions), then times end to end (lock, fetch, edit, commit, push):

- `promote` with a warm cache and with an empty cache each time;
- a tier canary (one commit to a traffic file: read and checked against the render, the
  candidate by the tier rule, the file rendered) with the same warm cache, interleaved with
  the promotions, and its ratio to the promotion (the target: at most 1.5×);
- `manifests sync` after every service's timeout changed in devmesh.yaml: all N services'
  traffic files in every tier rendered again, in one commit.
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

from devmesh.app.releases import tier_strategy_request
from devmesh.config import Project, load_project
from devmesh.gitops.cache import open_checkout
from devmesh.gitops.images import ImageRef
from devmesh.gitops.preset_sync import manifests_sync
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.render import traffic_path
from devmesh.gitops.scaffold import scaffold, specs_from_project
from devmesh.gitops.settings import ManifestSettings
from devmesh.gitops.tier_strategy import change_traffic
from devmesh.gitops.yamlio import write_file

REGISTRY = "127.0.0.1:5001"


def _digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


def write_project(root: Path, services: int, timeout: str | None = None) -> Project:
    """A devmesh.yaml of ``services`` services (each a build context with a Dockerfile)."""
    lines = ["app: bench", "services:"]
    for i in range(services):
        name = f"svc{i:03d}"
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "Dockerfile").write_text("FROM scratch\n")
        lines += [f"  {name}:", f"    context: {name}", "    port: 8080"] + (["    entry: true"] if i == 0 else [])
        if timeout is not None:
            lines += ["    resilience:", f"      timeout: {timeout}"]
    (root / "devmesh.yaml").write_text("\n".join(lines) + "\n")
    return load_project(root / "devmesh.yaml")


def generate(remote: Path, work: Path, project: Project, tiers: int, canaries: int) -> ManifestSettings:
    """The repo: layout commit, one commit pinning everything, a few hundred promotions, and a
    new image in the first tier of the ``canaries`` services a tier canary will take."""
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(remote)], check=True)
    settings = ManifestSettings(url=str(remote))
    names = sorted(project.services)
    tier_names = ["dev", "beta", "beta-prod", "prod"][:tiers] + [f"t{i}" for i in range(4, tiers)]
    with open_checkout(settings, cache=work) as co:
        scaffold(co, "bench", specs_from_project(project), tier_names)
        layout = co.layout()
        for tier in tier_names:
            doc = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"../../base/{n}" for n in names] + [traffic_path(n) for n in names],
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
        for name in names[-canaries:]:
            promote(co, PromotionRequest(name, "dev", ImageRef(f"{REGISTRY}/bench/{name}", _digest(20_000))))
    return settings


def _time_promotion(settings: ManifestSettings, cache: Path, n: int) -> float:
    image = ImageRef(f"{REGISTRY}/bench/svc001", _digest(1_000_000 + n))
    started = time.perf_counter()
    with open_checkout(settings, cache=cache) as co:
        result = promote(co, PromotionRequest("svc001", "dev", image))
    elapsed = time.perf_counter() - started
    assert result.landed.commit is not None
    return elapsed


def _time_canary(settings: ManifestSettings, cache: Path, project: Project, service: str) -> float:
    request = tier_strategy_request(project, service, "beta", "canary", weight=10)
    started = time.perf_counter()
    with open_checkout(settings, cache=cache) as co:
        result = change_traffic(co, project, request)
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
        project = write_project(root / "project", args.services)
        canaries = sorted(project.services)[-(args.runs + 1):]
        settings = generate(root / "manifests.git", root / "gen-cache", project, args.tiers, len(canaries))
        files = subprocess.run(
            ["git", "-C", str(root / "manifests.git"), "ls-tree", "-r", "--name-only", "main"],
            capture_output=True, text=True, check=True,
        ).stdout.count("\n")
        print(f"generated {args.services} services × {args.tiers} tiers ({files} files) in {time.perf_counter() - started:.1f}s")

        warm = root / "warm-cache"
        _time_promotion(settings, warm, 0)  # fill the cache once
        _time_canary(settings, warm, project, canaries[0])
        cached, canary = [], []
        for n in range(1, args.runs + 1):  # interleaved: both see the same repo and machine
            cached.append(_time_promotion(settings, warm, n))
            canary.append(_time_canary(settings, warm, project, canaries[n]))
        fresh = []
        for n in range(args.runs):
            cold = root / f"cold-{n}"
            fresh.append(_time_promotion(settings, cold, 100 + n))
            shutil.rmtree(cold)
        c, f, k = statistics.median(cached), statistics.median(fresh), statistics.median(canary)
        print(f"promotion with the cached clone: median {c * 1000:.0f} ms (min {min(cached) * 1000:.0f}, max {max(cached) * 1000:.0f})")
        print(f"promotion cloning afresh:        median {f * 1000:.0f} ms (min {min(fresh) * 1000:.0f}, max {max(fresh) * 1000:.0f})")
        print(f"tier canary, cached clone:       median {k * 1000:.0f} ms (min {min(canary) * 1000:.0f}, max {max(canary) * 1000:.0f})")
        print(f"ratio (afresh / cached): {f / c:.1f}x")
        print(f"ratio (tier canary / promotion): {k / c:.2f}x (target: at most 1.5x)")

        changed = write_project(root / "project", args.services, timeout="9s")
        started = time.perf_counter()
        with open_checkout(settings, cache=warm) as co:
            synced = manifests_sync(co, changed)
        took = time.perf_counter() - started
        assert synced.landed.commit is not None
        count = len(synced.plan.changes)
        print(f"manifests sync of {len(synced.plan.services)} services ({count} files) in one commit: "
              f"{took:.1f} s ({took / c:.0f}x a promotion)")


if __name__ == "__main__":
    main()
