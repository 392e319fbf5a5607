"""Rendered sets of objects pass Istio's own analyzers (`istioctl analyze --use-kube=false`).

istioctl is built from the pinned `istio.io/istio` module by `.ci/build-k8s`; without it these
tests are skipped, and with DEVMESH_REQUIRE_APISERVER=1 (as in CI, which builds it) they fail.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devmesh.config import load_project
from devmesh.plan import k8s
from tests.conftest import ProjectFactory
from tests.test_strategies import ALL_STRATEGIES, RES, shop

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def istioctl() -> str:
    pinned = subprocess.run([str(REPO / ".ci" / "build-k8s"), "--print", "versions"], capture_output=True,
                            text=True, timeout=60).stdout
    version = dict(line.split("=", 1) for line in pinned.splitlines() if "=" in line).get("istio-module")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "devmesh" / "bin"
    binary = cache / f"istioctl-{version}" / "istioctl"
    if not binary.is_file():
        why = f"istioctl is not built ({binary}): run .ci/build-k8s istioctl"
        if os.environ.get("DEVMESH_REQUIRE_APISERVER") == "1":
            pytest.fail(f"DEVMESH_REQUIRE_APISERVER=1 but {why}")
        pytest.skip(why)
    return str(binary)


def analyze(istioctl: str, objects: list[dict[str, Any]], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """istioctl's verdict on ``objects``: every namespace (by default it reports on `default`
    only, and devmesh's objects live in `devmesh-<app>`), warnings counted as failures."""
    path = tmp_path / "objects.yaml"
    path.write_text(k8s.to_yaml(objects))
    return subprocess.run([istioctl, "analyze", "--use-kube=false", "--all-namespaces",
                           "--failure-threshold", "Warning", str(path)], capture_output=True, text=True, timeout=120)


def test_the_analyzers_catch_a_broken_set(make_project: ProjectFactory, istioctl: str, tmp_path: Path) -> None:
    project = load_project(make_project() / "devmesh.yaml")
    objects = k8s.render_objects(project, shop())
    for obj in objects:
        if obj["kind"] == "VirtualService" and obj["metadata"]["name"] == "api":
            obj["spec"]["http"][-1]["route"][0]["destination"]["subset"] = "nosuch"
    done = analyze(istioctl, objects, tmp_path)
    assert done.returncode != 0
    assert "IST0101" in done.stdout and "api.devmesh-shop.svc.cluster.local+nosuch" in done.stdout


@pytest.mark.parametrize("strategy", [None, *ALL_STRATEGIES],
                         ids=lambda s: "no-strategy" if s is None else f"{s.kind}-{s.service}")
def test_every_strategy_with_resilience_passes_istios_analyzers(make_project: ProjectFactory, istioctl: str,
                                                                tmp_path: Path, strategy: Any) -> None:
    project = load_project(make_project() / "devmesh.yaml")
    plan = shop(*([strategy] if strategy else []), resilience={"web": RES, "api": RES, "stock": RES})
    done = analyze(istioctl, k8s.render_objects(project, plan), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No validation issues found" in done.stdout + done.stderr
