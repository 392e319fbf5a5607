"""``ClusterClient``: what devmesh asks of a Kubernetes cluster.

``KubeClient`` (devmesh.runtime.kind.kube) implements it over HTTP; tests use a faithful
in-memory fake of the same protocol. Objects are plain dicts (``Obj``), exactly as the API
serves them. ``rollout_from`` is rollout status on top of get and list, and ``last_log_lines``
what a container printed last, both shared by every client.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from devmesh.runtime.kind.errors import ClusterError
from devmesh.runtime.kind.rollout import Rollout, assess

Obj = dict[str, Any]


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@runtime_checkable
class ClusterClient(Protocol):
    """What devmesh asks of a Kubernetes cluster. ``KubeClient`` and the test fake implement it."""

    @property
    def context(self) -> str: ...

    def server_version(self) -> str:
        """The API server's version (``v1.33.1``); raises ClusterUnreachable when it is down."""
        ...

    def apply(self, obj: Obj, *, force: bool = True) -> Obj:
        """Server-side apply ``obj`` as field manager ``devmesh``; the object as stored."""
        ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        ...

    def list(self, api_version: str, kind: str, *, namespace: str | None = None,
             selector: str = "") -> list[Obj]:
        """Objects of a kind (in ``namespace``, or everywhere) matching a label selector."""
        ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete in the background; False when it did not exist."""
        ...

    def pod_logs(self, namespace: str, pod: str, *, container: str, follow: bool = False,
                 tail: int | None = None, previous: bool = False,
                 timestamps: bool = True) -> Iterator[str]:
        """A container's log lines (with an RFC 3339 timestamp first when ``timestamps``)."""
        ...

    def exec(self, namespace: str, pod: str, command: Sequence[str], *, container: str,
             stdin: bytes | None = None, timeout: float = 60.0) -> ExecResult:
        """Run ``command`` in a container, feeding ``stdin`` and closing it; wait for the exit."""
        ...

    def rollout_status(self, namespace: str, name: str) -> Rollout:
        """How far the Deployment ``name`` has rolled out, and why it is stuck if it is."""
        ...

    def close(self) -> None: ...


def rollout_from(client: ClusterClient, namespace: str, name: str) -> Rollout:
    """``rollout_status`` on top of get and list (shared by every ClusterClient)."""
    deployment = client.get("apps/v1", "Deployment", name, namespace)
    if deployment is None:
        return Rollout("failed", "NotFound", f"deployment {namespace}/{name} does not exist")
    return assess(deployment, pods_of(client, namespace, deployment))


def pods_of(client: ClusterClient, namespace: str, deployment: Obj) -> list[Obj]:
    """The pods ``deployment``'s selector matches (none without a selector)."""
    match = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
    return client.list("v1", "Pod", namespace=namespace, selector=selector) if selector else []


def last_log_lines(client: ClusterClient, namespace: str, pod: str, container: str,
                   tail: int) -> list[str]:
    """The last ``tail`` lines a container printed: its previous (crashed) run's, else its
    current run's; empty when the cluster has none or refuses."""
    for previous in (True, False):
        try:
            lines = list(client.pod_logs(namespace, pod, container=container, previous=previous,
                                         tail=tail, timestamps=False))
        except ClusterError:
            continue
        if lines:
            return lines
    return []
