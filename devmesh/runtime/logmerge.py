"""One log follower for every runtime: the streams of many service versions, merged.

A runtime describes each version it runs as a ``LogSource`` (a container, a pod): how to read
its lines (``STAMP TEXT``, the stamp an RFC 3339 timestamp) and whether it runs. ``merge_logs``
reads every source in a thread of its own. Without ``follow`` it returns all lines sorted by
time; while following it yields lines as they come and looks for new sources every second,
until ``stop`` is set. A ``resumable`` source whose stream ended while following (a container
restarted by live sync) is read on from where it stopped once it runs again.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from devmesh.runtime.base import LogLine

# (follow, tail, since) -> raw lines, each "STAMP TEXT"; tail None means all of it, since
# (Unix seconds) only lines after it.
Reader = Callable[[bool, int | None, float | None], Iterable[str]]

SCAN_SECONDS = 1.0
QUEUE_LINES = 10_000


@dataclass(frozen=True)
class LogSource:
    """One running version of a service whose log can be read."""

    key: str  # what identifies it across scans: a container id, a pod name
    service: str
    env: str
    read: Reader
    running: bool = True
    resumable: bool = False


def stamp_seconds(stamp: str) -> float | None:
    """A log line's RFC 3339 timestamp (``2024-05-01T10:00:00.123456789Z``) in Unix seconds."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
    return seconds + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


def merge_logs(sources: Callable[[], Sequence[LogSource]], *, follow: bool, tail: int | None,
               stop: threading.Event | None = None,
               gone: tuple[type[BaseException], ...] = (Exception,)) -> Iterator[LogLine]:
    """The lines of every source ``sources()`` lists, merged (see the module's docstring).
    ``gone``: the errors that mean a source went away while it was read (its stream ends)."""
    lines: queue.Queue[LogLine] = queue.Queue(maxsize=QUEUE_LINES)
    stop = stop or threading.Event()
    seen: set[str] = set()
    resume: dict[str, float] = {}
    readers: list[threading.Thread] = []

    def read(source: LogSource, tail: int | None, since: float | None) -> None:
        last = since
        try:
            for raw in source.read(follow, tail, since):
                stamp, _, text = raw.partition(" ")
                lines.put(LogLine(source.service, source.env, text, stamp))
                last = stamp_seconds(stamp) or last
                if stop.is_set():
                    return
        except gone:
            return
        if follow and source.resumable and not stop.is_set():
            resume[source.key] = (last if last is not None else time.time()) + 1e-6
            seen.discard(source.key)

    def attach(tail: int | None) -> None:
        for source in sources():
            if source.key in seen:
                continue
            since = resume.get(source.key)
            if since is not None and not source.running:
                continue  # restarting: read on once it runs again
            seen.add(source.key)
            thread = threading.Thread(target=read, args=(source, tail if since is None else None, since),
                                      daemon=True)
            thread.start()
            readers.append(thread)

    attach(tail)
    if not follow:
        for thread in readers:
            thread.join()
        collected: list[LogLine] = []
        while not lines.empty():
            collected.append(lines.get())
        yield from sorted(collected, key=lambda line: line.at)
        return
    next_scan = time.monotonic() + SCAN_SECONDS
    while not stop.is_set():
        try:
            yield lines.get(timeout=0.2)
        except queue.Empty:
            pass
        if time.monotonic() >= next_scan:
            attach(None)  # a version that appeared while following: all of it
            next_scan = time.monotonic() + SCAN_SECONDS
