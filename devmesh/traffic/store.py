"""The traffic seen so far, bounded: the latest hops (for chains) and the window's figures."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from devmesh.traffic.chains import Chain, build_chains, unlinked_hint
from devmesh.traffic.records import Hop, RecordReader
from devmesh.traffic.stats import DEFAULT_WINDOW, VersionFigures, WindowStats

MAX_HOPS = 20_000


@dataclass(frozen=True)
class Filter:
    """Which chains to show: ``env`` (a hop served by it, or the routing header naming it),
    ``service`` (a hop it served), ``text`` (in the chain's line)."""

    env: str | None = None
    service: str | None = None
    text: str | None = None

    def keeps(self, chain: Chain) -> bool:
        if self.env is not None and self.env not in chain.envs():
            return False
        if self.service is not None and self.service not in {h.service for _, h in chain.hops}:
            return False
        return self.text is None or self.text.lower() in chain.text().lower()


class TrafficStore:
    """Hops as they come: the latest ``max_hops`` of them and the window's figures."""

    def __init__(self, reader: RecordReader, *, window: float = DEFAULT_WINDOW,
                 max_hops: int = MAX_HOPS) -> None:
        self.reader = reader
        self.stats = WindowStats(window)
        self.hops: deque[Hop] = deque(maxlen=max_hops)

    def add_line(self, line: str) -> Hop | None:
        hop = self.reader.read(line)
        if hop is not None:
            self.add(hop)
        return hop

    def add(self, hop: Hop) -> None:
        self.hops.append(hop)
        self.stats.add(hop)

    def extend(self, lines: Iterable[str]) -> int:
        added = 0
        for line in lines:
            if self.add_line(line) is not None:
                added += 1
        return added

    def chains(self, keep: Filter | None = None, *, last: int | None = None) -> list[Chain]:
        chains = build_chains(self.hops)
        if keep is not None:
            chains = [c for c in chains if keep.keeps(c)]
        return chains[-last:] if last else chains

    def figures(self, keep: Filter | None = None, *, now: float | None = None) -> list[VersionFigures]:
        """Each version's figures over the window ending ``now`` (the latest record's time by
        default), only the environment and service of ``keep``."""
        rows = self.stats.figures(now=now)
        if keep is None:
            return rows
        return [r for r in rows if (keep.env is None or r.env == keep.env)
                and (keep.service is None or r.service == keep.service)]

    def notes(self, chains: list[Chain]) -> list[str]:
        """What the reader could not read and why chains are broken, one line each."""
        out = []
        hint = unlinked_hint(chains)
        if hint:
            out.append(hint)
        r = self.reader
        if r.unparsed:
            out.append(f"{r.unparsed} line(s) of the mesh's log were not request records, "
                       f"left out (the first: {r.first_unparsed!r})")
        return out

    def to_json(self, keep: Filter | None = None, *, last: int = 0, now: float | None = None) -> dict[str, Any]:
        """The latest ``last`` chains ``keep`` keeps, the figures and the notes, as JSON."""
        chains = self.chains(keep)
        return {
            "chains": [c.to_json() for c in chains[-last:]] if last else [],
            "versions": [f.to_json() for f in self.figures(keep, now=now)],
            "records": self.reader.records,
            "unparsed": self.reader.unparsed,
            "notes": self.notes(chains),
        }
