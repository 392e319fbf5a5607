"""The API's semantics devmesh relies on, held against both cluster clients: the fake of
tests/kind/fake_cluster.py and the real kube-apiserver (through ``KubeClient``).

Each test runs twice, ``[fake]`` and ``[real]``; the real half needs the control plane of
``.ci/apiserver`` (marker ``apiserver``). Where the two disagree, the fake is wrong. What only
the fake can do (pods held pending, log and exec fixtures) is in tests/kind/test_fake_cluster.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devmesh.runtime.kind.client import ApplyConflict, ClusterClient, ClusterError, Obj
from devmesh.runtime.kind.rollout import Rollout
from tests.apiserver.conftest import ControlPlane
from tests.kind.fake_cluster import FakeCluster

PULL_FAILS = "fail.invalid/image-pull:test"  # as .ci/apiserver's kwok stages name them
CRASHES = "fail.invalid/crash-loop:test"
NOWHERE = {"devmesh.test/no-such-node": "anywhere"}  # a node selector no node matches


@dataclass
class Api:
    """One cluster client under test, a namespace of its own, and the means to act as
    another field manager and to choose how pods fare."""

    side: str
    client: ClusterClient
    ns: str
    write_as: Callable[[Obj, str], None]  # (object, manager): another client's update
    fate: Callable[[str], dict[str, Any]]  # fate -> the Deployment's pod spec overrides

    def deployment(self, replicas: int = 1, image: str = "img:1", labels: dict[str, str] | None = None,
                   **pod: Any) -> Obj:
        return {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": self.ns, "labels": {"app": "web", **(labels or {})}},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "web", "image": image}], **pod}}}}

    def path(self, resource: str, name: str) -> str:
        """The request path KubeClient names in its errors."""
        return f"/apis/apps/v1/namespaces/{self.ns}/{resource}/{name}"


def _fake_api() -> Api:
    fake = FakeCluster(istio=False)  # the real API server here runs no Istio
    fates = {PULL_FAILS: "image-pull", CRASHES: "crash"}

    def fate_of(pod: Obj) -> str:
        spec = pod["spec"]
        if spec.get("nodeSelector") == NOWHERE:
            return "unschedulable"
        return fates.get(spec["containers"][0].get("image", ""), "ready")

    def write_as(obj: Obj, manager: str) -> None:
        fake.update(obj, manager=manager)

    fake.fate = fate_of
    return Api("fake", fake, "", write_as, _pod_overrides)


def _pod_overrides(fate: str) -> dict[str, Any]:
    """How a Deployment's pods are made to fare ``fate``, the same way on both sides."""
    return {"ready": {}, "image-pull": {"image": PULL_FAILS}, "crash": {"image": CRASHES},
            "unschedulable": {"nodeSelector": NOWHERE}}[fate]


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.apiserver)])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "fake":
        found = _fake_api()
    else:
        control_plane = request.getfixturevalue("control_plane")
        client = control_plane.client()

        def write_as(obj: Obj, manager: str) -> None:
            meta = obj["metadata"]
            patch = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            patch["metadata"] = {k: v for k, v in meta.items() if k not in ("name", "namespace")}
            control_plane.kubectl("-n", meta["namespace"], "patch", obj["kind"].lower(), meta["name"],
                                  "--type=merge", "-p", json.dumps(patch), f"--field-manager={manager}")

        found = Api("real", client, "", write_as, _pod_overrides)
    found.ns = f"c-{uuid.uuid4().hex[:10]}"
    found.client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": found.ns}})
    try:
        yield found
    finally:
        found.client.delete("v1", "Namespace", found.ns)
        found.client.close()


def _settled(api: Api, name: str, timeout: float = 60) -> Rollout:
    """The rollout once it is no longer progressing (the fake's is at once; kwok's within seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        rollout = api.client.rollout_status(api.ns, name)
        if rollout.state != "progressing" or time.monotonic() > deadline:
            return rollout
        time.sleep(0.2)


def test_namespaced_objects_need_their_namespace(api: Api) -> None:
    obj = api.deployment()
    obj["metadata"]["namespace"] = "no-such-namespace"
    with pytest.raises(ClusterError) as caught:
        api.client.apply(obj)
    assert caught.value.status == 404 and caught.value.reason == "NotFound"
    assert str(caught.value) == ("PATCH /apis/apps/v1/namespaces/no-such-namespace/deployments/web: 404 "
                                 'namespaces "no-such-namespace" not found')


def test_a_second_identical_apply_changes_nothing(api: Api) -> None:
    first = api.client.apply(api.deployment())
    # The deployment controller writes the status (a new resourceVersion) until it is rolled out.
    assert _settled(api, "web").state == "done"
    settled = api.client.get("apps/v1", "Deployment", "web", api.ns)
    assert settled is not None
    again = api.client.apply(api.deployment())
    assert again["metadata"]["resourceVersion"] == settled["metadata"]["resourceVersion"]
    assert first["metadata"]["generation"] == again["metadata"]["generation"] == 1
    assert "devmesh" in {m["manager"] for m in again["metadata"]["managedFields"]}
    labelled = api.client.apply(api.deployment(labels={"tier": "a"}))
    assert labelled["metadata"]["generation"] == 1  # metadata is not the desired state
    assert int(labelled["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    changed = api.client.apply(api.deployment(image="img:2", labels={"tier": "a"}))
    assert changed["metadata"]["generation"] == 2


def test_a_field_another_manager_owns_conflicts_unless_forced(api: Api) -> None:
    api.client.apply(api.deployment(replicas=1))
    api.write_as({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": api.ns}, "spec": {"replicas": 3}}, "kubectl-edit")
    with pytest.raises(ApplyConflict) as caught:
        api.client.apply(api.deployment(replicas=1), force=False)
    assert caught.value.status == 409
    assert str(caught.value) == (f"PATCH {api.path('deployments', 'web')}: 409 Apply failed with 1 conflict: "
                                 'conflict with "kubectl-edit" using apps/v1: .spec.replicas')
    # The same value as the other manager's is no conflict: both own it then.
    api.client.apply(api.deployment(replicas=3), force=False)
    forced = api.client.apply(api.deployment(replicas=1), force=True)
    assert forced["spec"]["replicas"] == 1
    managers = {m["manager"]: m for m in forced["metadata"]["managedFields"]}
    assert "f:replicas" in managers["devmesh"]["fieldsV1"]["f:spec"]
    assert "kubectl-edit" not in managers  # it owned only replicas, which devmesh took over


def test_several_conflicts_are_grouped_by_manager(api: Api) -> None:
    api.client.apply(api.deployment(labels={"t": "1"}))
    api.write_as({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": api.ns, "labels": {"t": "2"}},
                  "spec": {"replicas": 3}}, "kubectl-edit")
    api.write_as({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": api.ns}, "spec": {"minReadySeconds": 5}}, "ops")
    mine = api.deployment(labels={"t": "1"})
    mine["spec"]["minReadySeconds"] = 1
    with pytest.raises(ApplyConflict) as caught:
        api.client.apply(mine, force=False)
    assert str(caught.value) == (f"PATCH {api.path('deployments', 'web')}: 409 Apply failed with 3 conflicts: "
                                 'conflicts with "kubectl-edit" using apps/v1:\n'
                                 "- .metadata.labels.t\n- .spec.replicas\n"
                                 'conflicts with "ops" using apps/v1:\n- .spec.minReadySeconds')


def test_fields_a_manager_stops_applying_are_removed_unless_another_owns_them(api: Api) -> None:
    api.client.apply(api.deployment(labels={"tier": "a", "team": "x"}))
    api.write_as({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "web", "namespace": api.ns, "labels": {"owner": "ops"}}}, "ops")
    stored = api.client.apply(api.deployment(labels={"tier": "a"}))
    assert stored["metadata"]["labels"] == {"app": "web", "tier": "a", "owner": "ops"}


def test_list_by_selector_get_and_delete(api: Api) -> None:
    api.client.apply(api.deployment(labels={"env": "one"}))
    found = api.client.list("apps/v1", "Deployment", namespace=api.ns, selector="env=one")
    assert [d["metadata"]["name"] for d in found] == ["web"]
    assert found[0]["apiVersion"] == "apps/v1" and found[0]["kind"] == "Deployment"
    assert api.client.list("apps/v1", "Deployment", namespace=api.ns, selector="env=two") == []
    assert api.client.list("apps/v1", "Deployment", namespace=api.ns, selector="env in (one, three),!gone")
    assert api.client.list("apps/v1", "Deployment", namespace=api.ns, selector="env notin (one)") == []
    assert api.client.get("apps/v1", "Deployment", "nope", api.ns) is None
    assert api.client.delete("apps/v1", "Deployment", "web", api.ns) is True
    assert api.client.delete("apps/v1", "Deployment", "web", api.ns) is False


def test_a_namespace_terminates_before_it_is_gone(api: Api) -> None:
    api.client.apply(api.deployment())
    assert api.client.delete("v1", "Namespace", api.ns) is True
    terminating = api.client.get("v1", "Namespace", api.ns)
    assert terminating is not None and terminating["metadata"].get("deletionTimestamp")
    assert terminating["status"]["phase"] == "Terminating"
    assert api.client.delete("v1", "Namespace", api.ns) is True  # deleting again is no error meanwhile
    other = api.deployment()
    other["metadata"]["name"] = "late"
    with pytest.raises(ClusterError) as caught:
        api.client.apply(other)
    assert caught.value.status == 403
    assert str(caught.value) == (f"PATCH {api.path('deployments', 'late')}: 403 deployments.apps \"late\" is "
                                 f"forbidden: unable to create new content in namespace {api.ns} because it is "
                                 "being terminated")
    deadline = time.monotonic() + 60
    while api.client.get("v1", "Namespace", api.ns) is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert api.client.get("v1", "Namespace", api.ns) is None
    assert api.client.list("apps/v1", "Deployment", namespace=api.ns) == []
    assert api.client.list("v1", "Pod", namespace=api.ns) == []
    assert api.client.delete("v1", "Namespace", api.ns) is False


def test_an_invalid_replica_count_is_refused_with_the_field(api: Api) -> None:
    with pytest.raises(ClusterError) as caught:
        api.client.apply(api.deployment(replicas=-1))
    assert caught.value.status == 422 and caught.value.reason == "Invalid"
    assert str(caught.value) == (f"PATCH {api.path('deployments', 'web')}: 422 Deployment.apps \"web\" is invalid: "
                                 "spec.replicas: Invalid value: -1: must be greater than or equal to 0")


def test_a_route_weight_of_the_wrong_type_is_refused(api: Api) -> None:
    good = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "api", "namespace": api.ns},
            "spec": {"hosts": ["api"], "http": [{"route": [{"destination": {"host": "api", "subset": "baseline"},
                                                          "weight": 100}]}]}}
    stored = api.client.apply(good)
    assert stored["spec"]["http"][0]["route"][0]["weight"] == 100
    bad = {**good, "spec": {"hosts": ["api"], "http": [{"route": [{"destination": {"host": "api"},
                                                                    "weight": "lots"}]}]}}
    with pytest.raises(ClusterError) as caught:
        api.client.apply(bad)
    # Server-side apply cannot even type the patch: kube-apiserver answers 500, not 422.
    assert caught.value.status == 500
    assert ".spec.http[0].route[0].weight: expected numeric (int or float), got string" in str(caught.value)
    assert str(caught.value).startswith(
        f"PATCH /apis/networking.istio.io/v1/namespaces/{api.ns}/virtualservices/api: 500 ")
    assert api.client.get("networking.istio.io/v1", "VirtualService", "api", api.ns) == stored


@pytest.mark.parametrize(("fate", "state", "reason"), [
    ("ready", "done", ""),
    ("image-pull", "failed", "ImagePullBackOff"),
    ("crash", "failed", "CrashLoopBackOff"),
    ("unschedulable", "failed", "Unschedulable"),
])
def test_the_deployment_controller_and_rollout_status(api: Api, fate: str, state: str, reason: str) -> None:
    overrides = api.fate(fate)
    image = overrides.pop("image", "img:1")
    api.client.apply(api.deployment(image=image, **overrides))
    rollout = _settled(api, "web")
    assert (rollout.state, rollout.reason) == (state, reason), rollout
    deployment = api.client.get("apps/v1", "Deployment", "web", api.ns)
    assert deployment is not None
    assert deployment["status"].get("observedGeneration") == deployment["metadata"]["generation"]
    pods = api.client.list("v1", "Pod", namespace=api.ns, selector="app=web")
    assert len(pods) == 1 and pods[0]["spec"]["containers"][0]["image"] == image
    if fate == "ready":
        assert deployment["status"]["readyReplicas"] == 1 and pods[0]["status"]["phase"] == "Running"


@pytest.mark.apiserver
def test_the_real_server_is_the_pinned_kubernetes(control_plane: ControlPlane) -> None:
    client = control_plane.client()
    try:
        assert client.server_version().startswith("v1.34.")
    finally:
        client.close()
