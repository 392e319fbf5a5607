"""Tier strategies: a canary, mirror or switch of a service in one tier, as one commit to its
traffic file (see devmesh.gitops.tier_traffic).

The candidate obeys the tier rule: in a later tier it is the image the tier below runs as its
primary version (a candidate of the tier below does not count); into the first tier any image
pinned by digest may go. A tier runs one strategy of a service at a time: a second candidate
while one is open is refused; the open one is moved on (a canary's next weight, a mirror then
a canary, a canary then a switch), ended, finished by promoting the candidate, or rolled back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.files import replace_file
from devmesh.gitops.cache import Checkout
from devmesh.gitops.images import ImageRef
from devmesh.gitops.land import DEFAULT_ATTEMPTS, Change, Landed, Unchanged, land
from devmesh.gitops.layout import Layout
from devmesh.gitops.render import traffic_path
from devmesh.gitops.tier_traffic import TierTraffic, file_text, inspect, peek, read, summary, takes_all
from devmesh.gitops.trailers import TrafficChange
from devmesh.plan.strategy import Strategy

if TYPE_CHECKING:
    from devmesh.config import Project

# The strategy to run, given the one open for the same candidate (None: none is): how a
# canary's --next finds its step, and how a sticky header carries over.
Choose = Callable[[Strategy | None], Strategy]


@dataclass(frozen=True)
class TrafficRequest:
    """Run ``choose``'s strategy of ``service`` in ``tier`` (``choose`` None: end the strategy
    open, of kind ``end_kind`` when given, and go back to one version)."""

    service: str
    tier: str
    kind: str  # canary, mirror, switch: for messages (what is asked)
    choose: Choose | None
    image: ImageRef | None = None  # the candidate; default: the tier below's primary version
    end_kind: str | None = None


@dataclass(frozen=True)
class TrafficResult:
    change: TrafficChange | None  # None when nothing changed
    landed: Landed


def traffic_location(layout: Layout, tier: str, service: str) -> tuple[Path, str]:
    """(path, how messages name it) of ``service``'s traffic file in ``tier``."""
    path = layout.tier_file(tier).parent / traffic_path(service)
    return path, f"{layout.display}: {path.relative_to(layout.root).as_posix()}"


def current_traffic(layout: Layout, project: Project, tier: str, service: str, *,
                    allow_stale: bool = False) -> TierTraffic:
    """What the tier runs of ``service`` beside its primary version, read and checked: a hand
    edit of what devmesh renders is refused, naming the file, object and field; so is a file
    devmesh.yaml or a preset has changed since, unless ``allow_stale`` (a rollback or the
    promotion that finishes a strategy is never held up by a pending ``manifests sync``)."""
    path, display = traffic_location(layout, tier, service)
    if not path.is_file():
        raise UserInputError(f"{display} is missing",
                             hint="run 'devmesh manifests init': it writes every service's traffic in every tier")
    if not allow_stale:
        return read(project, tier, service, path, display)
    state, findings = inspect(project, tier, service, path, display)
    for finding in findings:
        if finding.verdict.state == "edited":
            raise finding.error(display)
    return state


def write_traffic(layout: Layout, project: Project, tier: str, service: str, state: TierTraffic) -> Path:
    path, _ = traffic_location(layout, tier, service)
    replace_file(path, file_text(project, tier, service, state).encode("utf-8"))
    return path


def candidate_for(layout: Layout, app: str, service: str, tier: str, kind: str,
                  image: ImageRef | None) -> tuple[ImageRef, str | None]:
    """(the candidate, the tier it comes from) by the tier rule, or a refusal saying why."""
    index, tiers = layout.tier(tier)
    if index == 0:
        if image is None:
            raise UserInputError(f"a {kind} in the first tier ({tier}) needs --image REF: the candidate, "
                                 "pinned by digest (NAME@sha256:<digest>)")
        return image, None
    below = tiers[index - 1].name
    below_pin = layout.pin(below, app, service)
    if below_pin is None:
        raise UserInputError(f"{service} has no image in {below}, the tier below {tier}: a {kind} in {tier} "
                             f"runs what {below} runs", hint=f"promote it into {below} first")
    if image is not None and image != below_pin:
        same = below_pin.name == image.name
        raise UserInputError(
            f"{tier} only takes an image {below} runs as its primary version, and {below} runs "
            f"{below_pin.short if same else below_pin}, not {image.short if same else image}",
            hint=f"a candidate in {below} does not count: promote it into {below} first")
    return below_pin, below


def plan_traffic(layout: Layout, project: Project, app: str, request: TrafficRequest) -> TrafficChange | Unchanged:
    """What the request means on the current tip: a TrafficChange, an Unchanged, or a refusal."""
    service, tier, kind = request.service, request.tier, request.kind
    layout.require_service(service)
    layout.tier(tier)
    primary = layout.pin(tier, app, service)
    current = current_traffic(layout, project, tier, service)
    if request.choose is None:
        open_one = current.strategy
        if open_one is None:
            return Unchanged(f"{service} in {tier} runs no strategy: its primary version serves alone")
        if request.end_kind is not None and open_one.kind != request.end_kind:
            raise UserInputError(f"{service} in {tier} runs a {open_one.kind}, not a {request.end_kind} "
                                 f"({summary(current)})",
                                 hint=f"'devmesh switch {service} --tier {tier} --back' ends any strategy")
        return TrafficChange(service, tier, TierTraffic(), current)
    if primary is None:
        raise UserInputError(f"{service} has no version in {tier} yet: a {kind} splits the traffic of the "
                             "version a tier runs", hint=f"promote {service} into {tier} first")
    candidate, source = candidate_for(layout, app, service, tier, kind, request.image)
    if candidate == primary:
        raise UserInputError(f"{tier} runs {candidate.short} of {service} as its primary version already: "
                             f"a {kind} needs a second version",
                             hint="promote a new image into the tier below first" if source else None)
    if current.candidate is not None and current.candidate != candidate:
        open_kind = current.strategy.kind if current.strategy is not None else "strategy"
        raise UserInputError(
            f"a {open_kind} of {service} is open in {tier} ({summary(current)}): a tier runs one "
            f"strategy of a service at a time",
            hint=f"finish it ('devmesh promote {service} --to {tier}'), end it ('devmesh switch {service} "
                 f"--tier {tier} --back') or roll it back first")
    same = current.strategy if current.candidate == candidate else None
    after = TierTraffic(candidate, request.choose(same))
    if after == current:
        return Unchanged(f"{service} in {tier} runs that already: {summary(current)}")
    return TrafficChange(service, tier, after, current, source)


def proposal_branch(change: TrafficChange) -> str:
    candidate = change.after.candidate or change.before.candidate
    digest = candidate.digest.removeprefix("sha256:")[:12] if candidate else "none"
    return f"devmesh/{change.action}-{change.service}-{change.tier}-{digest}"


def change_traffic(checkout: Checkout, project: Project, request: TrafficRequest, *,
                   app: str | None = None, attempts: int = DEFAULT_ATTEMPTS) -> TrafficResult:
    """Commit and push the strategy; on a push race it is planned again on the new tip."""
    planned: list[TrafficChange | None] = [None]

    def apply(co: Checkout) -> Change | Unchanged:
        co.require_tip()
        layout = co.layout()
        app_name = layout.app(app)
        plan = plan_traffic(layout, project, app_name, request)
        if isinstance(plan, Unchanged):
            planned[0] = None
            return plan
        planned[0] = plan
        path = write_traffic(layout, project, plan.tier, plan.service, plan.after)
        return Change(plan.message(), [co.relative(path)], proposal_branch(plan))

    landed = land(checkout, apply, attempts=attempts)
    return TrafficResult(planned[0], landed)


def finishing(layout: Layout, project: Project | None, tier: str, service: str,
              image: ImageRef) -> TierTraffic | None:
    """The strategy that promoting ``image`` into ``tier`` finishes (None: none is open), or a
    refusal: another image while a strategy is open, or a candidate that does not take all the
    traffic yet (promoting it would change at once what every request sees)."""
    path, _ = traffic_location(layout, tier, service)
    if not path.is_file():
        return None
    state = peek(path)
    if state.candidate is None or state.strategy is None:
        return None
    kind = state.strategy.kind
    if image != state.candidate:
        raise UserInputError(
            f"a {kind} of {service} is open in {tier} ({summary(state)}): only its candidate may be "
            f"promoted there now, not {image.short}",
            hint=f"end it first ('devmesh switch {service} --tier {tier} --back') or roll it back")
    if not takes_all(state):
        raise UserInputError(
            f"{service}'s {kind} in {tier} does not send all the traffic to the candidate yet "
            f"({summary(state)}): promoting it would switch every request at once",
            hint=f"'devmesh canary {service} --tier {tier} --weight 100' or 'devmesh switch {service} "
                 f"--tier {tier}' first, then promote")
    if project is None:
        raise UserInputError(f"finishing the {kind} of {service} in {tier} rewrites its traffic file, which "
                             "is rendered from devmesh.yaml", hint="run it in the project")
    current_traffic(layout, project, tier, service, allow_stale=True)  # a hand-edited file is refused
    return state


def takes_traffic_at(layout: Layout, tier: str, service: str) -> TierTraffic:
    """What the tier runs of ``service`` beside its primary version, unchecked (for overviews)."""
    path, _ = traffic_location(layout, tier, service)
    return peek(path)
