"""The fake is held to the protocol; what only the fake does (pods held pending, log and exec
fixtures) is checked here. The API's semantics devmesh relies on are held against the fake and
the real API server alike in tests/apiserver/test_conformance.py."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from devmesh.runtime.kind.client import ClusterClient, ClusterError, KubeClient
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
    # MYPYPATH: this checkout's devmesh, not whichever one is installed.
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "--ignore-missing-imports",
                           "--follow-imports=silent", str(snippet)],
                          cwd=REPO, env={**os.environ, "MYPYPATH": str(REPO)},
                          capture_output=True, text=True, timeout=300)
    # Without mypy (it is in the test extra) this fails too: a check that cannot run is no check.
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


def test_label_selectors() -> None:
    labels = {"a": "1", "b": "2"}
    assert selector_matches("a=1,b==2", labels)
    assert not selector_matches("a=1,b!=2", labels)
    assert selector_matches("a in (1, 3),c notin (x)", labels)
    assert not selector_matches("a notin (1)", labels)
    assert selector_matches("b,!c", labels) and not selector_matches("!b", labels)


def test_a_pod_held_pending_keeps_the_rollout_progressing(fake: FakeCluster) -> None:
    """Only the fake can hold a pod pending; the fates both sides share are in
    tests/apiserver/test_conformance.py."""
    _ns(fake)
    fake.fate = lambda pod: "pending"
    fake.apply(_deployment())
    rollout = fake.rollout_status("ns", "web")
    assert (rollout.state, rollout.reason) == ("progressing", "Progressing")


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


