"""A service's traffic file in a tier (``tiers/<tier>/traffic/<service>.yaml``): what it holds,
rendered from the route plan, and read back.

The file is wholly devmesh's. It holds the service's DestinationRule and VirtualService and,
while a strategy runs in the tier, the second version: a Deployment ``<service>-candidate``
whose pods run the candidate image (by digest) and carry ``devmesh.dev/env: candidate``, the
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
from devmesh.gitops.render import base_labels, deployment, traffic_file
from devmesh.plan.k8s import ENV_LABEL, tier_traffic
from devmesh.plan.routing import Environment, plan_for_project
from devmesh.plan.strategy import Strategy, from_json, to_json

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


def render(project: Project, tier: str, service: str, state: TierTraffic = TierTraffic()) -> tuple[str, list[Any]]:
    """(header comment, documents) of the service's traffic file in ``tier`` for ``state``."""
    strategies = [state.strategy] if state.strategy is not None else []
    envs = [Environment(CANDIDATE, (service,))] if state.strategy is not None else []
    plan = plan_for_project(project, envs, strategies)
    header, docs = traffic_file(project.app, tier, service, tier_traffic(plan, service))
    if state.candidate is None or state.strategy is None:
        return header, docs
    rules, routes = docs
    routes["metadata"]["annotations"] = {STRATEGY_ANNOTATION: json.dumps(to_json(state.strategy),
                                                                        sort_keys=True)}
    candidate = deployment(project.app, service, project.port_of(service),
                           dict(project.services[service].env))
    candidate["metadata"]["name"] = candidate_name(service)
    selector = candidate["spec"]["selector"]["matchLabels"]
    selector[ENV_LABEL] = CANDIDATE
    candidate["spec"]["template"]["metadata"]["labels"] = {**base_labels(project.app, service), ENV_LABEL: CANDIDATE}
    candidate["spec"]["template"]["spec"]["containers"][0]["image"] = str(state.candidate)
    return header, [rules, routes, candidate]


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


def _first_difference(found: Any, wanted: Any, path: str = "") -> str | None:
    """Where ``found`` differs from ``wanted`` (``spec.http[0].timeout``), or None."""
    if isinstance(found, dict) and isinstance(wanted, dict):
        for key in sorted(set(found) | set(wanted), key=str):
            if key not in wanted:
                return f"{path}.{key}".lstrip(".") + " (not devmesh's)"
            if key not in found:
                return f"{path}.{key}".lstrip(".") + " (removed)"
            where = _first_difference(found[key], wanted[key], f"{path}.{key}")
            if where is not None:
                return where
        return None
    if isinstance(found, list) and isinstance(wanted, list):
        if len(found) != len(wanted):
            return f"{path} ({len(found)} items, devmesh writes {len(wanted)})".lstrip(".")
        for i, (a, b) in enumerate(zip(found, wanted)):
            where = _first_difference(a, b, f"{path}[{i}]")
            if where is not None:
                return where
        return None
    return None if found == wanted else path.lstrip(".")


def read(project: Project, tier: str, service: str, path: Path, display: str) -> TierTraffic:
    """What the traffic file at ``path`` says the tier runs; refused when it is not what devmesh
    writes for that (a hand edit of a field devmesh renders), naming the object and field."""
    docs = _load(path, display)
    kinds = {(d.get("kind"), (d.get("metadata") or {}).get("name")): d for d in docs if isinstance(d, dict)}
    routes = kinds.get(("VirtualService", service))
    if routes is None:
        raise UserInputError(f"{display}: no VirtualService {service!r}: devmesh writes one per service")
    annotation = ((routes.get("metadata") or {}).get("annotations") or {}).get(STRATEGY_ANNOTATION)
    state = TierTraffic()
    if annotation is not None:
        try:
            strategy = from_json(json.loads(annotation))
        except ValueError as exc:
            raise UserInputError(f"{display}: VirtualService {service}: annotation {STRATEGY_ANNOTATION}: {exc}") from None
        candidate = kinds.get(("Deployment", candidate_name(service)))
        containers = (((candidate or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers")
        if not containers:
            raise UserInputError(f"{display}: a {strategy.kind} is written on the VirtualService, but there is "
                                 f"no Deployment {candidate_name(service)} with the candidate's image")
        try:
            image = parse_image_ref(str(containers[0].get("image", "")))
            state = TierTraffic(image, strategy)
        except (UserInputError, ValueError) as exc:
            raise UserInputError(f"{display}: Deployment {candidate_name(service)}: {exc}") from None
    _, wanted = render(project, tier, service, state)
    ordered = {(d["kind"], d["metadata"]["name"]): d for d in wanted}
    for key in sorted(set(kinds) | set(ordered), key=str):
        kind, name = key
        if key not in ordered:
            raise UserInputError(f"{display}: {kind} {name} is not one devmesh writes here",
                                 hint="the file is devmesh's: put your own objects in files of your own")
        if key not in kinds:
            raise UserInputError(f"{display}: {kind} {name} is missing")
        where = _first_difference(kinds[key], ordered[key])
        if where is not None:
            raise UserInputError(
                f"{display}: {kind} {name}: {where} was edited by hand; devmesh renders it from "
                "devmesh.yaml and the preset",
                hint="set it in devmesh.yaml (or the preset's variables), or undo the edit")
    return state
