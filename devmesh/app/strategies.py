"""Release strategies: send a share, a copy or all of a service's baseline traffic to a
branch's version, end it, and read the routes as running now.

A strategy is stored per service (``Runtime.strategies``, see devmesh.routes_state) and takes
effect at once when the runtime re-applies its routes; nothing is rebuilt or restarted. Only
requests without the routing header are touched: every preview keeps reaching its own versions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.events import Sink, Step, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.explain import Hop, Request, explain, parse_request
from devmesh.plan.routing import RoutePlan
from devmesh.plan.strategy import Canary, Mirror, Strategy, Switch, describe
from devmesh.config.presets import StrategyPreset, strategy_preset
from devmesh.runtime.base import Runtime

if TYPE_CHECKING:
    from devmesh.config import Project

_HEADER_RE = re.compile(r"[a-z0-9][a-z0-9-]*")


def check_service(project: Project, service: str) -> None:
    """A UserInputError unless ``service`` is one of the project's."""
    if service not in project.services:
        raise UserInputError(f"unknown service {service!r}; services: {', '.join(project.services)}")


def require_fork(rt: Runtime, env: str, service: str) -> None:
    """``env`` must run, and run a version of its own of ``service``: the strategy's target."""
    if env == BASELINE_ENV:
        raise UserInputError(
            "the baseline cannot be a strategy's target: strategies send baseline traffic "
            "to a branch's version",
            hint="check out the feature branch, or give --branch or --env")
    live = {e.name: e for e in rt.live_environments()}
    found = live.get(env)
    if found is None:
        running = ", ".join(live) or "none"
        raise UserInputError(f"environment {env} is not running (running: {running})",
                             hint="'devmesh up' starts it")
    if service not in found.forks:
        forks = ", ".join(found.forks) or "none"
        raise UserInputError(
            f"environment {env} runs no version of its own of {service} (it forks: {forks})",
            hint=f"change {service} on the branch and run 'devmesh up', or 'devmesh up --all'")


def sticky_header(value: str | None, routing_header: str) -> str | None:
    """The header that keeps each of its values on one version (None or '': none)."""
    if value is None or value == "":
        return None
    name = value.strip().lower()
    if not _HEADER_RE.fullmatch(name):
        raise UserInputError(f"--sticky-header: {value!r} is not a header name "
                             "(letters, digits and '-')")
    if name == routing_header:
        raise UserInputError(f"--sticky-header: {name} is the routing header; requests that "
                             "carry it never reach a strategy")
    return name


@dataclass(frozen=True)
class Applied:
    """A strategy stored and applied, and the one of another kind or environment it replaced."""

    strategy: Strategy
    header: str
    replaced: Strategy | None = None

    @property
    def summary(self) -> str:
        return f"{self.strategy.service}: {describe(self.strategy, self.header)}"

    @property
    def replaced_summary(self) -> str | None:
        return describe(self.replaced, self.header) if self.replaced is not None else None


def current(rt: Runtime, service: str) -> Strategy | None:
    """The service's stored strategy, if it has one."""
    return next((s for s in rt.strategies.load() if s.service == service), None)


def _store(project: Project, rt: Runtime, strategy: Strategy, sink: Sink) -> Applied:
    old = rt.strategies.put(strategy)
    rt.apply_routes(sink)
    replaced = old if old is not None and (old.kind != strategy.kind or old.env != strategy.env) else None
    return Applied(strategy, project.routing.header, replaced)


def choose_canary(project: Project, service: str, env: str, found: Strategy | None, *,
                  weight: int | None = None, next_step: bool = False, sticky: str | None = None,
                  preset: str = "canary", where: str = "") -> Canary:
    """The canary of ``service`` to ``env`` asked for, given the strategy ``found`` running for
    the same version now: ``weight`` when given, else with ``next_step`` the preset's step after
    the one ``found``'s canary is at, else the preset's first step. ``sticky`` None keeps
    ``found``'s sticky header (or the preset's), '' turns it off. ``where`` ends the commands
    a message suggests (`` --tier beta``)."""
    chosen = strategy_preset(preset, "canary", project.root)
    same = found if isinstance(found, Canary) and found.env == env else None
    steps = chosen.steps
    if weight is None:
        if next_step and same is not None:
            later = [s for s in steps if s > same.weight]
            if not later:
                raise UserInputError(
                    f"{service}'s canary is at {same.weight}%, the last step of preset "
                    f"{preset!r} ({', '.join(map(str, steps))})",
                    hint=f"'devmesh switch {service}{where}' sends all of it; "
                         f"'devmesh switch {service}{where} --back' ends the canary")
            weight = later[0]
        else:
            weight = steps[0]
    if not 0 <= weight <= 100:
        raise UserInputError(f"--weight: {weight} is not a percentage of requests (0–100)")
    return Canary(service, env, weight, canary_sticky(chosen, same, sticky, project.routing.header),
                  steps, preset)


def canary_sticky(chosen: StrategyPreset, same: Canary | None, sticky: str | None,
                  routing_header: str) -> str | None:
    """A canary's sticky header: ``sticky`` when given ('' turns it off), else the one the
    same version's canary has now, else the preset's."""
    if sticky is None:
        default = same.sticky_header if same is not None else chosen.settings.get("sticky_header")
        return sticky_header(default, routing_header)
    return sticky_header(sticky, routing_header)


def choose_mirror(project: Project, service: str, env: str, *, percent: float | None = None,
                  preset: str = "mirror") -> Mirror:
    chosen = strategy_preset(preset, "mirror", project.root)
    if percent is None:
        percent = float(chosen.settings.get("percent", 100))
    if not 0 < percent <= 100:
        raise UserInputError(f"--percent: {percent:g} is not a share of requests (above 0, at most 100)")
    return Mirror(service, env, percent, preset)


def choose_switch(project: Project, service: str, env: str, *, preset: str = "red-black") -> Switch:
    strategy_preset(preset, "switch", project.root)
    return Switch(service, env, preset)


def canary(project: Project, rt: Runtime, service: str, env: str, *, weight: int | None = None,
           next_step: bool = False, sticky: str | None = None, preset: str = "canary",
           sink: Sink = discard) -> Applied:
    """A share of ``service``'s requests without the routing header to ``env``'s version
    (see ``choose_canary`` for the weight and the sticky header)."""
    require_fork(rt, env, service)
    found = current(rt, service)
    if isinstance(found, Canary) and found.status:
        sink(Step(f"{service}'s canary was left by --auto: {found.status}"))
    chosen = choose_canary(project, service, env, found, weight=weight, next_step=next_step,
                           sticky=sticky, preset=preset)
    return _store(project, rt, chosen, sink)


def mirror(project: Project, rt: Runtime, service: str, env: str, *, percent: float | None = None,
           preset: str = "mirror", sink: Sink = discard) -> Applied:
    """Copies of ``service``'s GET and HEAD requests without the routing header to ``env``."""
    require_fork(rt, env, service)
    return _store(project, rt, choose_mirror(project, service, env, percent=percent, preset=preset), sink)


def switch(project: Project, rt: Runtime, service: str, env: str, *, preset: str = "red-black",
           sink: Sink = discard) -> Applied:
    """All of ``service``'s requests without the routing header to ``env``'s version."""
    require_fork(rt, env, service)
    return _store(project, rt, choose_switch(project, service, env, preset=preset), sink)


def end(project: Project, rt: Runtime, service: str, kind: str | None = None,
        sink: Sink = discard) -> Strategy | None:
    """End ``service``'s strategy (of ``kind``, None: any); the one ended, None when it had none."""
    old = current(rt, service)
    if old is None:
        return None
    if kind is not None and old.kind != kind:
        raise UserInputError(
            f"{service} has a {old.kind}, not a {kind}: {describe(old, project.routing.header)}",
            hint=f"'devmesh switch {service} --back' removes any strategy")
    rt.strategies.remove(service)
    rt.apply_routes(sink)
    return old


# --- the routes ---------------------------------------------------------------------------------


def parse_requests(texts: tuple[str, ...] | list[str]) -> list[tuple[str, Request]]:
    """Each request to explain, as written and as read ("GET /cart -H 'x-user-id: 42'")."""
    out = []
    for text in texts:
        try:
            out.append((text, parse_request(text)))
        except ValueError as exc:
            raise UserInputError(f"--explain: {exc}") from None
    return out


@dataclass(frozen=True)
class Explained:
    text: str  # the request as written
    request: Request  # as read; without a host, the environment's preview host when one was named
    hops: list[Hop]


@dataclass(frozen=True)
class RoutesView:
    plan: RoutePlan
    explained: list[Explained]


def routes(rt: Runtime, env: str | None = None, requests: list[tuple[str, Request]] | None = None) -> RoutesView:
    """The routes as running now and where each request goes; ``env`` must be running."""
    plan = rt.route_plan()
    if env is not None and env not in {e.name for e in plan.environments}:
        running = ", ".join(e.name for e in plan.environments) or "none"
        raise UserInputError(f"environment {env} is not running (running: {running})")
    explained = []
    for text, request in requests or []:
        if request.host is None and env is not None:
            request = replace(request, host=plan.preview_host(env))
        explained.append(Explained(text, request, explain(plan, request)))
    return RoutesView(plan, explained)
