"""What `devmesh render` prints is accepted by a real API server with Istio's real CRDs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from devmesh.runtime.kind.client import KubeClient
from tests.conftest import THREE_SERVICES_YAML, ProjectFactory, git
from tests.schemas import analyze
from tests.test_render import _render

pytestmark = pytest.mark.apiserver

AWKWARD = [
    "feature/cheaper-stock",
    "Feature/Ünïcödé-ß",
    "release/1.2.3",
    "x" * 120,
    "fix-0123456789abcdef",  # shaped like a hashed name: hashed too
    "baseline",
    "a",
]


def _apply_all(cluster: KubeClient, objects: list[dict[str, Any]]) -> None:
    # Namespaces first, as `up` applies them.
    for obj in sorted(objects, key=lambda o: o["kind"] != "Namespace"):
        stored = cluster.apply(obj)
        assert stored["metadata"]["name"] == obj["metadata"]["name"]
        assert stored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "devmesh"


@pytest.fixture
def app_name(cluster: KubeClient) -> Any:
    """An app of this test's own, so its namespace is its own; the namespace goes afterwards."""
    name = f"shop{uuid.uuid4().hex[:8]}"
    yield name
    cluster.delete("v1", "Namespace", f"devmesh-{name}")


@pytest.mark.parametrize("branch", AWKWARD)
def test_a_branchs_objects_are_accepted(make_project: ProjectFactory, capsys: pytest.CaptureFixture[str],
                                        cluster: KubeClient, app_name: str, branch: str, istioctl: str,
                                        tmp_path: Path) -> None:
    root = make_project(THREE_SERVICES_YAML.replace("app: shop", f"app: {app_name}"))
    git(root, "checkout", "-q", "-b", branch)
    (root / "services/api/app.py").write_text('print("changed")\n')
    git(root, "commit", "-qam", "api changed")
    objects = _render(root, capsys)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Deployment", "Service", "VirtualService", "DestinationRule", "Gateway"} <= kinds
    verdict = analyze(istioctl, objects, tmp_path)  # Istio's analyzers agree, offline
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    _apply_all(cluster, objects)
    namespace = f"devmesh-{app_name}"
    listed = cluster.list("networking.istio.io/v1", "VirtualService", namespace=namespace,
                          selector=f"devmesh.dev/app={app_name}")
    assert {v["metadata"]["name"] for v in listed} == {o["metadata"]["name"] for o in objects
                                                       if o["kind"] == "VirtualService"}


def test_the_baseline_and_every_service_forked(make_project: ProjectFactory, capsys: pytest.CaptureFixture[str],
                                               cluster: KubeClient, app_name: str) -> None:
    root = make_project(THREE_SERVICES_YAML.replace("app: shop", f"app: {app_name}"))
    git(root, "checkout", "-q", "-b", "feature/all")
    _apply_all(cluster, _render(root, capsys, "--all"))
    deployments = cluster.list("apps/v1", "Deployment", namespace=f"devmesh-{app_name}")
    assert len(deployments) == 6  # three baseline versions, three of the branch
