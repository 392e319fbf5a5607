"""A RoutePlan as the configuration of one Envoy: its bootstrap, a listener per service port and
the gateway's, with the clusters and route tables of :mod:`.clusters` and :mod:`.routes`."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from devmesh.plan.envoy.clusters import all_backends, cluster_name, cluster_resource, socket_address
from devmesh.plan.envoy.files import BOOTSTRAP_FILE, CDS_FILE, LDS_FILE, Doc, EnvoyFiles, rds_file
from devmesh.plan.envoy.routes import GATEWAY_ROUTES, MESH_ROUTES, gateway_routes, mesh_routes
from devmesh.plan.routing import Backend, RateLimit, RoutePlan
from devmesh.traffic.records import GATEWAY, RATE_LIMITED_HEADER, envoy_access_log

GATEWAY_LISTENER = GATEWAY

_T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
_T_HCM = ("type.googleapis.com/envoy.extensions.filters.network."
          "http_connection_manager.v3.HttpConnectionManager")
_T_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_T_LOCAL_RATELIMIT = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
_UNLIMITED = 2**31 - 1  # the bucket of requests to versions without a limit

AddressOf = Callable[[Backend], tuple[str, int]]


def envoy_args(config_dir: str) -> list[str]:
    """The arguments to run Envoy with (the container's command after the binary).

    ``--disable-hot-restart``: one Envoy per container (or test) needs no shared memory;
    ``--reject-unknown-dynamic-fields``: a field this Envoy does not know rejects the update
    (the old config keeps serving) instead of being ignored; ``--file-flush-interval-msec``:
    access log lines reach stdout within a second (default 10 s); ``--drain-time-s``: a
    removed listener closes its connections after 5 s instead of 10 minutes.
    """
    return ["-c", f"{config_dir.rstrip('/')}/{BOOTSTRAP_FILE}",
            "--disable-hot-restart", "--reject-unknown-dynamic-fields",
            "--file-flush-interval-msec", "1000", "--drain-time-s", "5",
            "--log-level", "warning"]


def render_envoy(
    plan: RoutePlan,
    *,
    address_of: AddressOf,
    gateway_port: int,
    admin_port: int,
    config_dir: str,
    listen_address: str = "0.0.0.0",
    service_listen_ports: Mapping[str, int] | None = None,
) -> EnvoyFiles:
    """Render ``plan`` for one Envoy.

    ``address_of`` gives the upstream host and port of a backend (a container's network alias
    on the docker runtime). ``gateway_port`` and ``admin_port`` are the ports Envoy listens on
    (inside its container); ``config_dir`` is where Envoy finds the files. Services listen on
    their plan ports unless ``service_listen_ports`` says otherwise (tests use free ports);
    services with the same listen port share a listener and are told apart by Host.
    """
    listen_ports = _listen_ports(plan, service_listen_ports or {})
    _check_ports(listen_ports, gateway_port, admin_port)
    config_dir = config_dir.rstrip("/") or "/"

    backends = all_backends(plan)
    policies = {r.service: r.resilience for r in plan.services}
    clusters = [cluster_resource(b, address_of(b), policies.get(b.service)) for b in backends]

    limits = _rate_limit_filter(plan, backends)
    by_port: dict[int, list[str]] = {}
    for service, port in listen_ports.items():
        by_port.setdefault(port, []).append(service)
    listeners = [
        _listener(f"mesh-{port}", listen_address, port, MESH_ROUTES, config_dir,
                  log_prefix=f"mesh:{port}", header=plan.header, filters=limits)
        for port in sorted(by_port)
    ]
    listeners.append(_listener(GATEWAY_LISTENER, listen_address, gateway_port, GATEWAY_ROUTES,
                               config_dir, log_prefix=GATEWAY, header=plan.header, filters=limits))

    rds = {
        MESH_ROUTES: {"resources": [mesh_routes(plan, listen_ports)]},
        GATEWAY_ROUTES: {"resources": [gateway_routes(plan)]},
    }
    return EnvoyFiles(
        bootstrap=_bootstrap(plan, listen_address, admin_port, config_dir),
        lds={"resources": listeners},
        cds={"resources": clusters},
        rds=rds,
    )


def _listen_ports(plan: RoutePlan, overrides: Mapping[str, int]) -> dict[str, int]:
    known = {r.service for r in plan.services}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"service_listen_ports names services the plan does not have: {unknown}")
    return {r.service: int(overrides.get(r.service, r.port)) for r in plan.services}


def _check_ports(listen_ports: Mapping[str, int], gateway_port: int, admin_port: int) -> None:
    if gateway_port == admin_port:
        raise ValueError(f"the gateway and the admin interface both want port {gateway_port}")
    for service, port in listen_ports.items():
        for what, other in (("gateway", gateway_port), ("admin interface", admin_port)):
            if port == other:
                raise ValueError(f"service {service!r} listens on port {port}, "
                                 f"which the Envoy {what} also uses")


def _rate_limit_filter(plan: RoutePlan, backends: list[Backend]) -> list[Doc]:
    """Envoy's local rate limit, one token bucket per limited version (its cluster's name as
    the descriptor a route's ``destination_cluster`` action gives); nothing when no service has
    a limit. Requests of other services match no descriptor and fall to a bucket that never
    runs dry."""
    limits = {r.service: r.resilience.rate_limit for r in plan.services
              if r.resilience is not None and r.resilience.rate_limit is not None}
    if not limits:
        return []
    descriptors = [
        {"entries": [{"key": "destination_cluster", "value": cluster_name(b)}],
         "token_bucket": _bucket(limits[b.service])}
        for b in backends if b.service in limits
    ]
    return [local_rate_limit(None, descriptors)]


def _bucket(limit: RateLimit | None) -> Doc:
    if limit is None:
        return {"max_tokens": _UNLIMITED, "tokens_per_fill": _UNLIMITED, "fill_interval": "1s"}
    return {"max_tokens": limit.burst, "tokens_per_fill": limit.requests_per_second, "fill_interval": "1s"}


def local_rate_limit(limit: RateLimit | None, descriptors: list[Doc] | None = None) -> Doc:
    """Envoy's local rate limit HTTP filter: the bucket of ``limit`` (None: one that never runs
    dry) and, per descriptor, buckets of their own. Always on; its own answers (429, flag RL)
    carry devmesh's rate limit header, so that a caller's proxy records them as limited too."""
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    config: Doc = {
        "@type": _T_LOCAL_RATELIMIT,
        "stat_prefix": "devmesh_rate_limit",
        "token_bucket": _bucket(limit),
        "filter_enabled": always,
        "filter_enforced": always,
        "response_headers_to_add": [{"header": {"key": RATE_LIMITED_HEADER, "value": "1"},
                                     "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
    }
    if descriptors:
        config["descriptors"] = descriptors
    return {"name": "envoy.filters.http.local_ratelimit", "typed_config": config}


def _listener(name: str, address: str, port: int, route_config: str, config_dir: str, *,
              log_prefix: str, header: str, filters: list[Doc]) -> Doc:
    hcm: Doc = {
        "@type": _T_HCM,
        "stat_prefix": name.replace("-", "_"),
        "codec_type": "AUTO",
        "rds": {
            "route_config_name": route_config,
            "config_source": {
                "resource_api_version": "V3",
                "path_config_source": {"path": f"{config_dir}/{rds_file(route_config)}"},
            },
        },
        # Istio proxies WebSocket upgrades by default (dev servers' live reload uses them).
        "upgrade_configs": [{"upgrade_type": "websocket"}],
        "http_filters": [*filters, {"name": "envoy.filters.http.router",
                          "typed_config": {"@type": _T_ROUTER,
                                           "upstream_log": envoy_access_log(log_prefix, header, kind="mirror")}}],
        "access_log": envoy_access_log(log_prefix, header),
    }
    return {
        "@type": _T_LISTENER,
        "name": name,
        "address": socket_address(address, port),
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                        "typed_config": hcm}]}],
    }


def _bootstrap(plan: RoutePlan, listen_address: str, admin_port: int, config_dir: str) -> Doc:
    def source(file: str) -> Doc:
        return {
            "resource_api_version": "V3",
            "path_config_source": {"path": f"{config_dir}/{file}"},
        }

    node = f"devmesh-{plan.app}"
    return {
        "node": {"id": node, "cluster": node},
        "admin": {"address": socket_address(listen_address, admin_port)},
        "dynamic_resources": {"cds_config": source(CDS_FILE), "lds_config": source(LDS_FILE)},
    }

