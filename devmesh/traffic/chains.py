"""Hops grouped by request id into chains: which version served each hop, who called it.

A hop's parent is the latest earlier hop of the same request that the hop's caller served (web
called api while it answered the gateway's request). A chain whose first hop came from inside
the mesh, not through the gateway, is *unlinked*: the service that called it did not copy
``x-request-id`` onto its call, so the mesh gave the call an id of its own.

A mirror copy is sent by the proxy itself, so its record names no caller: it is taken to be the
caller of the call it copies (the same request to another version of the same service).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from devmesh.traffic.records import OUTSIDE, REQUEST_ID_HEADER, Hop


@dataclass
class Node:
    hop: Hop
    children: list[Node] = field(default_factory=list)

    def label(self) -> str:
        text = self.hop.served_by
        if self.hop.mirror:
            text += " (mirror)"
        if self.hop.limited:
            text += " (limited)"
        elif self.hop.failed or self.hop.status >= 400:
            text += f" ({self.hop.status})"
        return text

    def path_text(self) -> str:
        text = self.label()
        if len(self.children) == 1:
            return f"{text} → {self.children[0].path_text()}"
        if self.children:
            return f"{text} → [" + ", ".join(c.path_text() for c in self.children) + "]"
        return text

    def walk(self, depth: int = 0) -> Iterable[tuple[int, Hop]]:
        yield depth, self.hop
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass
class Chain:
    """One request through the mesh (one root hop and what it called)."""

    request_id: str | None
    root: Node

    @property
    def linked(self) -> bool:
        """It came in from outside the mesh (through the gateway, or from the host)."""
        return self.root.hop.caller == OUTSIDE

    @property
    def hops(self) -> list[tuple[int, Hop]]:
        return list(self.root.walk())

    def text(self) -> str:
        hop = self.root.hop
        line = f"{self.root.path_text()}  {hop.status or '-'}  {hop.ms} ms"
        if not self.linked:
            line = f"{hop.caller} ⇢ {line}"
        return line

    def line(self, *, millis: bool = True) -> str:
        """The request on one line: when it started (local time, to the millisecond unless
        not ``millis``), method, host and path, then ``text()``."""
        hop = self.root.hop
        stamp = time.strftime("%H:%M:%S", time.localtime(hop.time))
        if millis:
            stamp += f".{int(hop.time * 1000) % 1000:03d}"
        return f"{stamp}  {hop.method} {hop.authority}{hop.path}  {self.text()}"

    def envs(self) -> set[str]:
        return {h.env for _, h in self.hops if h.env} | {h.route_header for _, h in self.hops if h.route_header}

    def to_json(self) -> dict[str, Any]:
        hop = self.root.hop
        return {
            "request_id": self.request_id, "linked": self.linked, "time": hop.time,
            "method": hop.method, "path": hop.path, "authority": hop.authority,
            "status": hop.status, "ms": hop.ms, "path_text": self.root.path_text(),
            "hops": [dict(h.to_json(), depth=depth) for depth, h in self.hops],
        }


def build_chains(hops: Iterable[Hop]) -> list[Chain]:
    """Every chain of ``hops``, ordered by when their first hop started."""
    by_id: dict[str | None, list[Hop]] = {}
    chains: list[Chain] = []
    for hop in hops:
        if hop.request_id is None:
            chains.append(Chain(None, Node(hop)))  # nothing links it to anything
        else:
            by_id.setdefault(hop.request_id, []).append(hop)
    for request_id, group in by_id.items():
        chains += [Chain(request_id, root) for root in _trees(group)]
    chains.sort(key=lambda c: c.root.hop.time)
    return chains


def _with_copied_callers(group: Sequence[Hop]) -> Sequence[Hop]:
    if not any(h.mirror for h in group):
        return group  # most requests: nothing to do
    originals = [h for h in group if not h.mirror]
    out = []
    for hop in group:
        if hop.mirror and "@" not in hop.caller:
            copied = [o for o in originals
                      if (o.service, o.method, o.path) == (hop.service, hop.method, hop.path)]
            if copied:
                hop = replace(hop, caller=min(copied, key=lambda o: abs(o.time - hop.time)).caller)
        out.append(hop)
    return out


def _trees(group: Sequence[Hop]) -> list[Node]:
    group = _with_copied_callers(group)
    # Parents start before their children. A proxy logs a hop when it is answered, so a child's
    # line comes before its parent's: within one millisecond, the later line goes first.
    order = sorted(range(len(group)), key=lambda i: (group[i].time, -i))
    nodes = [Node(group[i]) for i in order]
    latest: dict[str, Node] = {}  # each version's latest hop so far
    roots: list[Node] = []
    for node in nodes:
        parent = latest.get(node.hop.caller) if node.hop.caller != OUTSIDE else None
        if parent is not None:
            parent.children.append(node)
        else:
            roots.append(node)
        latest[node.hop.served_by] = node
    for node in nodes:  # a call before its mirror copy
        node.children.sort(key=lambda n: (n.hop.time, n.hop.mirror))
    return roots


def unlinked_hint(chains: Sequence[Chain]) -> str | None:
    """One hint naming the services whose calls carry no request id, if any."""
    callers = sorted({c.root.hop.caller for c in chains if not c.linked and "@" in c.root.hop.caller})
    if not callers:
        return None
    services = sorted({c.split("@", 1)[0] for c in callers})
    return (f"{', '.join(services)} {'does' if len(services) == 1 else 'do'} not pass "
            f"{REQUEST_ID_HEADER} on to {'its' if len(services) == 1 else 'their'} calls, so those "
            f"calls show as chains of their own (⇢): copy {REQUEST_ID_HEADER} from the request "
            "being answered onto each outbound request, as for the routing header")
