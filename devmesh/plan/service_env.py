"""The environment variables of one service version's container, on either runtime."""

from __future__ import annotations

from collections.abc import Mapping

from devmesh.plan.routing import Backend


def service_env(declared: Mapping[str, str], backend: Backend, header: str) -> dict[str, str]:
    """The service's declared variables in the order given, then the three devmesh sets
    (its environment, the routing header, its name). Configuration keeps the ``DEVMESH_``
    prefix for devmesh, so the two never share a name."""
    return dict(declared) | {
        "DEVMESH_ENV": backend.env,
        "DEVMESH_HEADER": header,
        "DEVMESH_SERVICE": backend.service,
    }
