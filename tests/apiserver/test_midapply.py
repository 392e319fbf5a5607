"""The real kube-apiserver stopped in the middle of the kind runtime's `up`, and started again.

This module runs a control plane of its own (the session's is shared by every other test and
must keep answering): `.ci/apiserver stop --component kube-apiserver` takes the API server
away between two applies, or during the rollout wait; `start` brings it back on the same port,
with the same certificates and etcd data. The error is one line saying how far `up` got; the
next `up` applies only what is missing and waits for the rollout.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devmesh.config import Project, load_project
from devmesh.plan.routing import Environment
from devmesh.runtime.kind.client import ClusterUnreachable, KubeClient, Obj, open_client
from devmesh.runtime.kind.rollout import Rollout
from devmesh.runtime.kind.runtime import KindRuntime
from tests.apiserver.conftest import ENV, SCRIPT, ControlPlane, _missing_binaries, _unavailable
from tests.apiserver.test_kind_runtime_real import NamingPublisher, images
from tests.conftest import THREE_SERVICES_YAML, ProjectFactory

pytestmark = pytest.mark.apiserver

ONE = Environment("one", ("api",), "feature/one")
# What `up` of ONE applies to an empty cluster: the namespace, the supervisor's ConfigMap (the
# branch's api is live-synced), four Deployments, three Services, three DestinationRules, the
# Gateway, five VirtualServices, the access logs of the sidecars and of the gateway.
OBJECTS = 20


def apiserver(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env=ENV)


@pytest.fixture(scope="module")
def plane() -> Iterator[ControlPlane]:
    """A control plane for this module alone, down at its end."""
    if os.environ.get("DEVMESH_REQUIRE_APISERVER") != "1" and _missing_binaries():
        pytest.skip("the control plane is not built: run .ci/build-k8s")
    name = f"midapply-{os.getpid()}"
    up = apiserver("up", "--name", name)
    if up.returncode != 0:
        apiserver("down", "--name", name)
        _unavailable(f".ci/apiserver up --name {name} failed: {up.stderr.strip().splitlines()[-5:]}")
    kubectl = subprocess.run([str(SCRIPT.parent / "build-k8s"), "--print", "bin", "kubectl"],
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    try:
        yield ControlPlane(name, Path(up.stdout.strip().splitlines()[-1]), f"devmesh-apiserver-{name}", kubectl)
    finally:
        apiserver("down", "--name", name)


def component(plane: ControlPlane, action: str, proc: str = "kube-apiserver") -> None:
    done = apiserver(action, "--name", plane.name, "--component", proc)
    assert done.returncode == 0, done.stderr


class Watched(KubeClient):
    """The real client, recording each apply; ``before_apply(n)`` runs before the n-th (from
    1), ``before_rollout_check(n)`` before the n-th rollout check."""

    def __init__(self, plane: ControlPlane) -> None:
        base = open_client(plane.context, kubeconfig=str(plane.kubeconfig))
        super().__init__(base.api, base.context)
        self.applied: list[str] = []
        self.checks = 0
        self.before_apply: Callable[[int], None] = lambda n: None
        self.before_rollout_check: Callable[[int], None] = lambda n: None

    def apply(self, obj: Obj, *, force: bool = True) -> Obj:
        self.before_apply(len(self.applied) + 1)
        stored = super().apply(obj, force=force)
        self.applied.append(f"{obj['kind']} {obj['metadata']['name']}")
        return stored

    def rollout_status(self, namespace: str, name: str) -> Rollout:
        self.checks += 1
        self.before_rollout_check(self.checks)
        return super().rollout_status(namespace, name)


@pytest.fixture
def client(plane: ControlPlane) -> Iterator[Watched]:
    watched = Watched(plane)
    try:
        yield watched
    finally:
        watched.close()


@pytest.fixture
def project(make_project: ProjectFactory, plane: ControlPlane) -> Iterator[Project]:
    app = f"shop{uuid.uuid4().hex[:8]}"
    root = make_project(THREE_SERVICES_YAML.replace("app: shop", f"app: {app}").replace("runtime: docker", "runtime: kind"))
    yield load_project(root / "devmesh.yaml")
    component(plane, "start")  # a failed test must not leave the next without a server
    cleanup = plane.client()
    cleanup.delete("v1", "Namespace", f"devmesh-{app}")
    cleanup.close()


def runtime(project: Project, plane: ControlPlane, client: KubeClient) -> KindRuntime:
    return KindRuntime(project, context=plane.context, cluster=client, publisher=NamingPublisher(), timeout=60)


def versions(client: KubeClient, ns: str, described: list[str]) -> dict[str, str]:
    """resourceVersion of each of ``described`` ("Kind name")."""
    api = {"Namespace": "v1", "ConfigMap": "v1", "Service": "v1", "Deployment": "apps/v1",
           "EnvoyFilter": "networking.istio.io/v1alpha3"}
    out = {}
    for what in described:
        kind, name = what.split(" ", 1)
        version = api.get(kind, "networking.istio.io/v1")
        obj = client.get(version, kind, name, None if kind == "Namespace" else ns)
        if obj is None and kind == "EnvoyFilter":  # the gateway's access log, beside the gateway
            obj = client.get(version, kind, name, "istio-system")
        assert obj is not None, what
        out[what] = obj["metadata"]["resourceVersion"]
    return out


def wait_ready(client: KubeClient, ns: str, deployments: list[str]) -> None:
    deadline = time.monotonic() + 60
    while not all(client.rollout_status(ns, d).done for d in deployments):
        assert time.monotonic() < deadline, f"{deployments} not ready after 60 s"
        time.sleep(0.5)


def test_the_server_stopped_after_four_objects_and_the_next_up_finishes(
        project: Project, plane: ControlPlane, client: Watched) -> None:
    ns = f"devmesh-{project.app}"
    client.before_apply = lambda n: component(plane, "stop") if n == 5 else None
    rt = runtime(project, plane, client)
    with pytest.raises(ClusterUnreachable) as caught:
        rt.up(ONE, images=images(project, ONE))
    first = list(client.applied)
    assert first == [f"Namespace {ns}", "ConfigMap devmesh-supervisor", "Deployment web-baseline",
                     "Deployment api-baseline"]
    server = plane.kubeconfig.read_text().split("server: ", 1)[1].split("\n", 1)[0]
    assert str(caught.value) == (
        f"the API server of context {plane.context!r} ({server}) stopped answering after 4 of {OBJECTS} "
        f"objects (connection refused): created Namespace {ns}, ConfigMap devmesh-supervisor, "
        "Deployment web-baseline and 1 more; not yet Deployment stock-baseline and 15 more; "
        "nothing was rolled back: run `devmesh up` again to finish")
    status = apiserver("status", "--name", plane.name)
    assert status.returncode == 3 and "stopped: kube-apiserver" in status.stdout

    kubeconfig = plane.kubeconfig.read_text()
    component(plane, "start")
    assert plane.kubeconfig.read_text() == kubeconfig  # the same server, certificates and data
    assert apiserver("status", "--name", plane.name).returncode == 0
    # What was applied before the stop, once its Deployments have settled, is not written again.
    wait_ready(client, ns, ["web-baseline", "api-baseline"])
    before = versions(client, ns, first)
    client.before_apply, client.applied = lambda n: None, []
    result = rt.up(ONE, images=images(project, ONE))
    assert len(client.applied) == OBJECTS - len(first) and not set(first) & set(client.applied)
    assert versions(client, ns, first) == before
    assert all(s.state == "running" and s.ready for s in result.environment.services)
    assert sorted(d["metadata"]["name"] for d in client.list("apps/v1", "Deployment", namespace=ns)) == [
        "api-baseline", "api-one", "stock-baseline", "web-baseline"]
    assert len(versions(client, ns, first + client.applied)) == OBJECTS
    client.applied = []
    assert not rt.up(ONE, images=images(project, ONE)).changed and client.applied == []


def test_the_server_stopped_during_the_rollout_wait(project: Project, plane: ControlPlane,
                                                    client: Watched) -> None:
    client.before_rollout_check = lambda n: component(plane, "stop") if n == 1 else None
    rt = runtime(project, plane, client)
    with pytest.raises(ClusterUnreachable) as caught:
        rt.up(ONE, images=images(project, ONE))
    message = str(caught.value)
    assert message.startswith(f"the API server of context {plane.context!r} (")
    assert (f"stopped answering while waiting for the rollout, after all {OBJECTS} objects were "
            "applied (connection refused): created Namespace ") in message
    assert message.endswith("not ready yet: api (baseline), stock (baseline), web (baseline), api (one); "
                            "nothing was rolled back: run `devmesh up` again to finish")
    assert len(client.applied) == OBJECTS and "\n" not in message

    component(plane, "start")
    client.before_rollout_check, client.applied = lambda n: None, []
    result = rt.up(ONE, images=images(project, ONE))
    assert client.applied == [] and not result.changed
    assert all(s.state == "running" and s.ready for s in result.environment.services)


def test_up_starts_a_stopped_component_again_and_down_stops_restarted_ones(plane: ControlPlane) -> None:
    plane.kubectl("create", "configmap", "kept", "-n", "default")
    component(plane, "stop", "kwok")
    component(plane, "start", "kwok")
    component(plane, "stop", "kube-scheduler")
    component(plane, "stop", "kube-apiserver")
    # `up` of a name with components stopped starts them again, keeping etcd's data.
    again = apiserver("up", "--name", plane.name)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == str(plane.kubeconfig)
    assert "is up again (started kube-apiserver, kube-scheduler)" in again.stderr
    plane.kubectl("get", "configmap", "kept", "-n", "default")
    status = apiserver("status", "--name", plane.name)
    assert status.returncode == 0, status.stdout
    pids = [int(line.split("pid ")[1].rstrip(")")) for line in status.stdout.splitlines() if "(pid " in line]
    assert len(pids) == 5
    down = apiserver("down", "--name", plane.name)
    assert down.returncode == 0 and "stopped etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok" in down.stderr
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()
                and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
