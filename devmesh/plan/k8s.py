"""RoutePlan + services → the Kubernetes and Istio objects the kind runtime applies. Pure.

Layout: one namespace per app (``devmesh-<app>``). Every version of a service is a Deployment
(``<service>-<env>``) behind the service's one Kubernetes Service; a DestinationRule names each
version as a subset (by the ``devmesh.dev/env`` label) and a VirtualService routes to subsets in
the plan's rule order. Forks call other services by their plain names, exactly as the baseline
does, so the mesh routes every hop by the header.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from devmesh.naming import BASELINE_ENV
from devmesh.plan.envoy.render import local_rate_limit
from devmesh.plan.routing import Backend, Match, Resilience, RoutePlan, Rule
from devmesh.plan.service_env import service_env
from devmesh.plan.supervisor import (
    SCRIPT,
    SUPERVISED_LABEL,
    SUPERVISOR_ANNOTATION,
    SUPERVISOR_CONFIGMAP,
    SUPERVISOR_DIR,
    SUPERVISOR_KEY,
    UNSUPERVISED_ANNOTATION,
    Launch,
    script_digest,
    supervised_command,
)
from devmesh.config.presets import strategy_preset
from devmesh.traffic.records import GATEWAY, envoy_access_log
from devmesh.units import duration

if TYPE_CHECKING:
    from devmesh.config import Project

MANAGED_BY = "app.kubernetes.io/managed-by"
APP_LABEL = "devmesh.dev/app"
ENV_LABEL = "devmesh.dev/env"
SERVICE_LABEL = "devmesh.dev/service"
FIELD_MANAGER = "devmesh"

Obj = dict[str, Any]
ImageFor = Callable[[Backend], str]
# How each backend starts: None for one devmesh never live-syncs (the baseline's).
LaunchFor = Callable[[Backend], "Launch | None"]
SUPERVISOR_VOLUME = "devmesh-supervisor"
# Istio's sidecar keeps few of Envoy's stats by default; a reload waits on the count of
# requests in flight to the container (cluster.inbound|<port>||.upstream_rq_active).
ISTIO_PROXY_CONFIG = "proxy.istio.io/config"
SIDECAR_STATS = "proxyStatsMatcher:\n  inclusionSuffixes: [upstream_rq_active]\n"


def namespace_for(app: str) -> str:
    return f"devmesh-{app}"


def labels(app: str, env: str, service: str = "") -> dict[str, str]:
    """The labels on everything devmesh creates; ``service`` is empty on shared objects."""
    return {MANAGED_BY: "devmesh", APP_LABEL: app, ENV_LABEL: env, SERVICE_LABEL: service}


def selector(app: str, env: str | None = None, service: str | None = None) -> str:
    """A label selector string for teardown and listing."""
    parts = [f"{MANAGED_BY}=devmesh", f"{APP_LABEL}={app}"]
    if env is not None:
        parts.append(f"{ENV_LABEL}={env}")
    if service is not None:
        parts.append(f"{SERVICE_LABEL}={service}")
    return ",".join(parts)


def _meta(name: str, namespace: str | None, lbls: Mapping[str, str]) -> Obj:
    meta: Obj = {"name": name, "labels": dict(lbls)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def deployment_name(backend: Backend) -> str:
    return f"{backend.service}-{backend.env}"


def _host(service: str, namespace: str | None) -> str:
    """The service's full name; its short name where the namespace is not known (a tier of the
    manifest repo: the cluster that applies it picks the namespace, and Istio reads a short
    host in the namespace of the rule)."""
    return service if namespace is None else f"{service}.{namespace}.svc.cluster.local"


def _deployment(project: Project, plan: RoutePlan, backend: Backend, image: str,
                rolling: Mapping[str, Any]) -> Obj:
    svc = project.services[backend.service]
    port = project.port_of(backend.service)
    ns = namespace_for(plan.app)
    lbls = labels(plan.app, backend.env, backend.service)
    pod_labels = {**lbls, "app": backend.service, "version": backend.env}
    # Declared variables sorted by name, so the manifest does not change with their order.
    declared = dict(sorted(svc.env.items()))
    env = [{"name": k, "value": v} for k, v in service_env(declared, backend, plan.header).items()]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(deployment_name(backend), ns, lbls),
        "spec": {
            "replicas": 1,
            "strategy": rolling_update(rolling),
            "selector": {"matchLabels": {APP_LABEL: plan.app, SERVICE_LABEL: backend.service,
                                         ENV_LABEL: backend.env}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "containers": [
                        {
                            "name": backend.service,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": port}],
                            "env": env,
                            "readinessProbe": {
                                "tcpSocket": {"port": port},
                                "periodSeconds": 2,
                            },
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "32Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                        }
                    ]
                },
            },
        },
    }


def _supervise(deployment: Obj, launch: Launch) -> None:
    """Run the Deployment's container under devmesh's supervisor (mounted from its ConfigMap),
    or note on its pods why it runs without."""
    template = deployment["spec"]["template"]
    if not launch.supervised:
        template["metadata"]["annotations"] = {UNSUPERVISED_ANNOTATION: launch.why}
        return
    container = template["spec"]["containers"][0]
    container["command"], container["args"] = supervised_command(list(launch.command))
    container["volumeMounts"] = [{"name": SUPERVISOR_VOLUME, "mountPath": SUPERVISOR_DIR,
                                  "readOnly": True}]
    template["spec"]["volumes"] = [{"name": SUPERVISOR_VOLUME, "configMap": {
        "name": SUPERVISOR_CONFIGMAP, "defaultMode": 0o755}}]
    template["metadata"]["labels"][SUPERVISED_LABEL] = "1"
    template["metadata"]["annotations"] = {SUPERVISOR_ANNOTATION: script_digest(),
                                           ISTIO_PROXY_CONFIG: SIDECAR_STATS}


def _supervisor_configmap(plan: RoutePlan) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(SUPERVISOR_CONFIGMAP, namespace_for(plan.app),
                              labels(plan.app, BASELINE_ENV)),
            "data": {SUPERVISOR_KEY: SCRIPT}}


def _service(plan: RoutePlan, service: str, port: int) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(service, namespace_for(plan.app), labels(plan.app, BASELINE_ENV, service)),
        "spec": {
            # Every version is behind the one Service; the mesh picks the version.
            "selector": {APP_LABEL: plan.app, SERVICE_LABEL: service},
            "ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def _destination(rule_target: Backend, ns: str | None, port: int) -> Obj:
    return {"host": _host(rule_target.service, ns), "subset": rule_target.env,
            "port": {"number": port}}


def _matches(match: Match) -> list[Obj]:
    """The HTTPMatchRequests of a Match. Conditions within one request are ANDed, requests in
    the list ORed, so a rule for several methods becomes one request per method."""
    one: Obj = {}
    headers: Obj = {name: {"exact": value} for name, value in match.headers}
    for name, pattern in match.header_regex:
        if name in headers:
            raise ValueError(f"header {name!r} is matched twice in one rule")
        headers[name] = {"regex": pattern}
    if headers:
        one["headers"] = headers
    if match.without_headers:
        # An empty StringMatch under withoutHeaders: the header is absent.
        one["withoutHeaders"] = {name: {} for name in match.without_headers}
    if match.methods:
        # A copy each: shared dicts would come out of the YAML dumper as anchors and aliases.
        return [{**copy.deepcopy(one), "method": {"exact": method}} for method in match.methods]
    return [one] if one else []


def _http_route(rule: Rule, ns: str | None, port: int, resilience: Resilience | None = None) -> Obj:
    route: Obj = {"name": rule.name}
    matches = _matches(rule.match)
    if matches:
        route["match"] = matches
    # A destination with weight 0 is left out, as the Envoy renderer does.
    targets = [w for w in rule.to if w.weight > 0] if len(rule.to) > 1 else list(rule.to)
    if not targets:
        raise ValueError(f"rule {rule.name!r} sends traffic nowhere "
                         "(no destination with a weight above 0)")
    destinations = [_destination(w.backend, ns, port) for w in targets]
    if len(targets) == 1:
        route["route"] = [{"destination": destinations[0]}]
    else:
        route["route"] = [{"destination": d, "weight": w.weight} for d, w in zip(destinations, targets)]
    if rule.set_headers:
        route["headers"] = {"request": {"set": dict(rule.set_headers)}}
    if rule.mirror is not None:
        route["mirror"] = _destination(rule.mirror.backend, ns, port)
        route["mirrorPercentage"] = {"value": rule.mirror.percent}
    if resilience is not None:
        if resilience.timeout > 0:
            route["timeout"] = duration(resilience.timeout)
        retries = resilience.retries
        if retries is None:
            # Istio retries twice when a route says nothing; the Envoy runtime does not retry
            # unless told to, and both runtimes must behave alike.
            route["retries"] = {"attempts": 0}
        else:
            route["retries"] = {"attempts": retries.attempts, "retryOn": ",".join(retries.retry_on)}
            if retries.per_try_timeout > 0:
                route["retries"]["perTryTimeout"] = duration(retries.per_try_timeout)
    return route


def traffic_policy(resilience: Resilience | None) -> Obj:
    """A DestinationRule's trafficPolicy: connection limits and outlier detection."""
    policy: Obj = {}
    if resilience is None:
        return policy
    breaker = resilience.circuit_breaker
    if breaker is not None:
        policy["connectionPool"] = {
            "tcp": {"maxConnections": breaker.max_connections},
            "http": {"http1MaxPendingRequests": breaker.max_pending_requests,
                     "http2MaxRequests": breaker.max_requests,
                     "maxRetries": breaker.max_retries},
        }
    outlier = resilience.outlier_detection
    if outlier is not None:
        policy["outlierDetection"] = {
            "consecutive5xxErrors": outlier.consecutive_5xx,
            "interval": duration(outlier.interval),
            "baseEjectionTime": duration(outlier.base_ejection_time),
            "maxEjectionPercent": outlier.max_ejection_percent,
        }
    return policy


def _destination_rule(plan: RoutePlan, service: str, ns: str | None) -> Obj:
    subsets = [
        {"name": b.env, "labels": {ENV_LABEL: b.env}}
        for b in plan.backends
        if b.service == service
    ]
    spec: Obj = {"host": _host(service, ns)}
    policy = traffic_policy(plan.routes_for(service).resilience)
    if policy:
        spec["trafficPolicy"] = policy
    spec["subsets"] = subsets
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": _meta(service, ns, labels(plan.app, BASELINE_ENV, service)),
        "spec": spec,
    }


RATE_LIMIT_SUFFIX = "-rate-limit"


def _rate_limit(plan: RoutePlan, service: str, ns: str | None) -> Obj | None:
    """An EnvoyFilter that gives each pod of the service (one per version) Envoy's local rate
    limit on its sidecar's inbound side, before the router: the same token bucket as the docker
    runtime's Envoy keeps per version; the mesh answers the rest 429 (flag RL, and devmesh's
    rate limit header for the caller's proxy to record). None without a limit."""
    resilience = plan.routes_for(service).resilience
    limit = resilience.rate_limit if resilience is not None else None
    if limit is None:
        return None
    # Istio has no other API for a local rate limit: its warning that an EnvoyFilter reaches
    # into Envoy's own config is known and taken (_SUPPRESS). A patch placed relative to
    # another filter applies in a set order only with a priority of its own (istioctl
    # analyze's IST0151): after a user's (priority 0).
    patch = {"applyTo": "HTTP_FILTER", "match": _router_match("SIDECAR_INBOUND"),
             "patch": {"operation": "INSERT_BEFORE", "value": local_rate_limit(limit)}}
    return _envoy_filter(service + RATE_LIMIT_SUFFIX, ns, labels(plan.app, BASELINE_ENV, service), [patch],
                         selector={APP_LABEL: plan.app, SERVICE_LABEL: service}, priority=10)


ACCESS_LOG_FILTER = "devmesh-access-log"
# Istio's root namespace, where an EnvoyFilter may select the shared ingress gateway's pods.
ISTIO_ROOT_NAMESPACE = "istio-system"
GATEWAY_SELECTOR = {"istio": "ingressgateway"}
_T_HCM = ("type.googleapis.com/envoy.extensions.filters.network."
          "http_connection_manager.v3.HttpConnectionManager")
_T_ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
_HCM = "envoy.filters.network.http_connection_manager"
_SUPPRESS = {"galley.istio.io/analyze-suppress": "IST0133"}  # see _rate_limit


def gateway_access_log_name(app: str) -> str:
    return f"devmesh-{app}-access-log"


def _envoy_filter(name: str, namespace: str | None, lbls: Mapping[str, str], patches: list[Obj],
                  selector: Mapping[str, str] | None = None, priority: int | None = None) -> Obj:
    meta = _meta(name, namespace, lbls)
    meta["annotations"] = dict(_SUPPRESS)
    spec: Obj = {}
    if priority is not None:
        spec["priority"] = priority
    if selector is not None:
        spec["workloadSelector"] = {"labels": dict(selector)}
    spec["configPatches"] = patches
    return {"apiVersion": "networking.istio.io/v1alpha3", "kind": "EnvoyFilter", "metadata": meta, "spec": spec}


def _router_match(context: str) -> Obj:
    """The router filter of every HTTP connection manager in ``context``."""
    return {"context": context, "listener": {"filterChain": {"filter": {
        "name": _HCM, "subFilter": {"name": "envoy.filters.http.router"}}}}}


def _log_patch(context: str, log: list[Obj], **settings: Any) -> Obj:
    """Adds ``log`` to the access logs of every HTTP connection manager in ``context`` (a
    MERGE appends to a repeated field), with ``settings`` of the connection manager."""
    return {"applyTo": "NETWORK_FILTER",
            "match": {"context": context, "listener": {"filterChain": {"filter": {"name": _HCM}}}},
            "patch": {"operation": "MERGE", "value": {"typed_config": {
                "@type": _T_HCM, "access_log": log, **settings}}}}


def _hosts_of(plan: RoutePlan) -> str:
    """The app's hosts at the gateway (``<app>.<domain>``, ``<env>.<app>.<domain>``, any port) as
    an RE2 regex."""
    return r"([^.:]+\.)?" + re.escape(f"{plan.app}.{plan.domain}") + r"(:\d+)?"


def access_log_filters(plan: RoutePlan) -> list[Obj]:
    """The request records of the app's proxies (devmesh.traffic.records), as on the docker
    runtime's Envoy: each sidecar's outbound side logs the calls its pod makes (with the rule
    that routed them and the version that served them, Istio's ``outbound|port|env|host``
    cluster), its router the mirror copies; the shared ingress gateway logs what came in for the
    app's hosts, marked with the app (each app's log has its own routing header)."""
    ns = namespace_for(plan.app)
    shared = labels(plan.app, BASELINE_ENV)
    mirror = {"applyTo": "HTTP_FILTER", "match": _router_match("SIDECAR_OUTBOUND"),
              "patch": {"operation": "MERGE", "value": {"typed_config": {
                  "@type": _T_ROUTER,
                  "upstream_log": envoy_access_log("mesh:%DOWNSTREAM_LOCAL_PORT%", plan.header, kind="mirror")}}}}
    sidecars = _envoy_filter(ACCESS_LOG_FILTER, ns, shared, [
        _log_patch("SIDECAR_OUTBOUND", envoy_access_log("mesh:%DOWNSTREAM_LOCAL_PORT%", plan.header)), mirror])
    gateway = _envoy_filter(gateway_access_log_name(plan.app), ISTIO_ROOT_NAMESPACE, shared, [
        # a request that comes with an id keeps it (Envoy at the edge makes a new one by
        # default), as at the docker runtime's gateway: a caller can follow its own request
        _log_patch("GATEWAY", envoy_access_log(GATEWAY, plan.header, extra={"app": plan.app},
                                               authority=_hosts_of(plan)),
                   preserve_external_request_id=True)],
        selector=GATEWAY_SELECTOR)
    return [sidecars, gateway]


def _virtual_service(plan: RoutePlan, service: str, ns: str | None) -> Obj:
    routes = plan.routes_for(service)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _meta(service, ns, labels(plan.app, BASELINE_ENV, service)),
        "spec": {
            "hosts": [_host(service, ns)],
            "gateways": ["mesh"],
            "http": [_http_route(rule, ns, routes.port, routes.resilience) for rule in routes.rules],
        },
    }


def gateway_name(app: str) -> str:
    return f"{app}-gateway"


def _gateway(plan: RoutePlan) -> Obj:
    ns = namespace_for(plan.app)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": _meta(gateway_name(plan.app), ns, labels(plan.app, BASELINE_ENV)),
        "spec": {
            "selector": dict(GATEWAY_SELECTOR),
            "servers": [
                {
                    "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                    "hosts": [f"{plan.app}.{plan.domain}", f"*.{plan.app}.{plan.domain}"],
                }
            ],
        },
    }


def _gateway_virtual_services(plan: RoutePlan) -> list[Obj]:
    """One VirtualService per preview host, plus the app host for the baseline and headers."""
    ns = namespace_for(plan.app)
    entry = plan.routes_for(plan.entry)
    port = entry.port
    out = []
    by_host: dict[str, list[Rule]] = {}
    for rule in plan.gateway:
        by_host.setdefault(rule.match.host or plan.preview_host(BASELINE_ENV), []).append(rule)
    for host, rules in by_host.items():
        env = next((r.set_headers[0][1] for r in rules if r.set_headers), BASELINE_ENV)
        out.append(
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": _meta(f"{gateway_name(plan.app)}-{env}", ns,
                                  labels(plan.app, env, plan.entry)),
                "spec": {
                    "hosts": [host],
                    "gateways": [gateway_name(plan.app)],
                    # The host is matched by `hosts`; drop it from the rule itself.
                    "http": [_http_route(_without_host(r), ns, port, entry.resilience)
                             for r in rules],
                },
            }
        )
    return out


def _without_host(rule: Rule) -> Rule:
    from dataclasses import replace

    return replace(rule, match=replace(rule.match, host=None))


def _namespace(plan: RoutePlan) -> Obj:
    meta = _meta(namespace_for(plan.app), None, labels(plan.app, BASELINE_ENV))
    meta["labels"]["istio-injection"] = "enabled"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def default_image(registry: str, app: str) -> ImageFor:
    """Image names used when nothing was built: ``<registry>/<app>/<service>:<env>``."""
    return lambda b: f"{registry}/{app}/{b.service}:{b.env}"


def rolling_update(settings: Mapping[str, Any]) -> Obj:
    """A Deployment's update strategy from a rolling strategy preset's settings."""
    return {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": settings.get("max_surge", "25%"),
                              "maxUnavailable": settings.get("max_unavailable", 0)}}


ROLLING_PRESET = "rolling"


def rolling_settings(project: Project) -> Mapping[str, Any]:
    """The settings of the project's ``rolling`` strategy preset (``max_surge``,
    ``max_unavailable``): devmesh's own, or the project's ``presets/strategies/rolling.yaml``.

    Every Deployment updates by them. A project's ``rolling`` preset of another kind is a
    UserInputError, a broken one a ConfigError naming the file.
    """
    return strategy_preset(ROLLING_PRESET, "rolling", project.root).settings


def render_objects(project: Project, plan: RoutePlan, image_for: ImageFor | None = None,
                   launch_for: LaunchFor | None = None) -> list[Obj]:
    """Every object for the plan's baseline and environments, in apply order.

    Every Deployment's update strategy comes from the project's rolling preset
    (``rolling_settings``). ``launch_for`` says how each live-synced backend starts (under
    devmesh's supervisor, whose ConfigMap comes first, or not and why); without it, none does.
    """
    image_for = image_for or default_image(project.cluster.registry, project.app)
    rolling = rolling_settings(project)
    objects: list[Obj] = [_namespace(plan)]
    deployments = []
    supervised = False
    for b in plan.backends:
        deployment = _deployment(project, plan, b, image_for(b), rolling)
        launch = launch_for(b) if launch_for is not None else None
        if launch is not None:
            _supervise(deployment, launch)
            supervised = supervised or launch.supervised
        deployments.append(deployment)
    if supervised:
        objects.append(_supervisor_configmap(plan))
    objects += deployments
    objects += [_service(plan, r.service, r.port) for r in plan.services]
    ns = namespace_for(plan.app)
    objects += [_destination_rule(plan, r.service, ns) for r in plan.services]
    objects += [_virtual_service(plan, r.service, ns) for r in plan.services]
    objects += [f for r in plan.services if (f := _rate_limit(plan, r.service, ns)) is not None]
    objects += access_log_filters(plan)
    objects.append(_gateway(plan))
    objects += _gateway_virtual_services(plan)
    return objects


def tier_traffic(plan: RoutePlan, service: str) -> list[Obj]:
    """A service's traffic in a tier of the manifest repo: its DestinationRule (a subset per
    version, the preset's connection limits and outlier detection), VirtualService (the
    routes, timeouts and retries) and, with a rate limit, its EnvoyFilter; rendered as for the
    kind runtime but with no namespace and short hosts, since the cluster that applies the tier
    decides the namespace. The tier's primary version is the plan's baseline."""
    objects = [_destination_rule(plan, service, None), _virtual_service(plan, service, None)]
    limit = _rate_limit(plan, service, None)
    return objects if limit is None else [*objects, limit]


def to_yaml(objects: list[Obj]) -> str:
    """Multi-document YAML, keys in the order written."""
    import yaml

    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, explicit_start=True)
