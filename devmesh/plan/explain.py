"""Which rule a request meets at each hop of a RoutePlan, and where it goes. Pure.

``parse_request`` reads a request written as on a command line —
``GET /path -H 'x-user-id: 42'`` — with ``shlex`` (no shell is involved), and ``explain``
evaluates it against the gateway's rules and against every service's rules with
``first_match``: the same rules, in the same order, that Istio and Envoy are given.

A request that came in through the gateway reaches the services with what the gateway's rule
added (a preview host adds the routing header); apps forward the routing header on their own
calls, so every service sees it. Other headers reach a service only if the apps forward them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from devmesh.plan.routing import RoutePlan, Rule, first_match

_METHOD = re.compile(r"[A-Z]+")
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
USAGE = "[METHOD] PATH-OR-URL [-H 'Name: value']… [-X METHOD]"


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/"
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def header_map(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers}

    def describe(self) -> str:
        extra = "".join(f" -H '{n}: {v}'" for n, v in self.headers)
        return f"{self.method} {self.path}" + (f" (host {self.host})" if self.host else "") + extra


def parse_request(text: str) -> Request:
    """``GET /cart -H 'x-user-id: 42'`` → Request; ValueError saying what is wrong."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split {text!r} into words: {exc}") from None
    method: str | None = None
    target: str | None = None
    headers: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word in ("-H", "--header", "-X", "--request"):
            if i + 1 == len(words):
                raise ValueError(f"{word} needs a value")
            value = words[i + 1]
            i += 2
            if word in ("-X", "--request"):
                if not _METHOD.fullmatch(value.upper()):
                    raise ValueError(f"not an HTTP method: {value!r}")
                method = value.upper()
            else:
                name, sep, val = value.partition(":")
                if not sep or not _HEADER_NAME.fullmatch(name.strip()):
                    raise ValueError(f"expected a header as 'Name: value', got {value!r}")
                headers.append((name.strip().lower(), val.strip()))
            continue
        if word.startswith("-"):
            raise ValueError(f"unknown option {word!r}; expected {USAGE}")
        if target is None and method is None and _METHOD.fullmatch(word):
            method = word
        elif target is None and (word.startswith("/") or "://" in word):
            target = word
        else:
            raise ValueError(f"unexpected {word!r}; expected {USAGE}")
        i += 1
    if target is None:
        target = "/"
    host = next((v for n, v in headers if n == "host"), None)
    headers = [(n, v) for n, v in headers if n != "host"]
    if "://" in target:
        parts = urlsplit(target)
        host = host or parts.netloc or None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Request(method or "GET", target, host, tuple(headers))


@dataclass(frozen=True)
class Hop:
    """Where a request goes at one place: the gateway, or a call to one service."""

    at: str
    rule: Rule
    headers: dict[str, str] = field(default_factory=dict)

    def destinations(self) -> list[dict[str, Any]]:
        live = [w for w in self.rule.to if w.weight > 0] if len(self.rule.to) > 1 else list(self.rule.to)
        total = sum(w.weight for w in live) or 1
        return [{"service": w.backend.service, "env": w.backend.env,
                 "upstream": f"{w.backend.service}.{w.backend.env}",
                 "percent": round(100 * w.weight / total, 2) if len(live) > 1 else 100.0}
                for w in live]

    def describe_destination(self) -> str:
        dests = self.destinations()
        text = " / ".join(d["upstream"] + (f" {d['percent']:g}%" if len(dests) > 1 else "")
                          for d in dests)
        mirror = self.rule.mirror
        if mirror is not None:
            text += (f" (a copy of {mirror.percent:g}% of these to "
                     f"{mirror.backend.service}.{mirror.backend.env})")
        return text

    def to_json(self) -> dict[str, Any]:
        mirror = self.rule.mirror
        return {
            "at": self.at,
            "rule": self.rule.name,
            "match": self.rule.match.describe(),
            "why": self.rule.why,
            "to": self.destinations(),
            "mirror": None if mirror is None else {
                "upstream": f"{mirror.backend.service}.{mirror.backend.env}",
                "percent": mirror.percent},
        }


def explain(plan: RoutePlan, request: Request) -> list[Hop]:
    """The gateway's decision for ``request``, then each service's, as if the request (with
    what the gateway added) reached that service."""
    headers = request.header_map()
    host = request.host or plan.preview_host("baseline")
    gateway_rule = first_match(plan.gateway, host, headers, request.method)
    hops = [Hop("gateway", gateway_rule, dict(headers))]
    inside = {**headers, **{k.lower(): v for k, v in gateway_rule.set_headers}}
    for routes in plan.services:
        # Inside the mesh a call's host is the service's name: no rule there names a host.
        rule = first_match(routes.rules, routes.service, inside, request.method)
        hops.append(Hop(routes.service, rule, dict(inside)))
    return hops
