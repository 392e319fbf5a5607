"""The kind runtime on a real API server: up, rollouts that really roll out, failures with
their reasons, two environments on one baseline, and down removing exactly what it should.

Nodes are kwok's: pods the real scheduler places become Running/Ready without containers, and
the images `.ci/apiserver` names fail on purpose (a pull that fails, a crash loop).
"""

from __future__ import annotations

import json
from pathlib import Path
import uuid
from collections.abc import Iterator

import pytest

from devmesh.config import Project, load_project
from devmesh.events import Sink, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend, Environment
from devmesh.plan.supervisor import Launch
from devmesh.runtime.kind.client import KubeClient
from devmesh.runtime.kind.runtime import KindRuntime, RolloutFailed
from tests.apiserver.conftest import ControlPlane
from tests.conftest import THREE_SERVICES_YAML, ProjectFactory

pytestmark = pytest.mark.apiserver

PULL_FAILS = "fail.invalid/image-pull:test"  # as .ci/apiserver's kwok stages name them
CRASHES = "fail.invalid/crash-loop:test"


class NamingPublisher:
    """Stands for the registry push: the image a backend runs is named by the test."""

    def __init__(self) -> None:
        self.images: dict[str, str] = {}

    def publish(self, local_ref: str, *, sink: Sink = discard) -> str:
        return self.images.get(local_ref, f"127.0.0.1:5001/{local_ref.split(':')[0]}@sha256:{'0' * 64}")

    def launch(self, local_ref: str) -> Launch:
        """As an image built FROM a Debian base with ``CMD ["python3", "app.py"]``."""
        return Launch(("python3", "app.py"))


def images(project: Project, *envs: Environment) -> dict[Backend, str]:
    out = {Backend(s, BASELINE_ENV): f"shop/{s}:base" for s in project.services}
    for env in envs:
        out |= {Backend(s, env.name): f"shop/{s}:{env.name}" for s in env.forks}
    return out


@pytest.fixture
def project(make_project: ProjectFactory, cluster: KubeClient) -> Iterator[Project]:
    app = f"shop{uuid.uuid4().hex[:8]}"
    root = make_project(THREE_SERVICES_YAML.replace("app: shop", f"app: {app}").replace("runtime: docker", "runtime: kind"))
    yield load_project(root / "devmesh.yaml")
    cluster.delete("v1", "Namespace", f"devmesh-{app}")


def runtime(project: Project, control_plane: ControlPlane, cluster: KubeClient,
            publisher: NamingPublisher | None = None) -> KindRuntime:
    return KindRuntime(project, context=control_plane.context, cluster=cluster,
                       publisher=publisher or NamingPublisher(), timeout=60)


def test_up_rolls_out_for_real_and_a_second_up_changes_nothing(project: Project, control_plane: ControlPlane,
                                                               cluster: KubeClient) -> None:
    one = Environment("one", ("api",), "feature/one")
    rt = runtime(project, control_plane, cluster)
    result = rt.up(one, images=images(project, one))
    assert result.changed
    assert all(s.state == "running" and s.ready for s in result.environment.services)
    ns = f"devmesh-{project.app}"
    for d in cluster.list("apps/v1", "Deployment", namespace=ns):
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "devmesh" and labels["devmesh.dev/app"] == project.app
        assert d["status"].get("readyReplicas") == d["spec"]["replicas"]
        assert {m["manager"] for m in d["metadata"]["managedFields"]} >= {"devmesh", "kube-controller-manager"}
    versions = {d["metadata"]["name"]: d["metadata"]["resourceVersion"]
                for d in cluster.list("apps/v1", "Deployment", namespace=ns)}
    again = rt.up(one, images=images(project, one))
    assert not again.changed
    assert versions == {d["metadata"]["name"]: d["metadata"]["resourceVersion"]
                        for d in cluster.list("apps/v1", "Deployment", namespace=ns)}


def test_two_environments_share_one_baseline_and_down_removes_exactly_one(
        project: Project, control_plane: ControlPlane, cluster: KubeClient) -> None:
    one, two = Environment("one", ("api",), "one"), Environment("two", ("stock",), "two")
    rt = runtime(project, control_plane, cluster)
    rt.up(one, images=images(project, one))
    rt.up(two, images=images(project, two))
    ns = f"devmesh-{project.app}"
    assert sorted(d["metadata"]["name"] for d in cluster.list("apps/v1", "Deployment", namespace=ns)) == [
        "api-baseline", "api-one", "stock-baseline", "stock-two", "web-baseline"]
    assert [e.name for e in rt.environments()] == ["baseline", "one", "two"]

    removed = rt.down("two")
    assert sorted(removed) == ["Deployment stock-two", "VirtualService shop-gateway-two".replace("shop", project.app)]
    left = sorted(d["metadata"]["name"] for d in cluster.list("apps/v1", "Deployment", namespace=ns))
    assert left == ["api-baseline", "api-one", "stock-baseline", "web-baseline"]
    stock = cluster.get("networking.istio.io/v1", "DestinationRule", "stock", ns)
    assert stock is not None and [s["name"] for s in stock["spec"]["subsets"]] == ["baseline"]

    gone = rt.down(BASELINE_ENV, baseline=True)
    assert f"Namespace {ns}" in gone
    assert cluster.list("apps/v1", "Deployment", namespace=ns) == []


@pytest.mark.parametrize(("image", "reason"), [(PULL_FAILS, "ImagePullBackOff"), (CRASHES, "CrashLoopBackOff")])
def test_a_pod_that_cannot_start_is_reported_with_its_reason(project: Project, control_plane: ControlPlane,
                                                            cluster: KubeClient, image: str, reason: str) -> None:
    bad = Environment("bad", ("api",), "bad")
    publisher = NamingPublisher()
    publisher.images["shop/api:bad"] = image
    rt = runtime(project, control_plane, cluster, publisher)
    with pytest.raises(RolloutFailed) as caught:
        rt.up(bad, images=images(project, bad))
    assert reason in str(caught.value) and "api (bad)" in str(caught.value)


def test_ls_status_and_down_through_the_cli_with_context(project: Project, control_plane: ControlPlane,
                                                         cluster: KubeClient, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from devmesh.cli import main

    one = Environment("one", ("api",), "one")
    runtime(project, control_plane, cluster).up(one, images=images(project, one))
    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))

    def cli(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(["-c", str(project.path), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = cli("ls", "--json", "--context", control_plane.context)
    assert code == 0, err
    envs = {e["name"]: e for e in json.loads(out)["environments"]}
    assert set(envs) == {"baseline", "one"}
    assert {s["service"]: s["env"] for s in envs["one"]["services"]} == {"web": "baseline", "api": "one",
                                                                        "stock": "baseline"}
    code, out, err = cli("down", "--env", "one", "--context", control_plane.context)
    assert code == 0, err
    assert "removed" in out
    ns = f"devmesh-{project.app}"
    # the last environment took the baseline with it
    assert cluster.list("apps/v1", "Deployment", namespace=ns) == []


def test_a_context_that_does_not_exist_is_one_clear_error(project: Project, control_plane: ControlPlane,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from devmesh.cli import main

    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    with pytest.raises(SystemExit) as done:
        main(["-c", str(project.path), "ls", "--context", "no-such-context"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert "no-such-context" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1


def test_cluster_status_of_an_existing_cluster_without_kind_or_registry(
        project: Project, control_plane: ControlPlane, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A `--context` cluster is not devmesh's kind cluster: no kind is run, the registry is
    not probed, and what it lacks (Istio's control plane) is said."""
    from devmesh.cli import main

    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    monkeypatch.setenv("PATH", str(tmp_path))  # no kind, no docker, no istioctl to be found
    with pytest.raises(SystemExit) as done:
        main(["-c", str(project.path), "cluster", "status", "--context", control_plane.context])
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "ok" in rows["API"] and "Kubernetes v1.34." in rows["API"]
    assert "PROBLEM" in rows["Istio"] and "not installed" in rows["Istio"]
    assert "not checked" in rows["registry"]
    assert done.value.code == 1
