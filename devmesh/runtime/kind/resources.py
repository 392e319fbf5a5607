"""Where each kind of object devmesh reads or writes lives in the Kubernetes API.

A fixed table (``RESOURCES``) keeps the client free of discovery calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    """Where a kind of object lives in the API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if not namespace:
                raise ValueError(f"{self.kind} is namespaced: a namespace is required")
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


# The kinds devmesh reads or writes. A fixed table keeps the wrapper free of discovery calls.
RESOURCES: dict[tuple[str, str], Resource] = {
    (r.api_version, r.kind): r
    for r in (
        Resource("v1", "Namespace", "namespaces", False),
        Resource("v1", "Service", "services", True),
        Resource("v1", "ConfigMap", "configmaps", True),
        Resource("v1", "Pod", "pods", True),
        Resource("apps/v1", "Deployment", "deployments", True),
        Resource("apps/v1", "ReplicaSet", "replicasets", True),
        Resource("networking.istio.io/v1", "VirtualService", "virtualservices", True),
        Resource("networking.istio.io/v1", "DestinationRule", "destinationrules", True),
        Resource("networking.istio.io/v1", "Gateway", "gateways", True),
        Resource("networking.istio.io/v1alpha3", "EnvoyFilter", "envoyfilters", True),
    )
}


def resource(api_version: str, kind: str) -> Resource:
    try:
        return RESOURCES[(api_version, kind)]
    except KeyError:
        raise ValueError(f"devmesh does not handle {kind} ({api_version})") from None
