"""The fixed layout of devmesh's kind set-up: the Istio line it installs, and the names, ports
and paths of the cluster, its gateway and its local registry."""

from __future__ import annotations

# Istio's release line devmesh installs and tests: istioctl installs its own version, so the
# istioctl on PATH must be of this line. 1.28 supports Kubernetes 1.31–1.34.
ISTIO_VERSION = "1.28"
ISTIO_NAMESPACE = "istio-system"
INGRESS_NAME = "istio-ingressgateway"
GATEWAY_NODE_PORT = 30080
REGISTRY_CONTAINER_PORT = 5000
KIND_NETWORK = "kind"
CERTS_DIR = "/etc/containerd/certs.d"
REGISTRY_IMAGE_ENV = "DEVMESH_REGISTRY_IMAGE"
DEFAULT_REGISTRY_IMAGE = "registry:2"
LOCAL_REGISTRY_HOSTING = "local-registry-hosting"
LOCAL_REGISTRY_HELP = "https://kind.sigs.k8s.io/docs/user/local-registry/"


def kind_context(cluster_name: str) -> str:
    """The kubeconfig context kind writes for a cluster."""
    return f"kind-{cluster_name}"


def registry_container(cluster_name: str) -> str:
    return f"{cluster_name}-registry"


def release_line(version: str) -> str:
    """``1.28.0`` → ``1.28``."""
    return ".".join(version.lstrip("v").split(".")[:2])
