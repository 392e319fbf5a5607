"""Rendered sets of objects pass Istio's own analyzers (`istioctl analyze --use-kube=false`).

istioctl is built from the pinned `istio.io/istio` module by `.ci/build-k8s`; without it these
tests are skipped, and with DEVMESH_REQUIRE_APISERVER=1 (as in CI, which builds it) they fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devmesh.config import load_project
from devmesh.plan import k8s
from tests.conftest import ProjectFactory
from tests.schemas import analyze
from tests.test_strategies import ALL_STRATEGIES, RES, shop

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
