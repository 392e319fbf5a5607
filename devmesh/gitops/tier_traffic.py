"""A service's traffic file in a tier (``tiers/<tier>/traffic/<service>.yaml``): what it holds,
rendered from the route plan, and read back.

The file is wholly devmesh's. It holds the service's DestinationRule and VirtualService (and
the EnvoyFilter of its rate limit, when its preset sets one) and, while a strategy runs in the
tier, the second version: a Deployment ``<service>-candidate`` whose pods run the candidate image (by digest) and carry ``devmesh.dev/env: candidate``, the
subset the strategy sends traffic to. The route plan is the runtimes' own: the tier's primary
version is the plan's baseline, the candidate an environment that forks the service, and the
strategy one of ``devmesh.plan.strategy``'s (canary, mirror, switch). The strategy is written on
the VirtualService as an annotation so that the file says what it does in one place, and so
that reading it back needs no guessing from routes.

Reading back checks that the file is what devmesh would write for what it says: a hand edit
of a field devmesh renders is reported (file, object, field) rather than overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from devmesh.errors import UserInputError
from devmesh.gitops.images import ImageRef, parse_image_ref
from devmesh.gitops.managed import Difference, Verdict, judge_whole, show, stamp_whole
from devmesh.gitops.render import base_labels, deployment, traffic_file
from devmesh.gitops.yamlio import documents_text
from devmesh.plan.k8s import ENV_LABEL, RATE_LIMIT_SUFFIX, tier_traffic
from devmesh.plan.routing import Environment, plan_for_project
from devmesh.plan.strategy import Canary, Mirror, Strategy, Switch, from_json, to_json

if TYPE_CHECKING:
    from devmesh.config import Project

CANDIDATE = "candidate"
STRATEGY_ANNOTATION = "devmesh.dev/strategy"


@dataclass(frozen=True)
class TierTraffic:
    """What a tier runs of a service beside its base: nothing, or a candidate version and the
    strategy that sends it traffic (both, or neither)."""

    candidate: ImageRef | None = None
    strategy: Strategy | None = None

    def __post_init__(self) -> None:
        if (self.candidate is None) != (self.strategy is None):
            raise ValueError("a candidate version and its strategy go together")
        if self.strategy is not None and self.strategy.env != CANDIDATE:
            raise ValueError(f"a tier's strategy sends traffic to the {CANDIDATE!r} version")


def candidate_name(service: str) -> str:
    return f"{service}-{CANDIDATE}"


NONE = "none"


def state_json(state: TierTraffic) -> dict[str, Any] | None:
    """The state as JSON: None for one version, else the candidate and the strategy."""
    if state.candidate is None or state.strategy is None:
        return None
    return {"candidate": str(state.candidate), "strategy": to_json(state.strategy)}


def to_trailer(state: TierTraffic) -> str:
    """One line for a commit trailer (``none`` for one version)."""
    data = state_json(state)
    return NONE if data is None else json.dumps(data, sort_keys=True, separators=(",", ":"))


def from_trailer(value: str) -> TierTraffic:
    """The inverse of ``to_trailer``; ValueError saying what is wrong on anything else."""
    if value.strip() == NONE:
        return TierTraffic()
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("candidate"), str):
        raise ValueError("expected a mapping with 'candidate' and 'strategy'")
    try:
        return TierTraffic(parse_image_ref(data["candidate"]), from_json(data.get("strategy") or {}))
    except UserInputError as exc:
        raise ValueError(exc.message) from None


def summary(state: TierTraffic) -> str:
    """A few words for tables: ``canary 20% → 3f2a9c1d…``, ``one version``."""
    if state.candidate is None or state.strategy is None:
        return "one version"
    strategy = state.strategy
    to = state.candidate.short.removeprefix("sha256:")
    if isinstance(strategy, Canary):
        sticky = f" sticky {strategy.sticky_header}" if strategy.sticky_header else ""
        return f"canary {strategy.weight}%{sticky} → {to}"
    if isinstance(strategy, Mirror):
        return f"mirror {strategy.percent:g}% → {to}"
    return f"switch → {to}"


def takes_all(state: TierTraffic) -> bool:
    """The candidate serves every request without the routing header (a switch, or a canary
    at 100%): promoting it then changes nothing a request sees."""
    return isinstance(state.strategy, Switch) or (isinstance(state.strategy, Canary) and state.strategy.weight == 100)


def peek(path: Path) -> TierTraffic:
    """What the traffic file says without checking it against the render (for overviews and
    for refusing a promotion while a strategy is open); a file that does not say clearly
    reads as one version."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return TierTraffic()
    if STRATEGY_ANNOTATION not in text:
        return TierTraffic()
    try:
        docs = [d for d in YAML(typ="safe").load_all(text) if isinstance(d, dict)]
    except YAMLError:
        return TierTraffic()
    return _state_of(docs, None, "") or TierTraffic()


def render(project: Project, tier: str, service: str, state: TierTraffic = TierTraffic()) -> tuple[str, list[Any]]:
    """(header comment, documents) of the service's traffic file in ``tier`` for ``state``."""
    strategies = [state.strategy] if state.strategy is not None else []
    envs = [Environment(CANDIDATE, (service,))] if state.strategy is not None else []
    plan = plan_for_project(project, envs, strategies)
    header, docs = traffic_file(project.app, tier, service, tier_traffic(plan, service))
    if state.candidate is None or state.strategy is None:
        return header, docs
    routes = next(d for d in docs if d["kind"] == "VirtualService")
    routes["metadata"]["annotations"] = {STRATEGY_ANNOTATION: json.dumps(to_json(state.strategy),
                                                                        sort_keys=True)}
    candidate = deployment(project.app, service, project.port_of(service),
                           dict(project.services[service].env))
    candidate["metadata"]["name"] = candidate_name(service)
    selector = candidate["spec"]["selector"]["matchLabels"]
    selector[ENV_LABEL] = CANDIDATE
    candidate["spec"]["template"]["metadata"]["labels"] = {**base_labels(project.app, service), ENV_LABEL: CANDIDATE}
    candidate["spec"]["template"]["spec"]["containers"][0]["image"] = str(state.candidate)
    return header, [stamp_whole(doc) for doc in (*docs, candidate)]


def file_text(project: Project, tier: str, service: str, state: TierTraffic = TierTraffic()) -> str:
    """The traffic file's text for ``state``, as devmesh writes it."""
    header, docs = render(project, tier, service, state)
    return documents_text(docs, header)


def _load(path: Path, display: str) -> list[Any]:
    try:
        docs = [d for d in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{display}: cannot be read: {exc}") from None
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserInputError(f"{display}{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    return docs


def _state_of(docs: list[Any], service: str | None, display: str) -> TierTraffic | None:
    """The candidate and strategy the documents say (None: none); ``service`` None is for
    ``peek``, which takes the first VirtualService and never raises."""
    quiet = service is None
    routes = next((d for d in docs if d.get("kind") == "VirtualService"
                   and (quiet or (d.get("metadata") or {}).get("name") == service)), None)
    if routes is None:
        return None
    name = str((routes.get("metadata") or {}).get("name", ""))
    annotation = ((routes.get("metadata") or {}).get("annotations") or {}).get(STRATEGY_ANNOTATION)
    if annotation is None:
        return None
    try:
        strategy = from_json(json.loads(annotation))
    except (ValueError, TypeError) as exc:
        if quiet:
            return None
        raise UserInputError(f"{display}: VirtualService {name}: annotation {STRATEGY_ANNOTATION}: {exc}") from None
    candidate = next((d for d in docs if d.get("kind") == "Deployment"
                      and (d.get("metadata") or {}).get("name") == candidate_name(name)), None)
    containers = (((candidate or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers")
    if not containers:
        if quiet:
            return None
        raise UserInputError(f"{display}: a {strategy.kind} is written on the VirtualService, but there is "
                             f"no Deployment {candidate_name(name)} with the candidate's image")
    try:
        return TierTraffic(parse_image_ref(str(containers[0].get("image", ""))), strategy)
    except (UserInputError, ValueError) as exc:
        if quiet:
            return None
        raise UserInputError(f"{display}: Deployment {candidate_name(name)}: {exc}") from None


class TrafficEdited(UserInputError):
    """A field devmesh renders in a traffic file was changed by a person."""


class TrafficStale(UserInputError):
    """A traffic file is devmesh's as written, but devmesh.yaml or a preset says otherwise now."""


@dataclass(frozen=True)
class Finding:
    """One object of a traffic file that is not what devmesh renders now, and how."""

    kind: str
    name: str
    verdict: Verdict

    def error(self, display: str) -> UserInputError:
        first = self.verdict.differences[0]
        where = f"{display}: {self.kind} {self.name}: {first.field}"
        more = len(self.verdict.differences) - 1
        also = f" (and {more} more field{'s' if more > 1 else ''})" if more else ""
        if self.verdict.state == "edited":
            return TrafficEdited(
                f"{where} was edited by hand{also}: it is {show(first.found)}, devmesh.yaml and the presets "
                f"give {show(first.wanted)}",
                hint="undo the edit, or set it in devmesh.yaml (or the preset's variables) and run "
                     "'devmesh manifests sync --force'")
        return TrafficStale(
            f"{where} is {show(first.found)}{also}, but devmesh.yaml and the presets give {show(first.wanted)} now",
            hint="'devmesh manifests sync' brings every tier up to date, in one commit")


def inspect(project: Project, tier: str, service: str, path: Path, display: str) -> tuple[TierTraffic, list[Finding]]:
    """What the traffic file says the tier runs, and every object of it that is not what
    devmesh renders for that now (edited by a person, or stale); a missing or foreign object
    is refused at once."""
    docs = [d for d in _load(path, display) if isinstance(d, dict)]
    kinds = {(d.get("kind"), (d.get("metadata") or {}).get("name")): d for d in docs}
    if ("VirtualService", service) not in kinds:
        raise TrafficEdited(f"{display}: no VirtualService {service!r}: devmesh writes one per service")
    state = _state_of(docs, service, display) or TierTraffic()
    _, wanted = render(project, tier, service, state)
    ordered = {(d["kind"], d["metadata"]["name"]): d for d in wanted}
    findings = []
    for key in sorted(set(kinds) | set(ordered), key=str):
        kind, name = key
        if kind == "EnvoyFilter" and name == service + RATE_LIMIT_SUFFIX and (key in kinds) != (key in ordered):
            # a rate limit set or dropped in the presets since the file was written
            found, wanted_spec = (kinds[key].get("spec"), None) if key in kinds else (None, ordered[key]["spec"])
            findings.append(Finding(kind, name, Verdict("stale", (Difference("spec", found, wanted_spec),))))
            continue
        if key not in ordered:
            raise TrafficEdited(f"{display}: {kind} {name} is not one devmesh writes here",
                                hint="the file is devmesh's: put your own objects in files of your own")
        if key not in kinds:
            raise TrafficEdited(f"{display}: {kind} {name} is missing")
        verdict = judge_whole(kinds[key], ordered[key])
        if verdict.state != "same":
            findings.append(Finding(str(kind), str(name), verdict))
    return state, findings


def read(project: Project, tier: str, service: str, path: Path, display: str) -> TierTraffic:
    """What the traffic file at ``path`` says the tier runs; refused when it is not what devmesh
    writes for that: a hand edit of a field devmesh renders (TrafficEdited), or a file that
    devmesh.yaml or a preset has changed since (TrafficStale), naming the object and field."""
    state, findings = inspect(project, tier, service, path, display)
    edited = [f for f in findings if f.verdict.state == "edited"]
    for finding in edited or findings:
        raise finding.error(display)
    return state
