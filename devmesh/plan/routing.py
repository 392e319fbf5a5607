"""RoutePlan: the one routing model both runtimes render (Istio for kind, Envoy for docker).

Pure: built from the project and the environments, touches nothing. For every service the plan
holds ordered rules: the first whose match holds decides where a request goes. Requests that
carry the routing header of an environment that forked the service go to that fork; all else
falls back to the baseline. The gateway adds the header for each environment's preview host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from devmesh.naming import BASELINE_ENV

if TYPE_CHECKING:
    from devmesh.config import Project


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
class Backend:
    """One running version of a service: the baseline's or an environment's fork."""

    service: str
    env: str


@dataclass(frozen=True)
class Weighted:
    backend: Backend
    weight: int = 100


@dataclass(frozen=True)
class Match:
    """All given conditions must hold. Header values match exactly; host ignores any port."""

    headers: tuple[tuple[str, str], ...] = ()
    host: str | None = None

    def holds(self, host: str | None, headers: Mapping[str, str]) -> bool:
        lowered = {k.lower(): v for k, v in headers.items()}
        if self.host is not None and (host or "").split(":", 1)[0].lower() != self.host:
            return False
        return all(lowered.get(name) == value for name, value in self.headers)

    def describe(self) -> str:
        parts = [f"host {self.host}"] if self.host else []
        parts += [f"{name}: {value}" for name, value in self.headers]
        return " and ".join(parts) or "any request"


@dataclass(frozen=True)
class Rule:
    name: str
    match: Match
    to: tuple[Weighted, ...]
    why: str
    set_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ServiceRoutes:
    """How calls to one service (by its name, on its port) are routed inside the mesh."""

    service: str
    port: int
    rules: tuple[Rule, ...]


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
) -> RoutePlan:
    """Route every service for the baseline plus ``environments`` (the baseline itself is implied)."""
    envs = tuple(
        sorted((e for e in environments if not e.is_baseline), key=lambda e: e.name)
    )
    services = tuple(
        ServiceRoutes(service, ports[service], _service_rules(service, header, envs))
        for service in ports
    )
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
        services=services,
        gateway=_gateway_rules(app, domain, header, entry, envs),
        backends=backends,
    )


def plan_for_project(project: Project, environments: Sequence[Environment]) -> RoutePlan:
    """``plan_routes`` with the app, routing settings and ports of a loaded Project."""
    return plan_routes(
        app=project.app,
        header=project.routing.header,
        domain=project.routing.domain,
        gateway_port=project.routing.gateway_port,
        entry=project.entry_service,
        ports={name: project.port_of(name) for name in project.services},
        environments=environments,
    )


def first_match(rules: Sequence[Rule], host: str | None, headers: Mapping[str, str]) -> Rule:
    for rule in rules:
        if rule.match.holds(host, headers):
            return rule
    raise LookupError("no rule matched; every rule list ends with a catch-all")
