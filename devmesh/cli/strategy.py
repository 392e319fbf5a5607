"""`devmesh canary`, `mirror`, `switch`, `routes`: release strategies on the running environments.

A strategy is stored per service (see devmesh.routes_state) and applied at once by rewriting
the routes; nothing is rebuilt or restarted. `routes` shows the rules every runtime is given,
and `routes --explain` which of them a request meets and where it goes.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Protocol, cast

import click

from devmesh.cli import State, pass_state
from devmesh.cli.target import CONTEXT_OPTION, ENV_OPTION, RUNTIMES, env_for
from devmesh.cli.output import EventPrinter
from devmesh.errors import UserInputError

if TYPE_CHECKING:
    from devmesh.events import Sink
    from devmesh.plan.routing import Environment, RoutePlan
    from devmesh.routes_state import StrategyStore

_HEADER_RE = re.compile(r"[a-z0-9][a-z0-9-]*")


class RoutesRuntime(Protocol):
    """What a runtime offers for release strategies (the docker and kind runtimes have it)."""

    name: str
    strategies: StrategyStore

    def live_environments(self) -> list[Environment]: ...

    def route_plan(self) -> RoutePlan: ...

    def apply_routes(self, sink: Sink = ...) -> RoutePlan: ...


def routes_runtime(rt: object) -> RoutesRuntime:
    """``rt`` as a RoutesRuntime, or a UserInputError when it cannot apply strategies."""
    if not all(hasattr(rt, attr) for attr in ("strategies", "route_plan", "apply_routes")):
        raise UserInputError(
            f"release strategies are not available on the {getattr(rt, 'name', '?')} runtime")
    return cast(RoutesRuntime, rt)
BRANCH_OPTION = click.option("--branch", "-b",
                             help="The branch whose version gets the traffic (default: the checked-out one).")
RUNTIME_OPTION = click.option("--runtime", type=RUNTIMES, help="Override devmesh.yaml's runtime.")


class _Target:
    """A service, the environment whose version it is about, and the runtime running both."""

    def __init__(self, state: State, service: str, branch: str | None, env_name: str | None,
                 runtime: str | None, context: str | None, *, need_env: bool = True) -> None:
        from devmesh.app import environments as session

        self.project = state.project()
        if service not in self.project.services:
            raise UserInputError(f"unknown service {service!r}; services: "
                                 f"{', '.join(self.project.services)}")
        self.service = service
        self.rt = routes_runtime(session.open_runtime(self.project, runtime, context))
        self.header = self.project.routing.header
        self.env = env_for(self.project, branch, env_name) if need_env else ""
        if need_env:
            self._require_fork()

    def _require_fork(self) -> None:
        from devmesh.naming import BASELINE_ENV

        if self.env == BASELINE_ENV:
            raise UserInputError(
                "the baseline cannot be a strategy's target: strategies send baseline traffic "
                "to a branch's version",
                hint="check out the feature branch, or give --branch or --env")
        live = {e.name: e for e in self.rt.live_environments()}
        env = live.get(self.env)
        if env is None:
            running = ", ".join(live) or "none"
            raise UserInputError(f"environment {self.env} is not running (running: {running})",
                                 hint="'devmesh up' starts it")
        if self.service not in env.forks:
            forks = ", ".join(env.forks) or "none"
            raise UserInputError(
                f"environment {self.env} runs no version of its own of {self.service} "
                f"(it forks: {forks})",
                hint=f"change {self.service} on the branch and run 'devmesh up', or 'devmesh up --all'")

    def current(self) -> Any:
        return next((s for s in self.rt.strategies.load() if s.service == self.service), None)

    def store(self, strategy: Any) -> None:
        from devmesh.plan.strategy import describe

        old = self.rt.strategies.put(strategy)
        self.rt.apply_routes(EventPrinter())
        if old is not None and (old.kind != strategy.kind or old.env != strategy.env):
            click.echo(f"replaced: {describe(old, self.header)}", err=True)
        click.echo(f"{self.service}: {describe(strategy, self.header)}")

    def remove(self, kind: str | None) -> None:
        from devmesh.plan.strategy import describe

        old = self.current()
        if old is None:
            click.echo(f"nothing to undo: {self.service} has no strategy; its baseline serves")
            return
        if kind is not None and old.kind != kind:
            raise UserInputError(
                f"{self.service} has a {old.kind}, not a {kind}: {describe(old, self.header)}",
                hint=f"'devmesh switch {self.service} --back' removes any strategy")
        self.rt.strategies.remove(self.service)
        self.rt.apply_routes(EventPrinter())
        click.echo(f"{self.service}: requests without {self.header} go to the baseline again "
                   f"(removed: {describe(old, self.header)})")


def _no_target_on_undo(flag: str, service: str, kind: str, branch: str | None, env_name: str | None) -> None:
    """Undoing ends the service's strategy whichever environment it sends to: a --branch or
    --env given with it would be ignored, so it is refused rather than half-read."""
    if branch is not None or env_name is not None:
        raise UserInputError(f"{flag} takes no --branch or --env: it ends {service}'s {kind}, "
                             "whichever environment it sends to")


def _sticky(value: str | None, routing_header: str) -> str | None:
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


@click.command()
@click.argument("service")
@click.option("--weight", "-w", type=click.IntRange(0, 100),
              help="Percent of the service's requests without the routing header to the branch's version.")
@click.option("--next", "next_step", is_flag=True, help="Move to the preset's next step.")
@click.option("--sticky-header", metavar="HEADER",
              help="Keep each value of this header (e.g. x-user-id) on one version ('' for none).")
@click.option("--preset", default="canary", show_default=True, help="The canary strategy preset (its steps).")
@click.option("--off", is_flag=True, help="End the canary: the baseline serves again.")
@BRANCH_OPTION
@ENV_OPTION
@RUNTIME_OPTION
@CONTEXT_OPTION
@pass_state
def canary(state: State, service: str, weight: int | None, next_step: bool, sticky_header: str | None,
           preset: str, off: bool, branch: str | None, env_name: str | None, runtime: str | None,
           context: str | None) -> None:
    """Send a share of SERVICE's requests without the routing header to the branch's version.

    Without --weight or --next it starts at the preset's first step."""
    from devmesh.plan.strategy import Canary
    from devmesh.presets import strategy_preset

    if off:
        if weight is not None or next_step or sticky_header is not None:
            raise UserInputError("--off takes no --weight, --next or --sticky-header")
        _no_target_on_undo("--off", service, "canary", branch, env_name)
        _Target(state, service, branch, env_name, runtime, context, need_env=False).remove("canary")
        return
    if weight is not None and next_step:
        raise UserInputError("give --weight or --next, not both")
    target = _Target(state, service, branch, env_name, runtime, context)
    chosen = strategy_preset(preset, "canary", target.project.root)
    current = target.current()
    same = current if isinstance(current, Canary) and current.env == target.env else None
    steps = chosen.steps
    if weight is None:
        if next_step and same is not None:
            later = [s for s in steps if s > same.weight]
            if not later:
                raise UserInputError(
                    f"{service}'s canary is at {same.weight}%, the last step of preset "
                    f"{preset!r} ({', '.join(map(str, steps))})",
                    hint=f"'devmesh switch {service}' sends all of it; "
                         f"'devmesh switch {service} --back' ends the canary")
            weight = later[0]
        else:
            weight = steps[0]
    if sticky_header is None:
        default = same.sticky_header if same is not None else chosen.settings.get("sticky_header")
        sticky = _sticky(default, target.header)
    else:
        sticky = _sticky(sticky_header, target.header)
    target.store(Canary(service, target.env, weight, sticky, steps, preset))


@click.command()
@click.argument("service")
@click.option("--percent", "-p", type=click.FloatRange(0, 100, min_open=True),
              help="Percent of GET and HEAD requests to copy (default: the preset's).")
@click.option("--preset", default="mirror", show_default=True, help="The mirror strategy preset.")
@click.option("--off", is_flag=True, help="Stop mirroring.")
@BRANCH_OPTION
@ENV_OPTION
@RUNTIME_OPTION
@CONTEXT_OPTION
@pass_state
def mirror(state: State, service: str, percent: float | None, preset: str, off: bool,
           branch: str | None, env_name: str | None, runtime: str | None, context: str | None) -> None:
    """Copy SERVICE's GET and HEAD requests without the routing header to the branch's version.

    The baseline keeps answering; the copies' answers are dropped. Writes are never copied."""
    from devmesh.plan.strategy import Mirror
    from devmesh.presets import strategy_preset

    if off:
        if percent is not None:
            raise UserInputError("--off takes no --percent")
        _no_target_on_undo("--off", service, "mirror", branch, env_name)
        _Target(state, service, branch, env_name, runtime, context, need_env=False).remove("mirror")
        return
    target = _Target(state, service, branch, env_name, runtime, context)
    chosen = strategy_preset(preset, "mirror", target.project.root)
    if percent is None:
        percent = float(chosen.settings.get("percent", 100))
    target.store(Mirror(service, target.env, percent, preset))


@click.command()
@click.argument("service")
@click.option("--back", is_flag=True, help="Restore the baseline at once (ends any strategy of SERVICE).")
@click.option("--preset", default="red-black", show_default=True, help="The switch strategy preset.")
@BRANCH_OPTION
@ENV_OPTION
@RUNTIME_OPTION
@CONTEXT_OPTION
@pass_state
def switch(state: State, service: str, back: bool, preset: str, branch: str | None,
           env_name: str | None, runtime: str | None, context: str | None) -> None:
    """Red/black: send all of SERVICE's requests without the routing header to the branch's
    version; the baseline keeps running, so --back restores it at once."""
    from devmesh.plan.strategy import Switch
    from devmesh.presets import strategy_preset

    if back:
        if branch is not None or env_name is not None:
            raise UserInputError("--back takes no --branch or --env: it restores the baseline")
        _Target(state, service, None, None, runtime, context, need_env=False).remove(None)
        return
    target = _Target(state, service, branch, env_name, runtime, context)
    strategy_preset(preset, "switch", target.project.root)
    target.store(Switch(service, target.env, preset))


# --------------------------------------------------------------------------- routes


def _rule_json(rule: Any) -> dict[str, Any]:
    from devmesh.plan.explain import Hop

    hop = Hop("", rule).to_json()
    return {k: hop[k] for k in ("rule", "match", "why", "to", "mirror")}


def _rule_line(rule: Any, env: str | None) -> list[str]:
    from devmesh.plan.explain import Hop

    hop = Hop("", rule)
    mark = "*" if env and any(d["env"] == env for d in hop.destinations()) else " "
    return [mark, rule.name, rule.match.describe(), hop.describe_destination()]


@click.command()
@click.option("--branch", "-b", help="Mark the rules that reach this branch's versions; an explained "
                                     "request without a host arrives on its preview host.")
@ENV_OPTION
@click.option("--explain", "explain_texts", multiple=True, metavar="REQUEST",
              help="A request such as \"GET /cart -H 'x-user-id: 42'\": which rule it meets, "
                   "where it goes. May be repeated.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@RUNTIME_OPTION
@CONTEXT_OPTION
@pass_state
def routes(state: State, branch: str | None, env_name: str | None, explain_texts: tuple[str, ...],
           as_json: bool, runtime: str | None, context: str | None) -> None:
    """Show the ordered routing rules of the gateway and of every service, as running now."""
    from devmesh.app import environments as session
    from devmesh.cli.output import table
    from devmesh.plan.explain import explain, parse_request
    from devmesh.plan.strategy import describe, sticky_notes, to_json

    project = state.project()
    env = env_for(project, branch, env_name) if (branch or env_name) else None
    requests = []
    for text in explain_texts:
        try:
            request = parse_request(text)
        except ValueError as exc:
            raise UserInputError(f"--explain: {exc}") from None
        requests.append((text, request))
    rt = routes_runtime(session.open_runtime(project, runtime, context))
    plan = rt.route_plan()
    if env is not None and env not in {e.name for e in plan.environments}:
        running = ", ".join(e.name for e in plan.environments) or "none"
        raise UserInputError(f"environment {env} is not running (running: {running})")

    def with_host(request: Any) -> Any:
        if request.host is None and env is not None:
            from dataclasses import replace

            return replace(request, host=plan.preview_host(env))
        return request

    explained = [(text, with_host(r), explain(plan, with_host(r))) for text, r in requests]
    if as_json:
        out: dict[str, Any] = {
            "app": plan.app,
            "header": plan.header,
            "strategies": [to_json(s) | {"summary": describe(s, plan.header)} for s in plan.strategies],
            "gateway": [_rule_json(r) for r in plan.gateway],
            "services": {r.service: [_rule_json(rule) for rule in r.rules] for r in plan.services},
        }
        if explained:
            out["explained"] = [{"request": text, "method": req.method, "path": req.path,
                                 "host": req.host or plan.preview_host("baseline"),
                                 "headers": req.header_map(),
                                 "hops": [h.to_json() for h in hops],
                                 "sticky": sticky_notes(plan.strategies, req.header_map())}
                                for text, req, hops in explained]
        click.echo(json.dumps(out, indent=2))
        return
    if explained:
        for text, req, hops in explained:
            host = req.host or plan.preview_host("baseline")
            click.echo(f"{req.method} {req.path} on {host}" + "".join(
                f" with {n}: {v}" for n, v in req.headers))
            rows = [[h.at, h.rule.name, h.describe_destination(), h.rule.why] for h in hops]
            click.echo(table(["AT", "RULE", "GOES TO", "WHY"], rows))
            for note in sticky_notes(plan.strategies, req.header_map()):
                click.echo(note)
            click.echo("")
        click.echo("each service's line assumes the request reaches it: apps forward the routing "
                   "header, other headers only if they copy them", err=True)
        return
    for strategy in plan.strategies:
        click.echo(f"strategy {strategy.service}: {describe(strategy, plan.header)}")
    if plan.strategies:
        click.echo("")
    sections = [("gateway", plan.gateway)] + [(r.service, r.rules) for r in plan.services]
    for name, rules in sections:
        click.echo(f"{name}:")
        rows = [_rule_line(rule, env) for rule in rules]
        body = table(["", "RULE", "WHEN", "GOES TO"], rows)
        click.echo("\n".join("  " + line for line in body.splitlines()))
    if env is not None:
        click.echo(f"\n* reaches a version of environment {env}", err=True)
