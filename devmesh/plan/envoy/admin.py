"""Envoy's admin interface, read: which clusters serve (their readiness)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def parse_cluster_health(clusters: str | Mapping[str, Any]) -> dict[str, bool]:
    """Readiness per cluster from Envoy's admin ``/clusters`` output: name → serving?

    Accepts the text of ``GET /clusters`` or of ``GET /clusters?format=json`` (or the parsed
    JSON). A cluster is ready when at least one of its hosts passes the health check:

    * text: a line ``<cluster>::<ip>:<port>::health_flags::healthy``; a failing host shows
      flags instead, e.g. ``…::health_flags::/failed_active_hc``. A cluster whose name did not
      resolve (container not started yet) has no host lines at all → not ready. A host that
      outlier detection ejected (``/failed_outlier_check`` alone) still serves: ready.
    * JSON: ``cluster_statuses[].host_statuses[].health_status`` with no ``failed_*``,
      ``pending_*`` or other failure flag set and ``eds_health_status`` ``HEALTHY`` (or absent).

    Every cluster Envoy knows is in the result, including its own static ones, if any.
    """
    if isinstance(clusters, Mapping):
        return _health_from_json(clusters)
    text = clusters.strip()
    if text.startswith("{"):
        return _health_from_json(json.loads(text))
    health: dict[str, bool] = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) < 2:
            continue  # e.g. an empty line
        name = parts[0]
        health.setdefault(name, False)
        if len(parts) == 4 and parts[2] == "health_flags" and (
                parts[3] == "healthy" or parts[3] == _OUTLIER_FLAG_TEXT):
            health[name] = True
    return health


# An ejected host still serves (panic mode, see ``cluster_policy``): not a readiness failure.
_OUTLIER_FLAG_TEXT = "/failed_outlier_check"


_HOST_FAILURES = ("failed_active_health_check",
                  "failed_active_degraded_check", "pending_dynamic_removal", "pending_active_hc",
                  "excluded_via_immediate_hc_fail", "active_hc_timeout")


def _health_from_json(doc: Mapping[str, Any]) -> dict[str, bool]:
    health: dict[str, bool] = {}
    for cluster in doc.get("cluster_statuses", []):
        ok = False
        for host in cluster.get("host_statuses", []):
            status = host.get("health_status", {})
            if any(status.get(flag) for flag in _HOST_FAILURES):
                continue
            if status.get("eds_health_status", "HEALTHY") in ("HEALTHY", "DEGRADED"):
                ok = True
        health[cluster["name"]] = ok
    return health
