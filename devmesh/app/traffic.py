"""What traffic did on a runtime: its mesh's request records read into a TrafficStore.

The runtime hands in its mesh's access log lines, who runs at which address and what its
upstream clusters stand for; a caller's address not known yet (a version started after the
feed did) makes the feed ask the runtime again, at most once a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from devmesh.traffic.records import Hop, RecordReader
from devmesh.traffic.stats import DEFAULT_WINDOW
from devmesh.traffic.store import MAX_HOPS, TrafficStore

REFRESH_SECONDS = 1.0


class MeshRecords(Protocol):
    """What a runtime offers for reading its traffic."""

    app: str

    def mesh_log(self, *, follow: bool, tail: int | None = None,
                 stop: threading.Event | None = None) -> Iterator[str]: ...

    def mesh_callers(self) -> dict[str, str]: ...

    def upstream_of(self, cluster: str) -> tuple[str, str] | None: ...


class TrafficFeed:
    """A runtime's traffic, read into ``store``."""

    def __init__(self, rt: MeshRecords, *, window: float = DEFAULT_WINDOW, max_hops: int = MAX_HOPS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rt = rt
        self._clock = clock
        self._callers = rt.mesh_callers()
        self._asked = clock()
        self.store = TrafficStore(RecordReader(rt.upstream_of, self._caller_of, app=rt.app), window=window,
                                  max_hops=max_hops)

    def _caller_of(self, address: str) -> str | None:
        found = self._callers.get(address)
        if found is None and self._clock() - self._asked >= REFRESH_SECONDS:
            self._callers = self.rt.mesh_callers()
            self._asked = self._clock()
            found = self._callers.get(address)
        return found

    def read(self, *, tail: int | None = None) -> TrafficStore:
        """What the mesh's log holds now (its last ``tail`` lines)."""
        self.store.extend(self.rt.mesh_log(follow=False, tail=tail))
        return self.store

    def follow(self, *, tail: int | None = 0, stop: threading.Event | None = None) -> Iterator[Hop]:
        """Each hop as the mesh logs it, until ``stop`` is set."""
        for line in self.rt.mesh_log(follow=True, tail=tail, stop=stop):
            hop = self.store.add_line(line)
            if hop is not None:
                yield hop
