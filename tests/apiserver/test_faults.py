"""Faults between devmesh and a real API server: each one clear line, nothing applied."""

from __future__ import annotations

import base64
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from devmesh.runtime.kind.client import ClusterUnreachable, KubeconfigError, open_client
from tests.apiserver.conftest import ControlPlane

pytestmark = pytest.mark.apiserver


def _variant(control_plane: ControlPlane, tmp_path: Path, **cluster: str) -> str:
    """The session's kubeconfig with fields of its cluster entry replaced."""
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"].update(cluster)
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_an_api_server_that_is_down(control_plane: ControlPlane, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kubeconfig = _variant(control_plane, tmp_path, server=f"https://127.0.0.1:{port}")
    with pytest.raises(ClusterUnreachable) as caught:
        open_client(control_plane.context, kubeconfig=kubeconfig).server_version()
    assert str(caught.value) == (f"the API server of context {control_plane.context!r} "
                                 f"(https://127.0.0.1:{port}) does not answer: connection refused")


def test_a_certificate_the_kubeconfig_does_not_trust(control_plane: ControlPlane, tmp_path: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(tmp_path / "other.key"), "-out", str(tmp_path / "other.crt"),
                    "-subj", "/CN=another-cluster"], check=True, capture_output=True)
    other_ca = base64.b64encode((tmp_path / "other.crt").read_bytes()).decode()
    kubeconfig = _variant(control_plane, tmp_path, **{"certificate-authority-data": other_ca})
    with pytest.raises(ClusterUnreachable) as caught:
        open_client(control_plane.context, kubeconfig=kubeconfig).server_version()
    assert "presented a certificate the kubeconfig does not trust" in str(caught.value)
    assert "\n" not in str(caught.value) and caught.value.hint


def test_a_context_the_kubeconfig_lacks(control_plane: ControlPlane) -> None:
    with pytest.raises(KubeconfigError, match="no kube context 'nope' in the kubeconfig") as caught:
        open_client("nope", kubeconfig=str(control_plane.kubeconfig))
    assert caught.value.exit_code == 2  # the user's input, not the cluster's state
