"""Release strategies for a branch's version of a service, as RoutePlan rules. Pure.

A strategy takes part of a service's *baseline traffic* — requests without the routing header —
and gives it to one environment's version of the service:

``Canary``
    ``weight`` % of that traffic, at random; with ``sticky_header`` the value of that header
    decides instead (see *Sticky buckets*), so the same user keeps the same version.
``Mirror``
    copies of ``percent`` % of its GET and HEAD requests; answers still come from the baseline
    and the copies' answers are dropped. Writes are never copied: a copied POST would write
    twice.
``Switch``
    all of it (red/black): the branch's version serves, the baseline keeps running, and
    removing the strategy restores it at once.

Requests that carry the routing header are never touched: a preview keeps seeing its own
versions and the baseline. A service has at most one strategy. The rules replace nothing: they
sit between the header rules and the baseline rule, so ``routes --explain`` shows them in the
order both runtimes evaluate them.

Which requests a sticky canary takes is decided by buckets of the header's value: see
devmesh.plan.buckets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from devmesh.naming import BASELINE_ENV
from devmesh.plan.buckets import (
    BUCKETS,
    DIGIT_ORDER,
    bucket_of,
    bucket_regex,
    char_digit,
    describe_bucket_regex,
)
from devmesh.plan.rules import Backend, Match, Rule, Weighted
from devmesh.plan.rules import Mirror as MirrorPolicy

__all__ = [
    "BUCKETS", "DIGIT_ORDER", "KINDS", "MIRROR_METHODS", "Canary", "Mirror", "Strategy", "Switch",
    "bucket_of", "bucket_regex", "char_digit", "describe", "describe_bucket_regex", "from_json",
    "sticky_notes", "strategy_rules", "to_json", "with_strategy",
]

KINDS = ("canary", "mirror", "switch")
MIRROR_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class Canary:
    """``weight`` % of the service's baseline traffic to ``env``'s version."""

    service: str
    env: str
    weight: int
    sticky_header: str | None = None
    steps: tuple[int, ...] = ()  # from the preset, for ``canary --next``
    preset: str | None = None
    # What automated analysis (``canary --auto``) says of it, one line: where it is, or why it
    # was aborted or stopped, with the figures. None: moved by hand.
    status: str | None = None

    kind = "canary"

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 100:
            raise ValueError(f"canary weight must be 0–100, got {self.weight}")


@dataclass(frozen=True)
class Mirror:
    """Copies of ``percent`` % of the service's baseline GET and HEAD requests to ``env``."""

    service: str
    env: str
    percent: float = 100.0
    preset: str | None = None

    kind = "mirror"

    def __post_init__(self) -> None:
        if not 0 < self.percent <= 100:
            raise ValueError(f"mirror percentage must be above 0 and at most 100, got {self.percent}")


@dataclass(frozen=True)
class Switch:
    """All of the service's baseline traffic to ``env``'s version (red/black)."""

    service: str
    env: str
    preset: str | None = None

    kind = "switch"


Strategy = Canary | Mirror | Switch


def describe(strategy: Strategy, header: str) -> str:
    """One line for people: what the strategy does."""
    who = f"{strategy.env}'s version of {strategy.service}"
    if isinstance(strategy, Canary):
        sticky = (f", sticky by {strategy.sticky_header} (buckets 0–{strategy.weight - 1} of "
                  f"{BUCKETS})" if strategy.sticky_header and strategy.weight else "")
        status = f" — {strategy.status}" if strategy.status else ""
        return f"canary: {strategy.weight}% of requests without {header} go to {who}{sticky}{status}"
    if isinstance(strategy, Mirror):
        return (f"mirror: copies of {_percent(strategy.percent)}% of GET and HEAD requests without "
                f"{header} go to {who}; answers come from the baseline")
    return f"switch: every request without {header} goes to {who}; the baseline stands by"


def to_json(strategy: Strategy) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": strategy.kind, "service": strategy.service, "env": strategy.env}
    if isinstance(strategy, Canary):
        out |= {"weight": strategy.weight, "sticky_header": strategy.sticky_header,
                "steps": list(strategy.steps)}
        if strategy.status is not None:
            out["status"] = strategy.status
    elif isinstance(strategy, Mirror):
        out["percent"] = strategy.percent
    out["preset"] = strategy.preset
    return out


def from_json(data: Mapping[str, Any]) -> Strategy:
    """The inverse of ``to_json``; ValueError (saying what is wrong) on anything else."""
    if not isinstance(data, Mapping):
        raise ValueError("expected a mapping")
    kind = data.get("kind")
    service, env, preset = data.get("service"), data.get("env"), data.get("preset")
    if not isinstance(service, str) or not isinstance(env, str) or not service or not env:
        raise ValueError("'service' and 'env' must be non-empty strings")
    if preset is not None and not isinstance(preset, str):
        raise ValueError("'preset' must be a string")
    if kind == "canary":
        weight, sticky, steps = data.get("weight"), data.get("sticky_header"), data.get("steps", [])
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ValueError("'weight' must be an integer")
        if sticky is not None and not isinstance(sticky, str):
            raise ValueError("'sticky_header' must be a string")
        if not isinstance(steps, list) or not all(isinstance(s, int) for s in steps):
            raise ValueError("'steps' must be a list of integers")
        status = data.get("status")
        if status is not None and not isinstance(status, str):
            raise ValueError("'status' must be a string")
        return Canary(service, env, weight, sticky or None, tuple(steps), preset, status)
    if kind == "mirror":
        percent = data.get("percent", 100.0)
        if isinstance(percent, bool) or not isinstance(percent, (int, float)):
            raise ValueError("'percent' must be a number")
        return Mirror(service, env, float(percent), preset)
    if kind == "switch":
        return Switch(service, env, preset)
    raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def _percent(value: float) -> str:
    return f"{value:g}"


# --------------------------------------------------------------------------- rules


def strategy_rules(strategy: Strategy, header: str, prefix: str) -> tuple[Rule, ...]:
    """The rules a strategy puts just before the baseline rule. ``prefix`` starts each rule's
    name (``api-`` in the mesh; empty at the gateway, whose rules have short names)."""
    base = Backend(strategy.service, BASELINE_ENV)
    fork = Backend(strategy.service, strategy.env)
    untagged = Match(without_headers=(header,))
    who = f"{strategy.env}'s version"
    if isinstance(strategy, Switch):
        return (Rule(f"{prefix}switch", untagged, (Weighted(fork),),
                     f"switch: no {header}, so {who} serves (the baseline stands by)"),)
    if isinstance(strategy, Mirror):
        return (Rule(f"{prefix}mirror", replace(untagged, methods=MIRROR_METHODS),
                     (Weighted(base),),
                     f"mirror: GET or HEAD without {header}: the baseline answers; a copy of "
                     f"{_percent(strategy.percent)}% of them goes to {who}",
                     mirror=MirrorPolicy(fork, strategy.percent)),)
    rules = []
    w = strategy.weight
    sticky = strategy.sticky_header
    if sticky:
        if w:
            rules.append(Rule(
                f"{prefix}canary-sticky",
                replace(untagged, header_regex=((sticky, bucket_regex(w)),)), (Weighted(fork),),
                f"sticky canary: {sticky}'s value is in buckets 0–{w - 1} of {BUCKETS}: {who}"))
        if w < BUCKETS:
            rules.append(Rule(
                f"{prefix}canary-sticky-rest",
                replace(untagged, header_regex=((sticky, ".*"),)), (Weighted(base),),
                f"sticky canary: {sticky}'s value is in buckets {w}–{BUCKETS - 1}: the baseline"))
    split = (Weighted(base, 100 - w), Weighted(fork, w))
    rules.append(Rule(f"{prefix}canary", untagged, split,
                      f"canary: no {header}" + (f" and no {sticky}" if sticky else "")
                      + f": {100 - w}% baseline, {w}% {who}"))
    return tuple(rules)


def with_strategy(rules: Sequence[Rule], strategy: Strategy, header: str,
                  prefix: str) -> tuple[Rule, ...]:
    """``rules`` (ending with the catch-all baseline rule) with the strategy's rules before it."""
    if not rules or rules[-1].match != Match():
        raise ValueError("a rule list must end with its catch-all rule")
    return (*rules[:-1], *strategy_rules(strategy, header, prefix), rules[-1])


def sticky_notes(strategies: Sequence[Strategy], headers: Mapping[str, str]) -> list[str]:
    """For ``routes --explain``: the bucket of each sticky header value the request carries."""
    lowered = {k.lower(): v for k, v in headers.items()}
    notes = []
    for s in strategies:
        if isinstance(s, Canary) and s.sticky_header and s.sticky_header in lowered:
            value = lowered[s.sticky_header]
            bucket = bucket_of(value)
            side = f"{s.env}'s version" if bucket < s.weight else "the baseline"
            notes.append(f"{s.sticky_header}: {value} is in sticky bucket {bucket}; {s.service}'s "
                         f"canary takes buckets 0–{s.weight - 1}: {side}")
    return notes
