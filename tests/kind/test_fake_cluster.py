"""The fake is held to the protocol and to the API's semantics that devmesh relies on."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devmesh.runtime.kind.client import ApplyConflict, ClusterClient, ClusterError, KubeClient
from tests.kind.fake_cluster import FakeCluster, selector_matches

REPO = Path(__file__).resolve().parents[2]


def _members() -> list[str]:
    return [n for n, v in vars(ClusterClient).items()
            if not n.startswith("_") and (callable(v) or isinstance(v, property))]


@pytest.mark.parametrize("impl", [FakeCluster, KubeClient])
def test_implementations_match_the_protocol_signatures(impl: type) -> None:
    assert set(_members()) == {"context", "server_version", "apply", "get", "list", "delete",
                               "pod_logs", "exec", "rollout_status", "close"}
    for name in _members():
        wanted, found = getattr(ClusterClient, name), getattr(impl, name)
        if isinstance(wanted, property):
            assert isinstance(found, property), name
            continue
        assert inspect.signature(found) == inspect.signature(wanted), name


def test_the_fake_is_a_cluster_client_for_the_type_checker(tmp_path: Path) -> None:
    assert isinstance(FakeCluster(), ClusterClient)
    snippet = tmp_path / "check_protocol.py"
    snippet.write_text(
        "from devmesh.runtime.kind.client import ClusterClient, KubeClient\n"
        "from tests.kind.fake_cluster import FakeCluster\n"
        "fake: ClusterClient = FakeCluster()\n"
        "def real(k: KubeClient) -> ClusterClient:\n"
        "    return k\n"
    )
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports",
                           "--follow-imports=silent", str(snippet)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    if "No module named mypy" in done.stderr:
        pytest.skip("mypy is not installed")
    assert done.returncode == 0, done.stdout + done.stderr


def _deployment(replicas: int = 1, image: str = "img:1", labels: dict[str, str] | None = None) -> dict[str, Any]:
    lbls = {"app": "web", **(labels or {})}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "ns", "labels": lbls},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}}


def _ns(fake: FakeCluster, name: str = "ns") -> None:
    fake.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def test_namespaced_objects_need_their_namespace(fake: FakeCluster) -> None:
    with pytest.raises(ClusterError) as caught:
        fake.apply(_deployment())
    assert caught.value.status == 404 and 'namespaces "ns" not found' in str(caught.value)


def test_generation_moves_only_when_the_desired_state_changes(fake: FakeCluster) -> None:
    _ns(fake)
    first = fake.apply(_deployment())
    again = fake.apply(_deployment())
    assert first["metadata"]["generation"] == again["metadata"]["generation"] == 1
    changed = fake.apply(_deployment(image="img:2"))
    assert changed["metadata"]["generation"] == 2
    assert int(changed["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_apply_conflicts_with_another_managers_field_unless_forced(fake: FakeCluster) -> None:
    _ns(fake)
    fake.apply(_deployment(replicas=1))
    fake.update({**_deployment(), "spec": {**_deployment()["spec"], "replicas": 3}}, manager="kubectl-edit")
    with pytest.raises(ApplyConflict) as caught:
        fake.apply(_deployment(replicas=1), force=False)
    assert caught.value.status == 409
    assert str(caught.value) == ('Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: '
                                 ".spec.replicas")
    # The same value as the other manager's is no conflict: both own it.
    fake.apply(_deployment(replicas=3), force=False)
    forced = fake.apply(_deployment(replicas=1), force=True)
    assert forced["spec"]["replicas"] == 1
    managers = {m["manager"]: m for m in forced["metadata"]["managedFields"]}
    assert "f:replicas" in managers["devmesh"]["fieldsV1"]["f:spec"]
    assert "kubectl-edit" not in managers  # it owned only replicas, which devmesh took over


def test_fields_a_manager_stops_applying_are_removed_unless_another_owns_them(fake: FakeCluster) -> None:
    _ns(fake)
    fake.apply(_deployment(labels={"tier": "a", "team": "x"}))
    fake.update({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "web", "namespace": "ns", "labels": {"owner": "ops"}}},
                manager="ops")
    stored = fake.apply(_deployment(labels={"tier": "a"}))
    assert stored["metadata"]["labels"] == {"app": "web", "tier": "a", "owner": "ops"}


def test_label_selectors() -> None:
    labels = {"a": "1", "b": "2"}
    assert selector_matches("a=1,b==2", labels)
    assert not selector_matches("a=1,b!=2", labels)
    assert selector_matches("a in (1, 3),c notin (x)", labels)
    assert not selector_matches("a notin (1)", labels)
    assert selector_matches("b,!c", labels) and not selector_matches("!b", labels)


def test_list_by_selector_and_delete_cascades(fake: FakeCluster) -> None:
    _ns(fake)
    fake.apply(_deployment(labels={"env": "one"}))
    assert [d["metadata"]["name"] for d in fake.list("apps/v1", "Deployment", selector="env=one")] == ["web"]
    assert fake.list("apps/v1", "Deployment", selector="env=two") == []
    assert len(fake.list("v1", "Pod", namespace="ns", selector="app=web")) == 1
    assert fake.delete("v1", "Namespace", "ns") is True
    assert fake.list("apps/v1", "Deployment") == [] and fake.list("v1", "Pod") == []
    assert fake.delete("v1", "Namespace", "ns") is False


@pytest.mark.parametrize(("fate", "state", "reason"), [
    ("ready", "done", ""),
    ("pending", "progressing", "Progressing"),
    ("image-pull", "failed", "ImagePullBackOff"),
    ("crash", "failed", "CrashLoopBackOff"),
    ("unschedulable", "failed", "Unschedulable"),
])
def test_the_deployment_controller_and_rollout_status(fake: FakeCluster, fate: str, state: str,
                                                      reason: str) -> None:
    _ns(fake)
    fake.fate = lambda pod: fate
    fake.apply(_deployment())
    rollout = fake.rollout_status("ns", "web")
    assert (rollout.state, rollout.reason) == (state, reason)


def test_logs_and_exec_come_from_fixtures(fake: FakeCluster) -> None:
    _ns(fake)
    fake.apply(_deployment())
    pod = fake.list("v1", "Pod", namespace="ns")[0]["metadata"]["name"]
    fake.add_logs("app=web", "web", "one", "two", "three")
    lines = list(fake.pod_logs("ns", pod, container="web", tail=2))
    assert [line.split(" ", 1)[1] for line in lines] == ["two", "three"]
    assert list(fake.pod_logs("ns", pod, container="web", timestamps=False)) == ["one", "two", "three"]
    with pytest.raises(ClusterError, match="container nope is not valid"):
        list(fake.pod_logs("ns", pod, container="nope"))
    result = fake.exec("ns", pod, ["tar", "-x", "-f", "-", "-C", "/app"], container="web", stdin=b"TAR")
    assert result.exit_code == 0
    assert fake.exec_calls[-1].stdin == b"TAR" and fake.exec_calls[-1].command[0] == "tar"
    with pytest.raises(ClusterError, match='pods "gone" not found'):
        fake.exec("ns", "gone", ["true"], container="web")


def test_several_conflicts_are_grouped_by_manager_as_the_api_server_does(fake: FakeCluster) -> None:
    _ns(fake)
    fake.apply(_deployment(labels={"t": "1"}))
    theirs = _deployment(replicas=3, labels={"t": "2"})
    fake.update(theirs, manager="kubectl-edit")
    fake.update({**theirs, "spec": {**theirs["spec"], "minReadySeconds": 5}}, manager="ops")
    mine = _deployment(labels={"t": "1"})
    mine["spec"]["minReadySeconds"] = 1
    with pytest.raises(ApplyConflict) as caught:
        fake.apply(mine, force=False)
    # the text kube-apiserver v1.34 gives (tests/apiserver/test_server_side_apply.py)
    assert str(caught.value) == ('Apply failed with 3 conflicts: conflicts with "kubectl-edit" using apps/v1:\n'
                                 "- .metadata.labels.t\n- .spec.replicas\n"
                                 'conflicts with "ops" using apps/v1:\n- .spec.minReadySeconds')
