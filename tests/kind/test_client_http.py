"""The real ``KubeClient`` against HTTP: a local fake API server and a kubeconfig pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh.runtime.kind.client import ApplyConflict, ClusterUnreachable, KubeClient, KubeconfigError, open_client
from tests.kind.fake_apiserver import FakeApiServer, serve, write_kubeconfig
from tests.kind.fake_cluster import FakeCluster


@pytest.fixture
def server(fake: FakeCluster) -> Iterator[FakeApiServer]:
    with serve(fake) as state:
        yield state


@pytest.fixture
def client(server: FakeApiServer, tmp_path: Path) -> Iterator[KubeClient]:
    config = write_kubeconfig(tmp_path / "kubeconfig", server.url, context="fake-ctx")
    kube = open_client("fake-ctx", kubeconfig=str(config))
    yield kube
    kube.close()


def _deployment(image: str = "127.0.0.1:5001/shop/web@sha256:aa") -> dict:
    labels = {"app.kubernetes.io/managed-by": "devmesh", "devmesh.dev/app": "shop", "devmesh.dev/env": "one"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web-one", "namespace": "devmesh-shop", "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"devmesh.dev/env": "one"}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "web", "image": image}]}}}}


def test_apply_is_a_server_side_apply_patch(client: KubeClient, server: FakeApiServer) -> None:
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "devmesh-shop"}})
    stored = client.apply(_deployment())
    assert stored["metadata"]["generation"] == 1
    request = server.requests[-1]
    assert request.method == "PATCH"
    assert request.path == "/apis/apps/v1/namespaces/devmesh-shop/deployments/web-one"
    assert request.headers["content-type"] == "application/apply-patch+yaml"
    assert request.query == {"fieldManager": ["devmesh"], "force": ["true"]}
    assert request.headers["authorization"] == "Bearer devmesh-test-token"
    assert request.body == _deployment()
    assert server.requests[0].path == "/api/v1/namespaces/devmesh-shop"
    # Istio's objects go the same way.
    client.apply({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
                  "metadata": {"name": "shop-gateway", "namespace": "devmesh-shop"}, "spec": {}})
    assert server.requests[-1].path == "/apis/networking.istio.io/v1/namespaces/devmesh-shop/gateways/shop-gateway"


def test_a_conflict_without_force_is_an_apply_conflict(client: KubeClient, fake: FakeCluster,
                                                       server: FakeApiServer) -> None:
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "devmesh-shop"}})
    client.apply(_deployment())
    edited = _deployment()
    edited["spec"]["replicas"] = 2
    fake.update(edited, manager="kubectl-edit")
    with pytest.raises(ApplyConflict) as caught:
        client.apply(_deployment(), force=False)
    assert caught.value.status == 409 and "kubectl-edit" in str(caught.value)
    assert "force" not in server.requests[-1].query
    assert client.apply(_deployment(), force=True)["spec"]["replicas"] == 1


def test_get_list_by_label_selector_and_delete(client: KubeClient, server: FakeApiServer) -> None:
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "devmesh-shop"}})
    client.apply(_deployment())
    found = client.list("apps/v1", "Deployment", namespace="devmesh-shop",
                        selector="app.kubernetes.io/managed-by=devmesh,devmesh.dev/env=one")
    assert [(d["kind"], d["apiVersion"], d["metadata"]["name"]) for d in found] == [("Deployment", "apps/v1", "web-one")]
    assert server.requests[-1].query == {
        "labelSelector": ["app.kubernetes.io/managed-by=devmesh,devmesh.dev/env=one"]}
    assert client.list("apps/v1", "Deployment", namespace="devmesh-shop", selector="devmesh.dev/env=two") == []
    assert len(client.list("v1", "Pod")) == 1
    assert server.requests[-1].path == "/api/v1/pods"
    assert client.get("apps/v1", "Deployment", "web-one", "devmesh-shop") is not None
    assert client.get("apps/v1", "Deployment", "nope", "devmesh-shop") is None
    assert client.delete("apps/v1", "Deployment", "web-one", "devmesh-shop") is True
    assert server.requests[-1].query == {"propagationPolicy": ["Background"]}
    assert client.delete("apps/v1", "Deployment", "web-one", "devmesh-shop") is False
    assert client.rollout_status("devmesh-shop", "web-one").reason == "NotFound"


def test_pod_logs_stream_line_by_line(client: KubeClient, fake: FakeCluster, server: FakeApiServer) -> None:
    client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "devmesh-shop"}})
    client.apply(_deployment())
    pod = client.list("v1", "Pod", namespace="devmesh-shop")[0]["metadata"]["name"]
    fake.add_logs("devmesh.dev/env=one", "web", "listening on 8000", "GET / x-devmesh-env=one", "bye")
    lines = list(client.pod_logs("devmesh-shop", pod, container="web", tail=2))
    assert [line.split(" ", 1)[1] for line in lines] == ["GET / x-devmesh-env=one", "bye"]
    assert lines[0].split(" ", 1)[0].endswith("Z")
    assert server.requests[-1].path == f"/api/v1/namespaces/devmesh-shop/pods/{pod}/log"
    assert server.requests[-1].query == {"container": ["web"], "tailLines": ["2"], "timestamps": ["true"]}
    assert client.rollout_status("devmesh-shop", "web-one").done


def test_server_version_and_unreachable_contexts(client: KubeClient, tmp_path: Path) -> None:
    assert client.server_version() == "v1.33.1"
    with pytest.raises(ClusterUnreachable, match="no kube context 'other' in the kubeconfig .* \\(it has "):
        open_client("other", kubeconfig=str(tmp_path / "kubeconfig"))
    dead = write_kubeconfig(tmp_path / "dead", "http://127.0.0.1:9", context="dead")
    with pytest.raises(ClusterUnreachable,
                       match=r"the API server of context 'dead' \(http://127.0.0.1:9\) does not answer: connection refused"):
        open_client("dead", kubeconfig=str(dead)).server_version()


@pytest.mark.parametrize(("content", "message"), [
    (None, "no usable kube context 'x': the kubeconfig {path} does not exist"),
    ("apiVersion: v1\ncontexts: [\n  - {\n", "{path}:3: not a kubeconfig: expected the node content, but found '-'"),
    ("- just\n- a list\n", "{path}: not a kubeconfig (no mapping with a list of contexts)"),
    ("apiVersion: v1\ncontexts: []\n", "no kube context 'x' in the kubeconfig {path} (it has none)"),
    ("", "no kube context 'x' in the kubeconfig {path} (it has none)"),
])
def test_a_kubeconfig_that_cannot_serve_is_one_line_naming_it(tmp_path: Path, content: str | None,
                                                              message: str) -> None:
    path = tmp_path / "kubeconfig"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KubeconfigError) as caught:
        open_client("x", kubeconfig=str(path))
    assert str(caught.value) == message.format(path=path)
    assert caught.value.exit_code == 2 and caught.value.hint


def test_a_kubeconfig_list_skips_missing_files_as_kubectl_does(client: KubeClient, tmp_path: Path) -> None:
    real = write_kubeconfig(tmp_path / "one", "http://127.0.0.1:9", context="one")
    with pytest.raises(KubeconfigError, match=f"no kube context 'two' in the kubeconfig {real} \\(it has one\\)"):
        open_client("two", kubeconfig=f"{tmp_path / 'missing'}:{real}")
    assert open_client("one", kubeconfig=f"{tmp_path / 'missing'}:{real}").context == "one"
