"""The gateway port check: free to listen on, or already published by devmesh's own gateway
(its Envoy container, or a kind node).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping

from devmesh.doctor.check import RUNTIMES, Check
from devmesh.doctor.engine import DOCKER_TIMEOUT
from devmesh.ports import bind_error

MANAGED_BY = "app.kubernetes.io/managed-by"
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"


def gateway_owner(port: int, environ: Mapping[str, str] | None = None,
                  timeout: float = DOCKER_TIMEOUT) -> str | None:
    """The devmesh container (its Envoy, or a kind node) publishing ``port``, if any.

    Best effort: any trouble talking to the engine means "not known to be ours".
    """
    env = dict(os.environ if environ is None else environ)
    try:
        import docker

        client = docker.from_env(environment=env, timeout=int(max(1, timeout)))
        try:
            listed = client.api.containers(filters={"status": "running"})
        finally:
            client.close()
    except Exception:
        return None
    for container in listed:
        labels = container.get("Labels") or {}
        if labels.get(MANAGED_BY) != "devmesh" and KIND_CLUSTER_LABEL not in labels:
            continue
        for binding in container.get("Ports") or ():
            if binding.get("PublicPort") == port and binding.get("IP") in ("127.0.0.1", "0.0.0.0", "", None):
                names = container.get("Names") or [str(container.get("Id", "?"))[:12]]
                return str(names[0]).lstrip("/")
    return None


def check_port(port: int, host: str = "127.0.0.1",
               owner: Callable[[int], str | None] | None = None) -> Check:
    """Whether the gateway can listen on ``host:port`` (or devmesh's gateway already does)."""
    name, needed_by = "gateway port", RUNTIMES
    fix = "stop what listens there, or set routing.gateway_port in devmesh.yaml"
    exc = bind_error(port, host)
    if exc is not None:
        if exc.errno != errno.EADDRINUSE:
            return Check(name, "failed", str(port), "free", needed_by, fix,
                         f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        ours = owner(port) if owner is not None else None
        if ours is not None:
            return Check(name, "ok", str(port), "free", needed_by, None,
                         f"{host}:{port} is served by devmesh ({ours})")
        return Check(name, "failed", str(port), "free", needed_by, fix,
                     f"{host}:{port} is already in use")
    return Check(name, "ok", str(port), "free", needed_by, None, f"{host}:{port} is free")
