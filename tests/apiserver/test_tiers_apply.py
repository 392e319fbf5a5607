"""Every tier of the manifest repo, as `kubectl kustomize` renders it, is accepted by a real API
server with Istio's real CRDs: what Argo CD or Flux would apply."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devmesh.config import load_project
from devmesh.gitops.cache import open_checkout
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.scaffold import scaffold, specs_from_project
from devmesh.gitops.settings import manifest_settings
from devmesh.runtime.kind.client import KubeClient
from tests.gitops.gitops_helpers import digest_ref, write_project

pytestmark = pytest.mark.apiserver


@pytest.fixture
def namespace(cluster: KubeClient) -> Iterator[str]:
    name = f"tier-{uuid.uuid4().hex[:8]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    cluster.delete("v1", "Namespace", name)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (it renders the overlay)")
def test_each_tier_is_accepted_whole(cluster: KubeClient, namespace: str, tmp_path: Path) -> None:
    remote = tmp_path / "manifests.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(remote)], check=True)
    project = load_project(write_project(tmp_path / "shop", str(remote)))
    with open_checkout(manifest_settings(project)) as co:
        scaffold(co, "shop", specs_from_project(project), ["dev", "prod"])
        promote(co, PromotionRequest("api", "dev", digest_ref("a")))
        tiers = {tier: subprocess.run(["kubectl", "kustomize", str(co.layout().tier_file(tier).parent)],
                                      capture_output=True, text=True, check=True).stdout
                 for tier in ("dev", "prod")}
    for tier, rendered in tiers.items():
        objects = list(yaml.safe_load_all(rendered))
        assert {o["kind"] for o in objects} == {"Deployment", "Service", "DestinationRule", "VirtualService"}, tier
        for obj in objects:
            obj["metadata"]["namespace"] = namespace  # as an Application's destination sets it
            stored = cluster.apply(obj)
            assert stored["metadata"]["labels"]["devmesh.dev/app"] == "shop"
    routes = cluster.get("networking.istio.io/v1", "VirtualService", "api", namespace)
    assert routes is not None
    assert routes["spec"]["http"][0]["route"][0]["destination"]["subset"] == "baseline"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (it renders the overlay)")
def test_a_tier_running_a_canary_is_accepted_with_its_candidate_and_split(
        cluster: KubeClient, namespace: str, tmp_path: Path) -> None:
    from devmesh.app.releases import tier_strategy_request
    from devmesh.gitops.tier_strategy import change_traffic

    remote = tmp_path / "manifests.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(remote)], check=True)
    project = load_project(write_project(tmp_path / "shop", str(remote)))
    with open_checkout(manifest_settings(project)) as co:
        scaffold(co, "shop", specs_from_project(project), ["dev", "prod"])
        promote(co, PromotionRequest("api", "dev", digest_ref("a")))
        promote(co, PromotionRequest("api", "prod"))
        promote(co, PromotionRequest("api", "dev", digest_ref("b")))
        landed = change_traffic(co, project, tier_strategy_request(project, "api", "prod", "canary", weight=20,
                                                                   sticky="x-user-id"))
        assert landed.change is not None
        rendered = subprocess.run(["kubectl", "kustomize", str(co.layout().tier_file("prod").parent)],
                                  capture_output=True, text=True, check=True).stdout
    for obj in yaml.safe_load_all(rendered):
        obj["metadata"]["namespace"] = namespace
        cluster.apply(obj)
    candidate = cluster.get("apps/v1", "Deployment", "api-candidate", namespace)
    assert candidate is not None
    assert candidate["spec"]["template"]["spec"]["containers"][0]["image"] == str(digest_ref("b"))
    assert candidate["spec"]["template"]["metadata"]["labels"]["devmesh.dev/env"] == "candidate"
    primary = cluster.get("apps/v1", "Deployment", "api", namespace)
    assert primary is not None and primary["spec"]["template"]["spec"]["containers"][0]["image"] == str(digest_ref("a"))
    rules = cluster.get("networking.istio.io/v1", "DestinationRule", "api", namespace)
    assert rules is not None and {s["name"] for s in rules["spec"]["subsets"]} == {"baseline", "candidate"}
    routes = cluster.get("networking.istio.io/v1", "VirtualService", "api", namespace)
    assert routes is not None
    split = [{d["destination"]["subset"]: d.get("weight") for d in r["route"]} for r in routes["spec"]["http"]]
    assert {"baseline": 80, "candidate": 20} in split
