"""The Traffic tab's data: what a follower thread read, made into rows off the UI thread.

``TrafficFollower`` reads the runtime's mesh records into a TrafficStore on a thread of its own
(under a lock); ``snapshot`` builds the latest chains and the window's figures there too, so the
UI thread only shows finished rows and filters them as the user types.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from itertools import islice

from devmesh.app.traffic import MeshRecords, TrafficFeed
from devmesh.traffic.chains import build_chains
from devmesh.traffic.stats import RuleTaken, VersionFigures

SHOWN_CHAINS = 200
# The latest chains are built from the latest hops only (a request's hops are logged within
# moments of each other): ten a shown chain leaves room for long chains and fan-outs.
CHAIN_HOPS = SHOWN_CHAINS * 10
HISTORY_LINES = 2000  # of the mesh's log, read when the tab starts following


@dataclass(frozen=True)
class ChainRow:
    text: str  # "10:42:07  GET host/  web@baseline → api@feat → stock@baseline  200  12 ms"
    envs: frozenset[str]
    linked: bool


@dataclass(frozen=True)
class TrafficSnapshot:
    chains: tuple[ChainRow, ...] = ()
    figures: tuple[VersionFigures, ...] = ()
    records: int = 0
    unparsed: int = 0
    notes: tuple[str, ...] = ()
    window: float = 60.0
    # (gateway or service, rule) → the requests it routed over the window
    rules: dict[tuple[str, str], RuleTaken] = field(default_factory=dict)

    def shown(self, text: str) -> list[ChainRow]:
        """The chains whose line or environments hold ``text`` (case-insensitive)."""
        needle = text.strip().lower()
        if not needle:
            return list(self.chains)
        return [c for c in self.chains if needle in c.text.lower() or needle in c.envs]


@dataclass
class TrafficFollower:
    rt: MeshRecords
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.feed = TrafficFeed(self.rt)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, name="traffic-tab", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _pump(self) -> None:
        try:
            for line in self.rt.mesh_log(follow=True, tail=HISTORY_LINES, stop=self.stop):
                with self._lock:
                    self.feed.store.add_line(line)
        except Exception as exc:  # the tab shows it
            self.error = exc

    def snapshot(self) -> TrafficSnapshot:
        store = self.feed.store
        now = time.time()
        with self._lock:
            hops = list(islice(reversed(store.hops), CHAIN_HOPS))[::-1]
            figures = store.stats.figures(now=now)
            rules = store.stats.rules(now=now)
            records, unparsed = store.reader.records, store.reader.unparsed
        # the oldest of these chains may have lost hops to the cut: only the latest are shown
        chains = build_chains(hops)[-SHOWN_CHAINS:]
        # to the second: the tab is narrower than a terminal's CLI output
        rows = tuple(ChainRow(c.line(millis=False), frozenset(c.envs()), c.linked) for c in reversed(chains))
        return TrafficSnapshot(rows, tuple(figures), records, unparsed, tuple(store.notes(chains)),
                               store.stats.window, rules)

