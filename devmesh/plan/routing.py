"""RoutePlan: the one routing model both runtimes render (Istio for kind, Envoy for docker).

Pure: built from the project and the environments, touches nothing. For every service the plan
holds ordered rules: the first whose match holds decides where a request goes. Requests that
carry the routing header of an environment that forked the service go to that fork; all else
falls back to the baseline. The gateway adds the header for each environment's preview host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devmesh.naming import BASELINE_ENV
from devmesh.plan.rules import Backend, Match, Mirror, Rule, Weighted
from devmesh.plan.strategy import Strategy, with_strategy

if TYPE_CHECKING:
    from devmesh.config import Project

__all__ = [
    "Backend", "CircuitBreaker", "Environment", "Match", "Mirror", "OutlierDetection",
    "RateLimit", "Resilience", "Retries", "RoutePlan", "Rule", "ServiceRoutes", "Weighted", "first_match",
    "plan_for_project", "plan_routes", "preview_host", "resilience_of",
]


@dataclass(frozen=True)
class Environment:
    """A set of services running a branch's own versions beside the baseline."""

    name: str
    forks: tuple[str, ...]
    branch: str | None = None

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE_ENV


@dataclass(frozen=True)
class Retries:
    """Retry a request ``attempts`` more times on the listed failures (Envoy ``retry_on`` names)."""

    attempts: int
    retry_on: tuple[str, ...] = ("connect-failure", "refused-stream")
    per_try_timeout: float = 0.0  # seconds; 0: only the route timeout applies


@dataclass(frozen=True)
class CircuitBreaker:
    """Limits on what the mesh sends to one version of a service at once."""

    max_connections: int = 1024
    max_pending_requests: int = 1024
    max_requests: int = 1024
    max_retries: int = 3


@dataclass(frozen=True)
class OutlierDetection:
    """Take a version out of the load balancing after consecutive 5xx answers."""

    consecutive_5xx: int = 5
    interval: float = 10.0  # seconds
    base_ejection_time: float = 30.0  # seconds
    max_ejection_percent: int = 100


@dataclass(frozen=True)
class RateLimit:
    """Each version of the service takes at most ``requests_per_second``, in bursts of up to
    ``burst``; the mesh answers the rest 429 itself."""

    requests_per_second: int
    burst: int


@dataclass(frozen=True)
class Resilience:
    """A service's traffic policy: route timeout and retries, connection limits, ejection.

    ``timeout`` 0 means none (Istio's default; Envoy's 15 s default is turned off to match).
    ``retries`` None means no retries on either runtime (Istio's implicit two are turned off).
    """

    timeout: float = 0.0
    retries: Retries | None = None
    circuit_breaker: CircuitBreaker | None = None
    outlier_detection: OutlierDetection | None = None
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class ServiceRoutes:
    """How calls to one service (by its name, on its port) are routed inside the mesh."""

    service: str
    port: int
    rules: tuple[Rule, ...]
    resilience: Resilience | None = None


@dataclass(frozen=True)
class RoutePlan:
    app: str
    header: str
    domain: str
    gateway_port: int
    entry: str
    environments: tuple[Environment, ...]
    services: tuple[ServiceRoutes, ...]
    gateway: tuple[Rule, ...]
    backends: tuple[Backend, ...] = field(default=())
    strategies: tuple[Strategy, ...] = field(default=())

    def routes_for(self, service: str) -> ServiceRoutes:
        for routes in self.services:
            if routes.service == service:
                return routes
        raise KeyError(service)

    def preview_host(self, env: str) -> str:
        return preview_host(self.app, self.domain, env)

    def preview_url(self, env: str) -> str:
        return f"http://{self.preview_host(env)}:{self.gateway_port}/"


def preview_host(app: str, domain: str, env: str) -> str:
    """``<env>.<app>.<domain>``; the baseline's host is ``<app>.<domain>``."""
    return f"{app}.{domain}" if env == BASELINE_ENV else f"{env}.{app}.{domain}"


def _service_rules(service: str, header: str, envs: Sequence[Environment]) -> tuple[Rule, ...]:
    rules = [
        Rule(
            name=f"{service}-{env.name}",
            match=Match(headers=((header, env.name),)),
            to=(Weighted(Backend(service, env.name)),),
            why=f"{header}: {env.name} and environment {env.name!r} forked {service}",
        )
        for env in envs
        if service in env.forks
    ]
    rules.append(
        Rule(
            name=f"{service}-baseline",
            match=Match(),
            to=(Weighted(Backend(service, BASELINE_ENV)),),
            why="no environment forked this service for the request's header: baseline",
        )
    )
    return tuple(rules)


def _gateway_rules(app: str, domain: str, header: str, entry: str,
                   envs: Sequence[Environment]) -> tuple[Rule, ...]:
    rules = []
    for env in envs:
        target = env.name if entry in env.forks else BASELINE_ENV
        rules.append(
            Rule(
                name=f"preview-{env.name}",
                match=Match(host=preview_host(app, domain, env.name)),
                to=(Weighted(Backend(entry, target)),),
                why=f"preview host of environment {env.name!r}: sets {header}: {env.name}"
                + ("" if target != BASELINE_ENV else f"; {entry} is not forked, so its baseline serves"),
                set_headers=((header, env.name),),
            )
        )
    for env in envs:
        if entry in env.forks:
            rules.append(
                Rule(
                    name=f"header-{env.name}",
                    match=Match(headers=((header, env.name),)),
                    to=(Weighted(Backend(entry, env.name)),),
                    why=f"{header}: {env.name} and environment {env.name!r} forked {entry}",
                )
            )
    rules.append(
        Rule(
            name="baseline",
            match=Match(),
            to=(Weighted(Backend(entry, BASELINE_ENV)),),
            why="no preview host or forked header matched: baseline",
        )
    )
    return tuple(rules)


def plan_routes(
    *,
    app: str,
    header: str,
    domain: str,
    gateway_port: int,
    entry: str,
    ports: Mapping[str, int],
    environments: Sequence[Environment],
    strategies: Sequence[Strategy] = (),
    resilience: Mapping[str, Resilience] | None = None,
) -> RoutePlan:
    """Route every service for the baseline plus ``environments`` (the baseline itself is implied).

    ``strategies`` (at most one per service, each naming an environment that forks the service)
    put their rules before the baseline rule of their service, and of the gateway when the
    service is the entry. ``resilience`` gives services their traffic policy.
    """
    envs = tuple(
        sorted((e for e in environments if not e.is_baseline), key=lambda e: e.name)
    )
    chosen = _check_strategies(strategies, ports, envs)
    policies = resilience or {}
    services = []
    for service in ports:
        rules = _service_rules(service, header, envs)
        if service in chosen:
            rules = with_strategy(rules, chosen[service], header, f"{service}-")
        services.append(ServiceRoutes(service, ports[service], rules, policies.get(service)))
    gateway = _gateway_rules(app, domain, header, entry, envs)
    if entry in chosen:
        gateway = with_strategy(gateway, chosen[entry], header, "")
    backends = tuple(Backend(s, BASELINE_ENV) for s in ports) + tuple(
        Backend(s, env.name) for env in envs for s in ports if s in env.forks
    )
    return RoutePlan(
        app=app,
        header=header,
        domain=domain,
        gateway_port=gateway_port,
        entry=entry,
        environments=envs,
        services=tuple(services),
        gateway=gateway,
        backends=backends,
        strategies=tuple(chosen[s] for s in ports if s in chosen),
    )


def _check_strategies(strategies: Sequence[Strategy], ports: Mapping[str, int],
                      envs: Sequence[Environment]) -> dict[str, Strategy]:
    forks = {env.name: env.forks for env in envs}
    chosen: dict[str, Strategy] = {}
    for strategy in strategies:
        if strategy.service not in ports:
            raise ValueError(f"a {strategy.kind} names service {strategy.service!r}, "
                             "which the project does not have")
        if strategy.service not in forks.get(strategy.env, ()):
            raise ValueError(f"a {strategy.kind} of {strategy.service} names environment "
                             f"{strategy.env!r}, which does not run its own {strategy.service}")
        if strategy.service in chosen:
            raise ValueError(f"service {strategy.service!r} has two strategies; "
                             "it can have at most one")
        chosen[strategy.service] = strategy
    return chosen


def _rate_limit(settings: Any) -> RateLimit | None:
    if settings is None or settings.requests_per_second == 0:
        return None
    return RateLimit(settings.requests_per_second, settings.burst or settings.requests_per_second)


def resilience_of(project: Project) -> dict[str, Resilience]:
    """Each service's traffic policy from its (preset-filled) ``resilience`` settings."""
    out = {}
    for name, svc in project.services.items():
        settings = getattr(svc, "resilience", None)
        if settings is None:
            continue
        retries = settings.retries
        breaker = settings.circuit_breaker
        outlier = settings.outlier_detection
        out[name] = Resilience(
            timeout=settings.timeout,
            retries=None if retries is None or retries.attempts == 0 else Retries(
                attempts=retries.attempts, retry_on=tuple(retries.retry_on),
                per_try_timeout=retries.per_try_timeout),
            circuit_breaker=None if breaker is None else CircuitBreaker(
                max_connections=breaker.max_connections,
                max_pending_requests=breaker.max_pending_requests,
                max_requests=breaker.max_requests, max_retries=breaker.max_retries),
            outlier_detection=None if outlier is None else OutlierDetection(
                consecutive_5xx=outlier.consecutive_5xx, interval=outlier.interval,
                base_ejection_time=outlier.base_ejection_time,
                max_ejection_percent=outlier.max_ejection_percent),
            rate_limit=_rate_limit(settings.rate_limit),
        )
    return out


def plan_for_project(project: Project, environments: Sequence[Environment],
                     strategies: Sequence[Strategy] = ()) -> RoutePlan:
    """``plan_routes`` with the app, routing settings, ports and resilience of a loaded Project."""
    return plan_routes(
        app=project.app,
        header=project.routing.header,
        domain=project.routing.domain,
        gateway_port=project.routing.gateway_port,
        entry=project.entry_service,
        ports={name: project.port_of(name) for name in project.services},
        environments=environments,
        strategies=strategies,
        resilience=resilience_of(project),
    )


def first_match(rules: Sequence[Rule], host: str | None, headers: Mapping[str, str],
                method: str = "GET") -> Rule:
    """The rule that decides where a request goes: the first whose match holds."""
    for rule in rules:
        if rule.match.holds(host, headers, method):
            return rule
    raise LookupError("no rule matched; every rule list ends with a catch-all")
