"""`devmesh canary`, `mirror`, `switch`, `routes`: release strategies on the running environments,
and with ``--tier`` in a tier of the manifest repo.

A strategy is stored per service (see devmesh.routes_state) and applied at once by rewriting
the routes; nothing is rebuilt or restarted. With ``--tier`` it is one commit to the tier's
traffic file instead (see devmesh.gitops.tier_strategy). `routes` shows the rules every runtime
is given, and `routes --explain` which of them a request meets and where it goes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from devmesh.app import strategies
from devmesh.cli import State, pass_state
from devmesh.cli.target import CONTEXT_OPTION, ENV_OPTION, RUNTIMES, env_for
from devmesh.cli.output import EventPrinter, table
from devmesh.errors import UserInputError
from devmesh.plan.explain import Hop
from devmesh.plan.strategy import Strategy, describe, sticky_notes, to_json

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.runtime.base import Runtime

BRANCH_OPTION = click.option("--branch", "-b",
                             help="The branch whose version gets the traffic (default: the checked-out one).")
RUNTIME_OPTION = click.option("--runtime", type=RUNTIMES, help="Override devmesh.yaml's runtime.")
TIER_OPTION = click.option("--tier", metavar="TIER",
                           help="Run it in this tier of the manifest repo (one commit) instead of locally.")
IMAGE_OPTION = click.option("--image", metavar="REF",
                            help="With --tier: the candidate (default: the image the tier below runs; "
                                 "the first tier needs one).")
YES_OPTION = click.option("--yes", "-y", is_flag=True, help="With --tier: do not ask for confirmation.")


def _in_tier(state: State, service: str, tier: str | None, kind: str, image: str | None, yes: bool,
             local: dict[str, Any], **choices: Any) -> bool:
    """Run the strategy in ``tier`` when one is given (True); refuse what only a local
    strategy takes, and --image/--yes without a tier."""
    if tier is None:
        for flag, given in (("--image", image is not None), ("--yes", yes)):
            if given:
                raise UserInputError(f"{flag} is for a strategy in a tier: give --tier TIER")
        return False
    for flag, value in local.items():
        if value is not None:
            raise UserInputError(f"{flag} is for the local environments; --tier {tier} runs the "
                                 f"{kind} in the manifest repo, whose candidate is the tier below's image")
    from devmesh.cli.gitops import tier_strategy

    tier_strategy(state, service, tier, kind, image=image, yes=yes, **choices)
    return True


def _open(state: State, service: str, runtime: str | None, context: str | None) -> tuple[Project, Runtime]:
    """The project (``service`` must be one of its) and the runtime running it."""
    from devmesh.app.environments import open_runtime  # not at the top: `--help` stays free of the runtimes' SDKs

    project = state.project()
    strategies.check_service(project, service)
    return project, open_runtime(project, runtime, context)


def _applied(applied: strategies.Applied) -> None:
    if applied.replaced_summary is not None:
        click.echo(f"replaced: {applied.replaced_summary}", err=True)
    click.echo(applied.summary)


def _end(state: State, service: str, kind: str | None, runtime: str | None, context: str | None) -> None:
    project, rt = _open(state, service, runtime, context)
    ended: Strategy | None = strategies.end(project, rt, service, kind, EventPrinter())
    if ended is None:
        click.echo(f"nothing to undo: {service} has no strategy; its baseline serves")
        return
    header = project.routing.header
    click.echo(f"{service}: requests without {header} go to the baseline again "
               f"(removed: {describe(ended, header)})")


def _no_target_on_undo(flag: str, service: str, kind: str, branch: str | None, env_name: str | None) -> None:
    """Undoing ends the service's strategy whichever environment it sends to: a --branch or
    --env given with it would be ignored, so it is refused rather than half-read."""
    if branch is not None or env_name is not None:
        raise UserInputError(f"{flag} takes no --branch or --env: it ends {service}'s {kind}, "
                             "whichever environment it sends to")


@click.command()
@click.argument("service")
@click.option("--weight", "-w", type=click.IntRange(0, 100),
              help="Percent of the service's requests without the routing header to the branch's version.")
@click.option("--next", "next_step", is_flag=True, help="Move to the preset's next step.")
@click.option("--sticky-header", metavar="HEADER",
              help="Keep each value of this header (e.g. x-user-id) on one version ('' for none).")
@click.option("--preset", default="canary", show_default=True, help="The canary strategy preset (its steps).")
@click.option("--off", is_flag=True, help="End the canary: the baseline serves again.")
@click.option("--auto", is_flag=True,
              help="Walk the preset's steps by the numbers: advance while the branch's version does "
                   "as well as the baseline, abort (weight 0) when it does not.")
@BRANCH_OPTION
@ENV_OPTION
@RUNTIME_OPTION
@CONTEXT_OPTION
@TIER_OPTION
@IMAGE_OPTION
@YES_OPTION
@pass_state
def canary(state: State, service: str, weight: int | None, next_step: bool, sticky_header: str | None,
           preset: str, off: bool, auto: bool, branch: str | None, env_name: str | None,
           runtime: str | None, context: str | None, tier: str | None, image: str | None,
           yes: bool) -> None:
    """Send a share of SERVICE's requests without the routing header to the branch's version
    (with --tier: to the candidate in that tier of the manifest repo).

    Without --weight or --next it starts at the preset's first step. With --auto it walks the
    steps itself, judging each by the mesh's records (the preset's analysis thresholds)."""
    if auto:
        _auto(state, service, weight=weight, next_step=next_step, off=off, tier=tier,
              sticky=sticky_header, preset=preset, branch=branch, env_name=env_name,
              runtime=runtime, context=context)
        return
    if off and (weight is not None or next_step or sticky_header is not None):
        raise UserInputError("--off takes no --weight, --next or --sticky-header")
    if weight is not None and next_step:
        raise UserInputError("give --weight or --next, not both")
    local = {"--branch": branch, "--env": env_name, "--runtime": runtime, "--context": context}
    if _in_tier(state, service, tier, "canary", image, yes, local, weight=weight, next_step=next_step,
                sticky=sticky_header, preset=preset, end=off, end_kind="canary"):
        return
    if off:
        _no_target_on_undo("--off", service, "canary", branch, env_name)
        _end(state, service, "canary", runtime, context)
        return
    project, rt = _open(state, service, runtime, context)
    env = env_for(project, branch, env_name)
    _applied(strategies.canary(project, rt, service, env, weight=weight, next_step=next_step,
                               sticky=sticky_header, preset=preset, sink=EventPrinter()))


def _auto(state: State, service: str, *, weight: int | None, next_step: bool, off: bool,
          tier: str | None, sticky: str | None, preset: str, branch: str | None,
          env_name: str | None, runtime: str | None, context: str | None) -> None:
    from devmesh.app.canary_auto import auto_canary, check_auto_options

    check_auto_options(weight=weight, next_step=next_step, off=off, tier=tier)
    project, rt = _open(state, service, runtime, context)
    env = env_for(project, branch, env_name)
    outcome = auto_canary(project, rt, service, env, preset=preset, sticky=sticky, sink=EventPrinter())
    if outcome.result == "passed":
        click.echo(f"{service}: {outcome.message}")
        return
    click.echo(f"{service}: {outcome.message}", err=True)
    if outcome.result == "aborted":
        click.echo(f"hint: the baseline serves every request again; fix the branch and run "
                   f"'devmesh canary {service} --auto' again, or end it with 'devmesh canary {service} --off'",
                   err=True)
    raise SystemExit(130 if outcome.result == "interrupted" else 1)


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
@TIER_OPTION
@IMAGE_OPTION
@YES_OPTION
@pass_state
def mirror(state: State, service: str, percent: float | None, preset: str, off: bool,
           branch: str | None, env_name: str | None, runtime: str | None, context: str | None,
           tier: str | None, image: str | None, yes: bool) -> None:
    """Copy SERVICE's GET and HEAD requests without the routing header to the branch's version
    (with --tier: to the candidate in that tier of the manifest repo).

    The baseline keeps answering; the copies' answers are dropped. Writes are never copied."""
    if off and percent is not None:
        raise UserInputError("--off takes no --percent")
    local = {"--branch": branch, "--env": env_name, "--runtime": runtime, "--context": context}
    if _in_tier(state, service, tier, "mirror", image, yes, local, percent=percent, preset=preset,
                end=off, end_kind="mirror"):
        return
    if off:
        _no_target_on_undo("--off", service, "mirror", branch, env_name)
        _end(state, service, "mirror", runtime, context)
        return
    project, rt = _open(state, service, runtime, context)
    env = env_for(project, branch, env_name)
    _applied(strategies.mirror(project, rt, service, env, percent=percent, preset=preset, sink=EventPrinter()))


@click.command()
@click.argument("service")
@click.option("--back", is_flag=True, help="Restore the baseline at once (ends any strategy of SERVICE).")
@click.option("--preset", default="red-black", show_default=True, help="The switch strategy preset.")
@BRANCH_OPTION
@ENV_OPTION
@RUNTIME_OPTION
@CONTEXT_OPTION
@TIER_OPTION
@IMAGE_OPTION
@YES_OPTION
@pass_state
def switch(state: State, service: str, back: bool, preset: str, branch: str | None,
           env_name: str | None, runtime: str | None, context: str | None, tier: str | None,
           image: str | None, yes: bool) -> None:
    """Red/black: send all of SERVICE's requests without the routing header to the branch's
    version (with --tier: to the candidate in that tier); the baseline keeps running, so --back
    restores it at once."""
    local = {"--branch": branch, "--env": env_name, "--runtime": runtime, "--context": context}
    if _in_tier(state, service, tier, "switch", image, yes, local, preset=preset, end=back):
        return
    if back:
        if branch is not None or env_name is not None:
            raise UserInputError("--back takes no --branch or --env: it restores the baseline")
        _end(state, service, None, runtime, context)
        return
    project, rt = _open(state, service, runtime, context)
    env = env_for(project, branch, env_name)
    _applied(strategies.switch(project, rt, service, env, preset=preset, sink=EventPrinter()))


# --------------------------------------------------------------------------- routes


def _rule_json(rule: Any) -> dict[str, Any]:
    hop = Hop("", rule).to_json()
    return {k: hop[k] for k in ("rule", "match", "why", "to", "mirror")}


def _rule_line(rule: Any, env: str | None) -> list[str]:
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
    from devmesh.app.environments import open_runtime  # not at the top: `--help` stays free of the runtimes' SDKs

    project = state.project()
    env = env_for(project, branch, env_name) if (branch or env_name) else None
    requests = strategies.parse_requests(explain_texts)
    view = strategies.routes(open_runtime(project, runtime, context), env, requests)
    plan = view.plan
    explained = [(e.text, e.request, e.hops) for e in view.explained]
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
