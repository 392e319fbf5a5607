"""The one thin wrapper devmesh owns around the Kubernetes API, under one name.

Everything the kind runtime, ``devmesh cluster`` and live sync do to a cluster goes through
``ClusterClient``. This module gathers the wrapper's names from where they live:

- ``protocol``: ``ClusterClient``, ``Obj``, ``ExecResult``, ``rollout_from``;
- ``errors``: ``ClusterError``, ``ClusterUnreachable``, ``KubeconfigError``, ``ApplyConflict``;
- ``resources``: where each kind lives in the API (``RESOURCES``);
- ``kube``: ``KubeClient``, the protocol over HTTP;
- ``kubeconfig``: ``open_client``, a ``KubeClient`` for a kubeconfig context.
"""

from __future__ import annotations

from devmesh.runtime.kind.errors import (
    ApplyConflict,
    ClusterError,
    ClusterUnreachable,
    KubeconfigError,
    unreachable,
)
from devmesh.runtime.kind.kube import APPLY_CONTENT_TYPE, REQUEST_TIMEOUT, KubeClient
from devmesh.runtime.kind.kubeconfig import open_client
from devmesh.runtime.kind.protocol import ClusterClient, ExecResult, Obj, rollout_from
from devmesh.runtime.kind.resources import RESOURCES, Resource, resource

__all__ = [
    "APPLY_CONTENT_TYPE",
    "RESOURCES",
    "REQUEST_TIMEOUT",
    "ApplyConflict",
    "ClusterClient",
    "ClusterError",
    "ClusterUnreachable",
    "ExecResult",
    "KubeClient",
    "KubeconfigError",
    "Obj",
    "Resource",
    "open_client",
    "resource",
    "rollout_from",
    "unreachable",
]
