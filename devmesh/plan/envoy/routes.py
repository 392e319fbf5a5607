"""A plan's rules as Envoy route tables: one virtual host a service (and a gateway table by
preview host), the routes in the plan's rule order, each answering with the rule's name and the
cluster that served it in ``x-devmesh-route`` and ``x-devmesh-upstream``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from devmesh.plan.envoy.clusters import cluster_name
from devmesh.plan.envoy.files import Doc
from devmesh.plan.routing import Match, Mirror, Resilience, RoutePlan, Rule, Weighted
from devmesh.units import duration

ROUTE_HEADER = "x-devmesh-route"
UPSTREAM_HEADER = "x-devmesh-upstream"

MESH_ROUTES = "mesh"
GATEWAY_ROUTES = "gateway"
UNKNOWN_HOST_ROUTE = "unknown-host"

_T_ROUTE_CONFIG = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


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
    if resilience.rate_limit is not None:
        # The cluster the route chose (after a weighted split too) names the token bucket:
        # one bucket per version (see render's local rate limit filter).
        out["rate_limits"] = [{"actions": [{"destination_cluster": {}}]}]
    return out


def mesh_routes(plan: RoutePlan, listen_ports: Mapping[str, int]) -> Doc:
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


def gateway_routes(plan: RoutePlan) -> Doc:
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

