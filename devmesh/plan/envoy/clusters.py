"""A plan's backends as Envoy clusters: one a backend, named ``<service>.<env>``, resolved by DNS
and checked for readiness, with the service's circuit breakers and outlier detection."""

from __future__ import annotations

from collections.abc import Iterator

from devmesh.plan.envoy.files import Doc
from devmesh.plan.routing import Backend, Resilience, RoutePlan, Rule
from devmesh.units import duration

_T_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
_T_DNS_CLUSTER = "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster"

# Cluster timings: short, so restarted containers (new IPs) and readiness are seen within ~2 s.
DNS_REFRESH = "1s"
CONNECT_TIMEOUT = "0.25s"  # peers are on the same host: a slow connect means a restarting container
HEALTH_INTERVAL = "1s"
HEALTH_TIMEOUT = "0.5s"


def cluster_name(backend: Backend) -> str:
    """``<service>.<env>``: the Envoy cluster of one backend (also in ``x-devmesh-upstream``)."""
    return f"{backend.service}.{backend.env}"


def cluster_policy(backend: Backend, resilience: Resilience | None = None) -> Doc:
    """Extra Cluster fields for a backend: circuit breakers and outlier detection.

    The same numbers as the Istio DestinationRule's trafficPolicy. Each cluster has one host,
    so outlier ejection only flips that host's health flag and Envoy, finding no healthy host,
    routes to it anyway (panic mode) — as a one-pod subset does in Istio. That is why
    ``parse_cluster_health`` does not count an ejected host as down.
    """
    del backend
    out: Doc = {}
    if resilience is None:
        return out
    breaker = resilience.circuit_breaker
    if breaker is not None:
        out["circuit_breakers"] = {"thresholds": [{
            "priority": "DEFAULT",
            "max_connections": breaker.max_connections,
            "max_pending_requests": breaker.max_pending_requests,
            "max_requests": breaker.max_requests,
            "max_retries": breaker.max_retries,
        }]}
    outlier = resilience.outlier_detection
    if outlier is not None:
        out["outlier_detection"] = {
            "consecutive_5xx": outlier.consecutive_5xx,
            "interval": duration(outlier.interval),
            "base_ejection_time": duration(outlier.base_ejection_time),
            "max_ejection_percent": outlier.max_ejection_percent,
        }
    return out


def all_backends(plan: RoutePlan) -> list[Backend]:
    """The plan's backends, then any a rule names that the list lacks (never dropped silently)."""
    seen: dict[Backend, None] = dict.fromkeys(plan.backends)
    for rule in _every_rule(plan):
        for weighted in rule.to:
            seen.setdefault(weighted.backend, None)
        if rule.mirror is not None:
            seen.setdefault(rule.mirror.backend, None)
    return list(seen)


def _every_rule(plan: RoutePlan) -> Iterator[Rule]:
    for routes in plan.services:
        yield from routes.rules
    yield from plan.gateway


def socket_address(address: str, port: int) -> Doc:
    return {"socket_address": {"address": address, "port_value": int(port)}}


def cluster_resource(backend: Backend, address: tuple[str, int],
             resilience: Resilience | None = None) -> Doc:
    name = cluster_name(backend)
    host, port = address
    cluster: Doc = {
        "@type": _T_CLUSTER,
        "name": name,
        # STRICT_DNS through the DNS cluster extension (the top-level DNS fields are deprecated):
        # resolves container aliases and plain IPs alike, and re-resolves every second so a
        # restarted container's new address is picked up.
        "cluster_type": {
            "name": "envoy.cluster.strict_dns",
            "typed_config": {
                "@type": _T_DNS_CLUSTER,
                "dns_refresh_rate": DNS_REFRESH,
                "dns_lookup_family": "V4_ONLY",
                "respect_dns_ttl": False,
                "all_addresses_in_single_endpoint": False,
            },
        },
        "connect_timeout": CONNECT_TIMEOUT,
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(host, port)}}]}],
        },
        # A TCP connect check: readiness for the runtime (read from admin /clusters). The
        # no-traffic interval must be short too, or a cluster nobody called yet is checked
        # once a minute.
        "health_checks": [
            {
                "timeout": HEALTH_TIMEOUT,
                "interval": HEALTH_INTERVAL,
                "no_traffic_interval": HEALTH_INTERVAL,
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "tcp_health_check": {},
            }
        ],
    }
    cluster.update(cluster_policy(backend, resilience))
    return cluster

