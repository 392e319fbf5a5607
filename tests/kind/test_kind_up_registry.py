"""`devmesh up --runtime kind` as the session runs it: real builds on the Docker engine, real
pushes to a real registry (Debian's docker-registry on 127.0.0.1), the fake cluster client."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from devmesh.app import environments as session
from devmesh.config import load_project
from devmesh.runtime.kind.runtime import KindRuntime
from tests.docker_env import run_git, scaffold_shop
from tests.gitops.conftest import registry  # noqa: F401 - the fixture
from tests.kind.conftest import Events
from tests.kind.fake_cluster import FakeCluster

pytestmark = pytest.mark.docker


def _manifest_exists(registry_address: str, repository: str, digest: str) -> bool:
    request = urllib.request.Request(
        f"http://{registry_address}/v2/{repository}/manifests/{digest}", method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return bool(resp.status == 200)


def test_up_builds_pushes_and_pins_digests(tmp_path: Path, registry: str, events: Events) -> None:  # noqa: F811
    root, app, port = scaffold_shop(tmp_path / "shop")
    config = root / "devmesh.yaml"
    config.write_text(config.read_text() + f"cluster:\n  registry: {registry}\n")
    run_git(root, "commit", "-qam", "registry")
    run_git(root, "checkout", "-q", "-b", "feature/cheaper-stock")
    api = root / "services/api/app.py"
    api.write_text(api.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"'))
    run_git(root, "commit", "-qam", "api v2")
    project = load_project(config)
    fake = FakeCluster()
    rt = KindRuntime(project, cluster=fake, timeout=10)

    outcome = session.up(project, runtime="kind", sink=events, rt=rt)
    env = outcome.selection.environment
    assert env.forks == ("api",)
    deployments = {d["metadata"]["name"]: d for d in fake.list("apps/v1", "Deployment")}
    assert sorted(deployments) == ["api-baseline", f"api-{env.name}", "stock-baseline", "web-baseline"]
    for name, d in deployments.items():
        image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        repository, _, digest = image.partition("@")
        assert repository == f"{registry}/{app}/{name.split('-')[0]}" and digest.startswith("sha256:")
        assert _manifest_exists(registry, repository.split("/", 1)[1], digest), image
    base, fork = (deployments[n]["spec"]["template"]["spec"]["containers"][0]["image"]
                  for n in ("api-baseline", f"api-{env.name}"))
    assert base != fork
    assert outcome.result.environment.preview_url == f"http://{env.name}.{app}.localhost:{port}/"
    pushed = [m for m in events.messages() if m.startswith("pushed ")]
    assert len(pushed) == 4, pushed

    # Again: nothing to build, the same digests, nothing applied.
    fake.calls.clear()
    again = session.up(project, runtime="kind", sink=events, rt=rt)
    assert not again.result.changed
    assert not [c for c in fake.calls if c[0] in ("apply", "delete")]
    listed = json.dumps([e.to_json() for e in rt.environments()])
    assert env.name in listed
