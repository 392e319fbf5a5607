"""The parts of a RoutePlan's rules: where a request goes (backends, weights, a mirror) when
what it carries (a Match) holds. Pure; shared by the plan (devmesh.plan.routing) and the
release strategies (devmesh.plan.strategy)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from devmesh.plan.buckets import describe_bucket_regex


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
    """All given conditions must hold. Header values match exactly; host ignores any port.

    ``header_regex``: the header is present and its whole value matches the pattern (RE2
    syntax, kept to the part Python's ``re`` reads the same way: classes, ``.``, ``*``, ``?``,
    ``|``, groups); ``without_headers``: the header is absent; ``methods``: the request's
    method is one of these (upper case).
    """

    headers: tuple[tuple[str, str], ...] = ()
    host: str | None = None
    header_regex: tuple[tuple[str, str], ...] = ()
    without_headers: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()

    def holds(self, host: str | None, headers: Mapping[str, str], method: str = "GET") -> bool:
        lowered = {k.lower(): v for k, v in headers.items()}
        if self.host is not None and (host or "").split(":", 1)[0].lower() != self.host:
            return False
        if self.methods and method.upper() not in self.methods:
            return False
        if any(name.lower() in lowered for name in self.without_headers):
            return False
        for name, pattern in self.header_regex:
            value = lowered.get(name.lower())
            if value is None or _compiled(pattern).fullmatch(value) is None:
                return False
        return all(lowered.get(name) == value for name, value in self.headers)

    def describe(self) -> str:
        parts = [f"host {self.host}"] if self.host else []
        if self.methods:
            parts.append("method " + " or ".join(self.methods))
        parts += [f"{name}: {value}" for name, value in self.headers]
        parts += [_describe_regex(name, pattern) for name, pattern in self.header_regex]
        parts += [f"no {name} header" for name in self.without_headers]
        return " and ".join(parts) or "any request"


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _describe_regex(name: str, pattern: str) -> str:
    return describe_bucket_regex(name, pattern) or f"{name} matches /{pattern}/"


@dataclass(frozen=True)
class Mirror:
    """Copies of matching requests go to ``backend`` too; its answers are dropped."""

    backend: Backend
    percent: float = 100.0


@dataclass(frozen=True)
class Rule:
    name: str
    match: Match
    to: tuple[Weighted, ...]
    why: str
    set_headers: tuple[tuple[str, str], ...] = ()
    mirror: Mirror | None = None
