"""RoutePlan → Envoy configuration for the docker runtime. Pure, except ``write_atomically``.

The docker runtime runs one Envoy per app. It holds every service's name as a network alias and
listens on every service port, so a call to ``http://api:8000/`` from any container reaches
Envoy, which routes it by the plan's rules for ``api`` — the header rules first, the baseline
last — exactly as the Istio sidecars do on the kind runtime. A gateway listener serves the
preview hosts (``<env>.<app>.<domain>``): it sets the routing header and sends the request to the
entry service.

Files (all in one directory that Envoy watches; no control plane):

``bootstrap.yaml``
    static: node, admin, and where the dynamic files are (``config_dir`` is the directory as
    Envoy sees it, e.g. the mount point inside the container).
``cds.yaml``
    one cluster per backend, named ``<service>.<env>``.
``rds-mesh.yaml``
    the route table of every service port: one virtual host per service (domains ``name``,
    ``name:port``), its routes in the plan's rule order; unknown hosts get a 404 that says so.
``rds-gateway.yaml``
    the gateway's route table: one virtual host per preview host, ``*`` for any other host.
``lds.yaml``
    one listener per distinct service port plus the gateway listener; each refers to its route
    table by name (RDS).

Why routes are separate files (RDS) rather than inline in the listeners: Envoy replaces a
listener whose config changed and *drains* the old one — keep-alive connections opened before
the change keep the old routes until they close (up to ``--drain-time-s``, 600 s by default).
Services pool their connections to each other, so a new environment would be invisible to them
for minutes. A route-table update applies to the next request on every existing connection.

Every response carries ``x-devmesh-route: <rule name>`` (the rule that matched) and
``x-devmesh-upstream: <service>.<env>`` (the cluster that answered), so ``routes --explain``
and debugging can compare what the plan says with what Envoy did. Access logs go to Envoy's
stdout, one line a request::

    mesh:8000 GET api:8000/items env=feat route=api-feat upstream=api.feat status=200 flags=- 3ms

Envoy reloads a file only when it is *renamed* into place (an in-place overwrite is never
noticed): ``write_atomically`` writes each changed file to a temporary file in the same
directory and ``os.replace``-s it, clusters before routes before listeners (and clusters that
go away only after the routes that named them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devmesh.plan.routing import Backend, Match, Mirror, Resilience, RoutePlan, Rule, Weighted
from devmesh.units import duration

ROUTE_HEADER = "x-devmesh-route"
UPSTREAM_HEADER = "x-devmesh-upstream"

MESH_ROUTES = "mesh"
GATEWAY_ROUTES = "gateway"
GATEWAY_LISTENER = "gateway"
UNKNOWN_HOST_ROUTE = "unknown-host"

BOOTSTRAP_FILE = "bootstrap.yaml"
CDS_FILE = "cds.yaml"
LDS_FILE = "lds.yaml"

_T_LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
_T_CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
_T_ROUTE_CONFIG = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
_T_HCM = ("type.googleapis.com/envoy.extensions.filters.network."
          "http_connection_manager.v3.HttpConnectionManager")
_T_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_T_STDOUT_LOG = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
_T_DNS_CLUSTER = "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster"

# Cluster timings: short, so restarted containers (new IPs) and readiness are seen within ~2 s.
DNS_REFRESH = "1s"
CONNECT_TIMEOUT = "0.25s"  # peers are on the same host: a slow connect means a restarting container
HEALTH_INTERVAL = "1s"
HEALTH_TIMEOUT = "0.5s"

Doc = dict[str, Any]
AddressOf = Callable[[Backend], tuple[str, int]]


@dataclass(frozen=True)
class EnvoyFiles:
    """The content of every file Envoy reads; ``rds`` maps a route table's name to its file."""

    bootstrap: Doc
    lds: Doc
    cds: Doc
    rds: Mapping[str, Doc]

    def texts(self) -> dict[str, str]:
        """File name → YAML text, in the order they must be written (clusters first)."""
        out = {BOOTSTRAP_FILE: to_yaml(self.bootstrap), CDS_FILE: to_yaml(self.cds)}
        out.update((rds_file(name), to_yaml(doc)) for name, doc in self.rds.items())
        out[LDS_FILE] = to_yaml(self.lds)
        return out


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


def cluster_name(backend: Backend) -> str:
    """``<service>.<env>``: the Envoy cluster of one backend (also in ``x-devmesh-upstream``)."""
    return f"{backend.service}.{backend.env}"


def rds_file(route_config: str) -> str:
    return f"rds-{route_config}.yaml"


# --------------------------------------------------------------------------- policy hooks


def route_policy(rule: Rule, resilience: Resilience | None = None) -> Doc:
    """RouteAction fields for a rule: the one place for per-route resilience policy.

    ``timeout``: the service's request timeout, or ``0s`` (none) — Envoy's own default is 15 s,
    but Istio (the kind runtime) has no default timeout and both runtimes must behave alike, and
    a request paused in a debugger must not be cut. ``retry_policy``: the service's retries, the
    same numbers the Istio VirtualService carries (without one, neither runtime retries).
    """
    del rule  # the same policy for every rule of a service
    if resilience is None:
        return {"timeout": "0s"}
    out: Doc = {"timeout": duration(resilience.timeout)}
    retries = resilience.retries
    if retries is not None and retries.attempts > 0:
        policy: Doc = {"retry_on": ",".join(retries.retry_on), "num_retries": retries.attempts}
        if retries.per_try_timeout > 0:
            policy["per_try_timeout"] = duration(retries.per_try_timeout)
        out["retry_policy"] = policy
    return out


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


# --------------------------------------------------------------------------- rendering


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

    backends = _all_backends(plan)
    policies = {r.service: r.resilience for r in plan.services}
    clusters = [_cluster(b, address_of(b), policies.get(b.service)) for b in backends]

    by_port: dict[int, list[str]] = {}
    for service, port in listen_ports.items():
        by_port.setdefault(port, []).append(service)
    listeners = [
        _listener(f"mesh-{port}", listen_address, port, MESH_ROUTES, config_dir,
                  log_prefix=f"mesh:{port}", header=plan.header)
        for port in sorted(by_port)
    ]
    listeners.append(_listener(GATEWAY_LISTENER, listen_address, gateway_port, GATEWAY_ROUTES,
                               config_dir, log_prefix="gateway", header=plan.header))

    rds = {
        MESH_ROUTES: {"resources": [_mesh_routes(plan, listen_ports)]},
        GATEWAY_ROUTES: {"resources": [_gateway_routes(plan)]},
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


def _all_backends(plan: RoutePlan) -> list[Backend]:
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


def _socket(address: str, port: int) -> Doc:
    return {"socket_address": {"address": address, "port_value": int(port)}}


def _cluster(backend: Backend, address: tuple[str, int],
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
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket(host, port)}}]}],
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


def _access_log(prefix: str, header: str) -> list[Doc]:
    fmt = (
        f"{prefix} %REQ(:METHOD)% %REQ(:AUTHORITY)%%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% "
        f"env=%REQ({header})% route=%ROUTE_NAME% upstream=%UPSTREAM_CLUSTER% "
        "status=%RESPONSE_CODE% flags=%RESPONSE_FLAGS% %DURATION%ms\n"
    )
    return [{
        "name": "envoy.access_loggers.stdout",
        "typed_config": {"@type": _T_STDOUT_LOG,
                         "log_format": {"text_format_source": {"inline_string": fmt}}},
    }]


def _listener(name: str, address: str, port: int, route_config: str, config_dir: str, *,
              log_prefix: str, header: str) -> Doc:
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
        "http_filters": [{"name": "envoy.filters.http.router",
                          "typed_config": {"@type": _T_ROUTER}}],
        "access_log": _access_log(log_prefix, header),
    }
    return {
        "@type": _T_LISTENER,
        "name": name,
        "address": _socket(address, port),
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
        "admin": {"address": _socket(listen_address, admin_port)},
        "dynamic_resources": {"cds_config": source(CDS_FILE), "lds_config": source(LDS_FILE)},
    }


# --------------------------------------------------------------------------- routes


def _mesh_routes(plan: RoutePlan, listen_ports: Mapping[str, int]) -> Doc:
    vhosts = []
    for routes in plan.services:
        domains = _unique([routes.service, f"{routes.service}:{routes.port}",
                           f"{routes.service}:{listen_ports[routes.service]}"])
        rules = _rules_for_host(routes.rules, routes.service)
        vhosts.append({
            "name": routes.service,
            "domains": domains,
            "routes": [_route(rule, routes.resilience) for rule in rules],
        })
    names = ", ".join(r.service for r in plan.services)
    vhosts.append({
        "name": UNKNOWN_HOST_ROUTE,
        "domains": ["*"],
        "routes": [{
            "name": UNKNOWN_HOST_ROUTE,
            "match": {"prefix": "/"},
            "direct_response": {
                "status": 404,
                "body": {"inline_string": f"devmesh: no service of app {plan.app!r} answers to "
                                          f"this host on this port (services: {names})\n"},
            },
            "response_headers_to_add": [_header(ROUTE_HEADER, UNKNOWN_HOST_ROUTE)],
        }],
    })
    return _route_config(MESH_ROUTES, vhosts)


def _gateway_routes(plan: RoutePlan) -> Doc:
    hosts = _unique([r.match.host.lower() for r in plan.gateway if r.match.host])
    policy = next((r.resilience for r in plan.services if r.service == plan.entry), None)
    vhosts = [
        # ``host:*``: the preview URL carries the published port, which the plan does not know
        # (and the Host header reaches the app unchanged, so its absolute URLs keep the port).
        {"name": host, "domains": [host, f"{host}:*"],
         "routes": [_route(rule, policy) for rule in _rules_for_host(plan.gateway, host)]}
        for host in hosts
    ]
    vhosts.append({
        "name": "any-host",
        "domains": ["*"],
        "routes": [_route(rule, policy) for rule in plan.gateway if rule.match.host is None],
    })
    return _route_config(GATEWAY_ROUTES, vhosts)


def _route_config(name: str, vhosts: list[Doc]) -> Doc:
    return {"@type": _T_ROUTE_CONFIG, "name": name, "validate_clusters": False,
            "virtual_hosts": vhosts}


def _rules_for_host(rules: Sequence[Rule], host: str) -> list[Rule]:
    """The rules that can hold for requests to ``host``, in order, without their host condition.

    The virtual host's domains decide the host, so a rule for another host can never match
    there, a rule for this host only needs its other conditions, and nothing after a rule
    without conditions is reachable (a preview host's rule ends its list).
    """
    out = []
    for rule in rules:
        if rule.match.host is None:
            out.append(rule)
        elif rule.match.host.lower() == host.lower():
            out.append(dataclasses.replace(rule, match=dataclasses.replace(rule.match, host=None)))
        else:
            continue
        if out[-1].match == Match():
            break  # it matches every request: the rules after it can never be reached
    return out


def _header_matchers(match: Match) -> list[Doc]:
    """Envoy HeaderMatchers for a Match's conditions (all must hold)."""
    out: list[Doc] = [{"name": name.lower(), "string_match": {"exact": value}}
                      for name, value in match.headers]
    out += [{"name": name.lower(), "string_match": {"safe_regex": {"regex": pattern}}}
            for name, pattern in match.header_regex]
    # What Istio renders for ``withoutHeaders: {name: {}}``: presence, inverted.
    out += [{"name": name.lower(), "present_match": True, "invert_match": True}
            for name in match.without_headers]
    if match.methods:
        for method in match.methods:
            if not re.fullmatch(r"[A-Z]+", method):
                raise ValueError(f"not an HTTP method: {method!r}")
        if len(match.methods) == 1:
            out.append({"name": ":method", "string_match": {"exact": match.methods[0]}})
        else:
            out.append({"name": ":method",
                        "string_match": {"safe_regex": {"regex": "|".join(match.methods)}}})
    return out


def _mirror_policy(mirror: Mirror) -> Doc:
    # Parts per million: a percentage with up to four decimals is exact.
    numerator = round(mirror.percent * 10_000)
    return {"cluster": cluster_name(mirror.backend),
            "runtime_fraction": {"default_value": {"numerator": numerator,
                                                   "denominator": "MILLION"}}}


def _route(rule: Rule, resilience: Resilience | None = None) -> Doc:
    _check_supported(rule)
    match: Doc = {"prefix": "/"}
    headers = _header_matchers(rule.match)
    if headers:
        match["headers"] = headers
    targets = [w for w in rule.to if w.weight > 0]
    if not targets:
        raise ValueError(f"rule {rule.name!r} sends traffic nowhere "
                         "(no destination with a weight above 0)")
    action: Doc
    response_headers = [_header(ROUTE_HEADER, rule.name)]
    if len(targets) == 1:
        action = {"cluster": cluster_name(targets[0].backend)}
        response_headers.append(_header(UPSTREAM_HEADER, cluster_name(targets[0].backend)))
    else:
        action = {"weighted_clusters": {"clusters": [
            {"name": cluster_name(w.backend), "weight": w.weight,
             "response_headers_to_add": [_header(UPSTREAM_HEADER, cluster_name(w.backend))]}
            for w in targets
        ]}}
    if rule.mirror is not None and rule.mirror.percent > 0:
        action["request_mirror_policies"] = [_mirror_policy(rule.mirror)]
    action.update(route_policy(rule, resilience))
    route: Doc = {"name": rule.name, "match": match, "route": action}
    if rule.set_headers:
        route["request_headers_to_add"] = [_header(k.lower(), v) for k, v in rule.set_headers]
    route["response_headers_to_add"] = response_headers
    return route


def _header(key: str, value: str) -> Doc:
    # Header values are Envoy format strings: a literal % must be doubled.
    return {"header": {"key": key, "value": value.replace("%", "%%")},
            "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}


_SUPPORTED = {
    Rule: {"name", "match", "to", "why", "set_headers", "mirror"},
    Match: {"headers", "host", "header_regex", "without_headers", "methods"},
    Weighted: {"backend", "weight"},
}


def _check_supported(rule: Rule) -> None:
    """A rule field this renderer does not know must not be dropped silently (a wider match)."""
    parts: tuple[Any, ...] = (rule, rule.match, *rule.to)
    for obj in parts:
        known = next((fields for cls, fields in _SUPPORTED.items() if isinstance(obj, cls)), set())
        for f in dataclasses.fields(obj):
            if f.name in known:
                continue
            default = (f.default if f.default is not dataclasses.MISSING
                       else f.default_factory() if f.default_factory is not dataclasses.MISSING
                       else dataclasses.MISSING)
            if getattr(obj, f.name) != default:
                raise NotImplementedError(
                    f"rule {rule.name!r}: the Envoy renderer does not support "
                    f"{type(obj).__name__}.{f.name} yet")


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


# --------------------------------------------------------------------------- YAML and files

# Envoy's YAML reader (yaml-cpp) takes y/n/yes/no/on/off/true/false as booleans and anything
# number-like as a number, also where a string is expected; PyYAML leaves some of those (y, n,
# 1e3, …) unquoted. Quote every string value that is not plainly a word.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_AMBIGUOUS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "inf", "nan",
              "infinity", "nil"}


# libyaml's emitter when PyYAML has it (about thirty times faster); same output.
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    pass


def _represent_str(dumper: Any, value: str) -> yaml.Node:
    plain = _PLAIN.fullmatch(value) is not None and value.lower() not in _AMBIGUOUS
    node: yaml.Node = dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                              style=None if plain else '"')
    return node


_Dumper.add_representer(str, _represent_str)


def to_yaml(doc: Any) -> str:
    """YAML that Envoy reads back exactly (strings that could be read as anything else quoted)."""
    text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                          allow_unicode=True)
    return text


def cluster_names(files: EnvoyFiles) -> frozenset[str]:
    """The names of the clusters in ``files`` (what ``await_clusters`` should wait for)."""
    return frozenset(c["name"] for c in files.cds["resources"])


def write_atomically(directory: Path, files: EnvoyFiles, *,
                     await_clusters: Callable[[frozenset[str]], None] | None = None) -> bool:
    """Write the files Envoy watches; True when any file changed.

    Unchanged files are not touched (Envoy sees no update at all). A changed file is written to
    a temporary file in ``directory`` and renamed over the old one — Envoy only notices renames
    — in dependency order: bootstrap, clusters, route tables, listeners. Clusters that go away
    are kept in that first ``cds.yaml`` and only removed by a second one written last, so no
    route ever names a cluster Envoy has dropped. Files are world-readable: Envoy may run as
    another user inside its container.

    Envoy warms a new cluster (first DNS answer, first health check) before using it, and a
    route to a cluster that is still warming answers 503 for those few milliseconds. When the
    clusters changed and ``await_clusters`` is given, it is called with the new cluster names
    after ``cds.yaml`` is in place and before any route or listener file is written: the
    runtime passes a function that polls the admin ``/clusters`` endpoint until every name is
    listed (a warming cluster is not) — see ``parse_cluster_health``. A change of
    ``bootstrap.yaml`` only takes effect when Envoy restarts.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    texts = files.texts()
    leaving = _clusters_leaving(directory / CDS_FILE, cluster_names(files))
    changed = False
    for name, text in texts.items():
        if name == CDS_FILE and leaving:
            text = to_yaml({"resources": [*files.cds["resources"], *leaving]})
        if _replace_if_changed(directory, name, text.encode("utf-8")):
            changed = True
            if name == CDS_FILE and await_clusters is not None:
                await_clusters(cluster_names(files))
    if leaving:
        _replace_if_changed(directory, CDS_FILE, texts[CDS_FILE].encode("utf-8"))
    return changed


def _clusters_leaving(cds_path: Path, staying: frozenset[str]) -> list[Doc]:
    """The clusters in the current ``cds.yaml`` that the new one drops (as written there)."""
    try:
        current = yaml.safe_load(cds_path.read_text(encoding="utf-8"))
        resources = list(current["resources"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []  # no usable file: nothing Envoy could still route to from it
    return [c for c in resources if isinstance(c, dict) and c.get("name") not in staying]


def _replace_if_changed(directory: Path, name: str, data: bytes) -> bool:
    path = directory / name
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # the umask may have narrowed the mode given to open
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


# --------------------------------------------------------------------------- admin /clusters


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
