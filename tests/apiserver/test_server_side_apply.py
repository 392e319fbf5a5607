"""KubeClient against the real API server: server-side apply as devmesh uses it.

The same semantics the fake cluster promises (tests/kind/test_fake_cluster.py), checked
where they are defined: by kube-apiserver itself. Where the two disagree, the fake is wrong.
"""

from __future__ import annotations

from typing import Any

import pytest

from devmesh.runtime.kind.client import ApplyConflict, ClusterError, KubeClient
from tests.apiserver.conftest import ControlPlane

pytestmark = pytest.mark.apiserver


def _deployment(namespace: str, replicas: int = 1, image: str = "img:1",
                labels: dict[str, str] | None = None) -> dict[str, Any]:
    lbls = {"app": "web", **(labels or {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace, "labels": lbls},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}}


def test_the_server_is_the_pinned_kubernetes(cluster: KubeClient) -> None:
    assert cluster.server_version().startswith("v1.34.")


def test_a_second_identical_apply_changes_nothing(cluster: KubeClient, namespace: str) -> None:
    first = cluster.apply(_deployment(namespace))
    again = cluster.apply(_deployment(namespace))
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert first["metadata"]["generation"] == again["metadata"]["generation"] == 1
    managers = {m["manager"] for m in again["metadata"]["managedFields"]}
    assert "devmesh" in managers
    changed = cluster.apply(_deployment(namespace, image="img:2"))
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_namespaced_objects_need_their_namespace(cluster: KubeClient) -> None:
    with pytest.raises(ClusterError) as caught:
        cluster.apply(_deployment("no-such-namespace"))
    assert caught.value.status == 404 and 'namespaces "no-such-namespace" not found' in str(caught.value)


def test_a_field_another_manager_owns_conflicts_unless_forced(control_plane: ControlPlane, cluster: KubeClient,
                                                              namespace: str) -> None:
    cluster.apply(_deployment(namespace, replicas=1))
    control_plane.kubectl("-n", namespace, "patch", "deployment", "web", "--type=merge",
                          "-p", '{"spec":{"replicas":3}}', "--field-manager=kubectl-edit")
    with pytest.raises(ApplyConflict) as caught:
        cluster.apply(_deployment(namespace, replicas=1), force=False)
    assert caught.value.status == 409
    # word for word what the fake cluster says (tests/kind/test_fake_cluster.py)
    assert str(caught.value).endswith(': 409 Apply failed with 1 conflict: conflict with "kubectl-edit" '
                                      "using apps/v1: .spec.replicas")
    # The same value as the other manager's is no conflict: both own it then.
    cluster.apply(_deployment(namespace, replicas=3), force=False)
    forced = cluster.apply(_deployment(namespace, replicas=1), force=True)
    assert forced["spec"]["replicas"] == 1
    managers = {m["manager"]: m for m in forced["metadata"]["managedFields"]}
    assert "f:replicas" in managers["devmesh"]["fieldsV1"]["f:spec"]
    assert "kubectl-edit" not in managers  # it owned only replicas, which devmesh took over


def test_fields_a_manager_stops_applying_are_removed_unless_another_owns_them(
        control_plane: ControlPlane, cluster: KubeClient, namespace: str) -> None:
    cluster.apply(_deployment(namespace, labels={"tier": "a", "team": "x"}))
    control_plane.kubectl("-n", namespace, "label", "deployment", "web", "owner=ops", "--field-manager=ops")
    stored = cluster.apply(_deployment(namespace, labels={"tier": "a"}))
    assert stored["metadata"]["labels"] == {"app": "web", "tier": "a", "owner": "ops"}


def test_list_by_selector_and_delete(cluster: KubeClient, namespace: str) -> None:
    cluster.apply(_deployment(namespace, labels={"env": "one"}))
    found = cluster.list("apps/v1", "Deployment", namespace=namespace, selector="env=one")
    assert [d["metadata"]["name"] for d in found] == ["web"]
    assert cluster.list("apps/v1", "Deployment", namespace=namespace, selector="env=two") == []
    assert cluster.list("apps/v1", "Deployment", namespace=namespace, selector="env in (one, three),!gone")
    assert cluster.delete("apps/v1", "Deployment", "web", namespace) is True
    assert cluster.delete("apps/v1", "Deployment", "web", namespace) is False
    assert cluster.get("apps/v1", "Deployment", "nope", namespace) is None


def test_istio_objects_meet_the_real_crd_schemas(cluster: KubeClient, namespace: str) -> None:
    good = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "api", "namespace": namespace},
            "spec": {"hosts": ["api"], "http": [{"route": [{"destination": {"host": "api", "subset": "baseline"},
                                                          "weight": 100}]}]}}
    stored = cluster.apply(good)
    assert stored["spec"]["http"][0]["route"][0]["weight"] == 100
    bad = {**good, "spec": {"hosts": ["api"], "http": [{"route": [{"destination": {"host": "api"},
                                                                    "weight": "lots"}]}]}}
    with pytest.raises(ClusterError) as caught:
        cluster.apply(bad)
    # Server-side apply cannot even type the patch: kube-apiserver answers 500, not 422, and
    # names the field; devmesh shows that message as it is.
    assert caught.value.status == 500
    assert ".spec.http[0].route[0].weight: expected numeric (int or float), got string" in str(caught.value)
    assert cluster.get("networking.istio.io/v1", "VirtualService", "api", namespace) == stored


def test_an_invalid_value_is_refused_with_the_field(cluster: KubeClient, namespace: str) -> None:
    with pytest.raises(ClusterError) as caught:
        cluster.apply(_deployment(namespace, replicas=-1))
    assert caught.value.status == 422
    assert "spec.replicas" in str(caught.value) and "greater than or equal to 0" in str(caught.value)


def test_several_conflicts_are_grouped_by_manager(control_plane: ControlPlane, cluster: KubeClient,
                                                  namespace: str) -> None:
    cluster.apply(_deployment(namespace, labels={"t": "1"}))
    control_plane.kubectl("-n", namespace, "patch", "deployment", "web", "--type=merge", "-p",
                          '{"spec":{"replicas":3},"metadata":{"labels":{"t":"2"}}}', "--field-manager=kubectl-edit")
    control_plane.kubectl("-n", namespace, "patch", "deployment", "web", "--type=merge", "-p",
                          '{"spec":{"minReadySeconds":5}}', "--field-manager=ops")
    mine = _deployment(namespace, labels={"t": "1"})
    mine["spec"]["minReadySeconds"] = 1
    with pytest.raises(ApplyConflict) as caught:
        cluster.apply(mine, force=False)
    # word for word what the fake cluster says (tests/kind/test_fake_cluster.py)
    assert str(caught.value).endswith(': 409 Apply failed with 3 conflicts: conflicts with "kubectl-edit" using apps/v1:\n'
                                      "- .metadata.labels.t\n- .spec.replicas\n"
                                      'conflicts with "ops" using apps/v1:\n- .spec.minReadySeconds')
