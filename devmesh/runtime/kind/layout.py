"""The fixed layout of devmesh's kind set-up: the Istio line it installs, and the names, ports
and paths of the cluster, its gateway and its local registry."""

from __future__ import annotations

import re

# Istio's release line devmesh installs and tests: istioctl installs its own version, so the
# istioctl on PATH must be of this line. 1.31 supports Kubernetes 1.32 and newer (its minimum,
# MinK8SVersion in istioctl/pkg/install/k8sversion/version.go); it is built against client-go
# 0.36 (Kubernetes 1.36) and its own kind tests run 1.35. The line .ci/build-k8s builds.
ISTIO_VERSION = "1.31"
ISTIO_NAMESPACE = "istio-system"
INGRESS_NAME = "istio-ingressgateway"
# kind's cluster DNS (kubeadm's CoreDNS): sidecars and the gateway find istiod by its name.
DNS_NAMESPACE = "kube-system"
DNS_NAME = "coredns"
GATEWAY_NODE_PORT = 30080
REGISTRY_CONTAINER_PORT = 5000
KIND_NETWORK = "kind"
CERTS_DIR = "/etc/containerd/certs.d"
REGISTRY_IMAGE_ENV = "DEVMESH_REGISTRY_IMAGE"
DEFAULT_REGISTRY_IMAGE = "registry:2"
LOCAL_REGISTRY_HOSTING = "local-registry-hosting"
LOCAL_REGISTRY_HELP = "https://kind.sigs.k8s.io/docs/user/local-registry/"
_LINE = re.compile(r"v?(\d+)\.(\d+)")


def kind_context(cluster_name: str) -> str:
    """The kubeconfig context kind writes for a cluster."""
    return f"kind-{cluster_name}"


def registry_container(cluster_name: str) -> str:
    return f"{cluster_name}-registry"


def release_line(version: str) -> str:
    """``1.31.0``, ``v1.31.2-distroless`` or a branch build's ``1.31-dev`` → ``1.31``."""
    match = _LINE.match(version)
    return f"{match[1]}.{match[2]}" if match else version
