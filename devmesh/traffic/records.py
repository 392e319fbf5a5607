"""One JSON line per hop: the access log format devmesh gives every proxy, and its reader.

A proxy writes a line when it has answered a request (or, for a mirror copy, when the copy's
answer came back): when it started, the request id (``x-request-id``: the gateway makes one when
a request has none; an app must copy it onto its outbound calls, like the routing header, or
each of its calls starts a chain of its own), the routing header's value, method, path, host,
the downstream address (who called), the rule that matched, the upstream cluster (which version
served it), status, flags, duration and how many upstream attempts it took (retries + 1).

The reader never fails on a line: Envoy's own messages are counted as such, anything else that
is not a record as unparsed, with the first one kept to show.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Bumped when the fields change, so a reader can tell an older proxy's lines.
FORMAT = 1

# Envoy's own lines ("[2026-12-03 10:00:00.000][1][warning] …") and those of Istio's agent
# beside it in a sidecar ("2026-12-03T10:00:00.000000Z\tinfo\t…", "2026/12/03 10:00:00 INFO …").
_ENVOY_MESSAGE = re.compile(r"\[?\d{4}[-/]\d\d[-/]\d\d[ T]\d\d:\d\d")

OUTSIDE = "outside"  # the caller of a request that came in through the gateway
GATEWAY = "gateway"  # the gateway listener's name in records
REQUEST_ID_HEADER = "x-request-id"
# Set by the mesh's rate limit on the answers it gives itself: a caller's proxy (Istio limits
# on the serving side) tells them from a version's own 429.
RATE_LIMITED_HEADER = "x-devmesh-rate-limited"

# A version that served a hop: (service, env), from an upstream cluster name.
UpstreamOf = Callable[[str], "tuple[str, str] | None"]


def access_log_fields(header: str, listener: str, *, kind: str = "request") -> dict[str, Any]:
    """The access log's JSON fields (Envoy command operators) for one listener.

    ``header``: the routing header; ``listener``: what the record says received it
    (:data:`GATEWAY`, or ``mesh:<port>``); ``kind``: ``request`` for the listener's own log,
    ``mirror`` for the router's log of mirror copies.
    """
    return {
        "devmesh": FORMAT,
        "kind": kind,
        "listener": listener,
        "time": "%START_TIME(%s.%3f)%",
        "id": f"%REQ({REQUEST_ID_HEADER.upper()})%",
        "route_header": f"%REQ({header.upper()})%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "authority": "%REQ(:AUTHORITY)%",
        "peer": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
        "rule": "%ROUTE_NAME%",
        "upstream": "%UPSTREAM_CLUSTER%",
        "status": "%RESPONSE_CODE%",
        "flags": "%RESPONSE_FLAGS%",
        "ms": "%DURATION%",
        "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
        "limited": f"%RESP({RATE_LIMITED_HEADER.upper()})%",
    }


_T_STDOUT_LOG = "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
# Envoy sends a mirror copy with a client of its own, outside any route: in the router's log of
# upstream requests the copies are the ones without a route name (devmesh names every route).
# Their host cannot tell: Envoy suffixes it with "-shadow", but Istio turns that off.
_MIRROR_COPIES = {"extension_filter": {
    "name": "envoy.access_loggers.extension_filters.cel",
    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
                     "expression": "xds.route_name == ''"}}}


def envoy_access_log(listener: str, header: str, *, kind: str = "request",
                     extra: dict[str, str] | None = None, authority: str | None = None) -> list[dict[str, Any]]:
    """Envoy's access log config for one listener: one JSON line per request on stdout.
    ``kind="mirror"``: the router's log of its upstream requests, filtered to the mirror copies,
    so a copy is a record too (see :data:`_MIRROR_COPIES`). ``extra``: fields
    on top (constants: which app's log this is, on a proxy that several apps share);
    ``authority``: only requests to hosts this (RE2) regex matches whole."""
    fields = access_log_fields(header, listener, kind=kind) | (extra or {})
    log: dict[str, Any] = {
        "name": "envoy.access_loggers.stdout",
        "typed_config": {"@type": _T_STDOUT_LOG, "log_format": {"json_format": fields}},
    }
    if kind == "mirror":
        log["filter"] = _MIRROR_COPIES
    elif authority is not None:
        log["filter"] = {"header_filter": {"header": {
            "name": ":authority", "string_match": {"safe_regex": {"regex": authority}}}}}
    return [log]


@dataclass(frozen=True, slots=True)
class Hop:
    """One request one proxy routed: who called, which version served it, how it went."""

    time: float  # when the proxy received it, Unix seconds
    request_id: str | None
    route_header: str | None  # the routing header's value, if the request had one
    method: str
    path: str
    authority: str
    caller: str  # "service@env", OUTSIDE, or the address when nothing runs there
    service: str | None  # the version that served it; None when no upstream did (a 404 rule)
    env: str | None
    status: int  # 0: no answer (the caller went away, or no upstream answered)
    ms: int
    retries: int
    mirror: bool
    rule: str | None
    flags: str
    listener: str
    rate_limited: bool = False  # the answer carries the mesh's rate limit header

    @property
    def served_by(self) -> str:
        return f"{self.service}@{self.env}" if self.service else "-"

    @property
    def limited(self) -> bool:
        """Refused by a rate limit (not the app's answer)."""
        return self.status == 429 and (self.rate_limited or "RL" in self.flags.split(","))

    @property
    def failed(self) -> bool:
        """An error of the version that served it: 5xx or no answer at all."""
        return self.status >= 500 or self.status == 0

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "request_id": self.request_id, "route_header": self.route_header,
                "method": self.method, "path": self.path, "authority": self.authority,
                "caller": self.caller, "service": self.service, "env": self.env,
                "status": self.status, "ms": self.ms, "retries": self.retries,
                "mirror": self.mirror, "rule": self.rule, "flags": self.flags,
                "listener": self.listener, "limited": self.limited}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value not in ("", "-") else None


def _number(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


@dataclass
class RecordReader:
    """Reads access log lines into hops; never raises on a line.

    ``upstream_of`` names the version an upstream cluster stands for (None: not a service's
    version); ``caller_of`` the version running at a downstream address (None: nothing known
    runs there). Lines from an older format, Envoy's own messages and everything else are
    counted, not fatal.
    """

    upstream_of: UpstreamOf
    caller_of: Callable[[str], str | None] = lambda address: None
    app: str | None = None  # records another app's proxy config wrote (a shared gateway) are left out
    records: int = 0
    messages: int = 0  # Envoy's own log lines ("[2026-…][warning] …")
    others: int = 0  # records of other apps
    unparsed: int = 0
    first_unparsed: str | None = None
    unknown_callers: set[str] = field(default_factory=set)

    def read(self, line: str) -> Hop | None:
        text = line.strip()
        if not text:
            return None
        if not text.startswith("{"):
            if _ENVOY_MESSAGE.match(text):
                self.messages += 1
            else:
                self._unparsed(text)
            return None
        try:
            doc = json.loads(text)
        except ValueError:
            self._unparsed(text)
            return None
        if not isinstance(doc, dict) or doc.get("devmesh") != FORMAT:
            self._unparsed(text)
            return None
        if self.app is not None and doc.get("app", self.app) != self.app:
            self.others += 1
            return None
        hop = self._hop(doc)
        if hop is None:
            self._unparsed(text)
            return None
        self.records += 1
        return hop

    def _unparsed(self, text: str) -> None:
        self.unparsed += 1
        if self.first_unparsed is None:
            self.first_unparsed = text[:200]

    def _hop(self, doc: dict[str, Any]) -> Hop | None:
        try:
            started = float(doc["time"])
        except (KeyError, TypeError, ValueError):
            return None
        upstream = _text(doc.get("upstream"))
        version = self.upstream_of(upstream) if upstream else None
        listener = _text(doc.get("listener")) or "-"
        peer = _text(doc.get("peer")) or "-"
        if listener == GATEWAY:
            caller = OUTSIDE
        else:
            known = self.caller_of(peer)
            if known is None:
                self.unknown_callers.add(peer)
            caller = known or peer
        attempts = _number(doc.get("attempts"))
        return Hop(
            time=started,
            request_id=_text(doc.get("id")),
            route_header=_text(doc.get("route_header")),
            method=_text(doc.get("method")) or "-",
            path=_text(doc.get("path")) or "-",
            authority=_text(doc.get("authority")) or "-",
            caller=caller,
            service=version[0] if version else None,
            env=version[1] if version else None,
            status=_number(doc.get("status")),
            ms=_number(doc.get("ms")),
            retries=max(attempts - 1, 0),
            mirror=doc.get("kind") == "mirror",
            rule=_text(doc.get("rule")),
            flags=_text(doc.get("flags")) or "-",
            listener=listener,
            rate_limited=_text(doc.get("limited")) is not None,
        )


def istio_upstream(namespace: str) -> UpstreamOf:
    """The version an Istio outbound cluster stands for (``outbound|8000|feat|api.<namespace>.svc.cluster.local``:
    api@feat), for services of ``namespace`` only; a cluster without a subset is no version."""
    def upstream_of(cluster: str) -> tuple[str, str] | None:
        parts = cluster.split("|")
        if len(parts) != 4 or parts[0] != "outbound" or not parts[2]:
            return None
        service, _, rest = parts[3].partition(".")
        if not service or rest.partition(".")[0] != namespace:
            return None
        return service, parts[2]

    return upstream_of


def dotted_upstream(cluster: str) -> tuple[str, str] | None:
    """``<service>.<env>``, the docker runtime's cluster names (service and env names hold no dot)."""
    service, dot, env = cluster.partition(".")
    return (service, env) if dot and service and env and "." not in env else None
