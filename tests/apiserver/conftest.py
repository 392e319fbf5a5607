"""A real Kubernetes API server for the tests: etcd, kube-apiserver, controller-manager,
scheduler and kwok's simulated nodes, built from source and started by ``.ci/apiserver``.

One control plane serves the whole test session (each test works in namespaces of its own);
``DEVMESH_REQUIRE_APISERVER=1`` (as in CI) makes a control plane that cannot be built or
started a failure instead of a skip.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
import pytest

from devmesh.runtime.kind.client import KubeClient, open_client
from tests.built import ENV, cached_binary, pinned_versions

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".ci" / "apiserver"


@dataclass(frozen=True)
class ControlPlane:
    """One running control plane: its kubeconfig, context and kubectl."""

    name: str
    kubeconfig: Path
    context: str
    kubectl_bin: str

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args],
                              input=stdin, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr}")
        return done

    def client(self) -> KubeClient:
        return open_client(self.context, kubeconfig=str(self.kubeconfig))


def _unavailable(why: str) -> None:
    if os.environ.get("DEVMESH_REQUIRE_APISERVER") == "1":
        pytest.fail(f"DEVMESH_REQUIRE_APISERVER=1 but {why}")
    pytest.skip(f"{why} (set DEVMESH_REQUIRE_APISERVER=1 to make this a failure)")


def _missing_binaries() -> list[str]:
    """The control plane's binaries that ``.ci/build-k8s`` has not built yet (by pinned version)."""
    versions = pinned_versions()
    needed = {"etcd": versions.get("etcd"), "kube-apiserver": versions.get("kubernetes"),
              "kube-controller-manager": versions.get("kubernetes"),
              "kube-scheduler": versions.get("kubernetes"), "kubectl": versions.get("kubernetes"),
              "kwok": versions.get("kwok")}
    return [name for name, version in needed.items() if not cached_binary(name, version).is_file()]


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """Start the session's control plane; stop it afterwards.

    Where it is not required, unbuilt binaries are a skip (building takes about 25 minutes);
    where it is, ``.ci/apiserver up`` builds what is missing.
    """
    if os.environ.get("DEVMESH_REQUIRE_APISERVER") != "1":
        missing = _missing_binaries()
        if missing:
            pytest.skip(f"the control plane is not built ({', '.join(missing)}): run .ci/build-k8s "
                        "(set DEVMESH_REQUIRE_APISERVER=1 to build it here or fail)")
    name = f"pytest-{os.getpid()}"
    try:
        up = subprocess.run([str(SCRIPT), "up", "--name", name], capture_output=True, text=True,
                            timeout=3600, stdin=subprocess.DEVNULL, env=ENV)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f".ci/apiserver up could not run: {exc}")
    if up.returncode != 0:
        _unavailable(f".ci/apiserver up failed: {up.stderr.strip().splitlines()[-5:]}")
    kubeconfig = Path(up.stdout.strip().splitlines()[-1])
    kubectl = subprocess.run([str(REPO / ".ci" / "build-k8s"), "--print", "bin", "kubectl"],
                             capture_output=True, text=True, check=True, env=ENV).stdout.strip().splitlines()[-1]
    try:
        yield ControlPlane(name, kubeconfig, f"devmesh-apiserver-{name}", kubectl)
    finally:
        subprocess.run([str(SCRIPT), "down", "--name", name], capture_output=True, text=True, timeout=120, env=ENV)


@pytest.fixture
def cluster(control_plane: ControlPlane) -> Iterator[KubeClient]:
    """A KubeClient on the real API server."""
    client = control_plane.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def namespace(cluster: KubeClient) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    try:
        yield name
    finally:
        cluster.delete("v1", "Namespace", name)
