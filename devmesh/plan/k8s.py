"""RoutePlan + services → the Kubernetes and Istio objects the kind runtime applies. Pure.

Layout: one namespace per app (``devmesh-<app>``). Every version of a service is a Deployment
(``<service>-<env>``) behind the service's one Kubernetes Service; a DestinationRule names each
version as a subset (by the ``devmesh.dev/env`` label) and a VirtualService routes to subsets in
the plan's rule order. Forks call other services by their plain names, exactly as the baseline
does, so the mesh routes every hop by the header.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend, RoutePlan, Rule

if TYPE_CHECKING:
    from devmesh.config import Project

MANAGED_BY = "app.kubernetes.io/managed-by"
APP_LABEL = "devmesh.dev/app"
ENV_LABEL = "devmesh.dev/env"
SERVICE_LABEL = "devmesh.dev/service"
FIELD_MANAGER = "devmesh"

Obj = dict[str, Any]
ImageFor = Callable[[Backend], str]


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


def _host(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def _deployment(project: Project, plan: RoutePlan, backend: Backend, image: str) -> Obj:
    svc = project.services[backend.service]
    port = project.port_of(backend.service)
    ns = namespace_for(plan.app)
    lbls = labels(plan.app, backend.env, backend.service)
    pod_labels = {**lbls, "app": backend.service, "version": backend.env}
    env = [{"name": k, "value": v} for k, v in sorted(svc.env.items())]
    env += [
        {"name": "DEVMESH_ENV", "value": backend.env},
        {"name": "DEVMESH_HEADER", "value": plan.header},
        {"name": "DEVMESH_SERVICE", "value": backend.service},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(deployment_name(backend), ns, lbls),
        "spec": {
            "replicas": 1,
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


def _destination(rule_target: Backend, ns: str, port: int) -> Obj:
    return {"host": _host(rule_target.service, ns), "subset": rule_target.env,
            "port": {"number": port}}


def _http_route(rule: Rule, ns: str, port: int) -> Obj:
    route: Obj = {"name": rule.name}
    match: Obj = {}
    if rule.match.headers:
        match["headers"] = {name: {"exact": value} for name, value in rule.match.headers}
    if match:
        route["match"] = [match]
    destinations = [_destination(w.backend, ns, port) for w in rule.to]
    if len(rule.to) == 1:
        route["route"] = [{"destination": destinations[0]}]
    else:
        route["route"] = [{"destination": d, "weight": w.weight} for d, w in zip(destinations, rule.to)]
    if rule.set_headers:
        route["headers"] = {"request": {"set": dict(rule.set_headers)}}
    return route


def _destination_rule(plan: RoutePlan, service: str) -> Obj:
    ns = namespace_for(plan.app)
    subsets = [
        {"name": b.env, "labels": {ENV_LABEL: b.env}}
        for b in plan.backends
        if b.service == service
    ]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": _meta(service, ns, labels(plan.app, BASELINE_ENV, service)),
        "spec": {
            "host": _host(service, ns),
            "trafficPolicy": {
                "outlierDetection": {
                    "consecutive5xxErrors": 5,
                    "interval": "10s",
                    "baseEjectionTime": "30s",
                },
            },
            "subsets": subsets,
        },
    }


def _virtual_service(plan: RoutePlan, service: str) -> Obj:
    ns = namespace_for(plan.app)
    routes = plan.routes_for(service)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _meta(service, ns, labels(plan.app, BASELINE_ENV, service)),
        "spec": {
            "hosts": [_host(service, ns)],
            "gateways": ["mesh"],
            "http": [_http_route(rule, ns, routes.port) for rule in routes.rules],
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
            "selector": {"istio": "ingressgateway"},
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
    port = plan.routes_for(plan.entry).port
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
                    "http": [_http_route(_without_host(r), ns, port) for r in rules],
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


def render_objects(project: Project, plan: RoutePlan, image_for: ImageFor | None = None) -> list[Obj]:
    """Every object for the plan's baseline and environments, in apply order."""
    image_for = image_for or default_image(project.cluster.registry, project.app)
    objects: list[Obj] = [_namespace(plan)]
    objects += [_deployment(project, plan, b, image_for(b)) for b in plan.backends]
    objects += [_service(plan, r.service, r.port) for r in plan.services]
    objects += [_destination_rule(plan, r.service) for r in plan.services]
    objects += [_virtual_service(plan, r.service) for r in plan.services]
    objects.append(_gateway(plan))
    objects += _gateway_virtual_services(plan)
    return objects


def to_yaml(objects: list[Obj]) -> str:
    """Multi-document YAML, keys in the order written."""
    import yaml

    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False, explicit_start=True)
