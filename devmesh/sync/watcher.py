"""watchfiles on one service's build context, turned into change sets.

watchfiles collects file system events in its own thread all the time; ``watch`` returns them
once no new event arrived for ``step`` ms (at most ``debounce`` ms after the first), so an
editor's save or a ``git checkout`` arrives as one batch. Events that arrive while a change
set is being synced are collected meanwhile and make up the next one: a sync is never
interrupted and nothing is lost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from devmesh.sync.changes import ChangeKind, ChangeSet
from devmesh.sync.rules import ServiceSources

if TYPE_CHECKING:
    from watchfiles import Change

# Quiet time that ends a burst, and the longest a burst is collected. A save is one or a few
# events within a millisecond or two, so 10 ms of quiet ends it (watchfiles returns after one
# to two steps); what arrives while a change set is being sent makes up the next one, so a
# long checkout becomes a few change sets, not hundreds.
STEP_MS = int(os.environ.get("DEVMESH_SYNC_STEP_MS", "10"))
DEBOUNCE_MS = int(os.environ.get("DEVMESH_SYNC_DEBOUNCE_MS", "1000"))

_KINDS: dict[int, ChangeKind] = {1: "added", 2: "modified", 3: "deleted"}


def change_set(sources: ServiceSources, raw: set[tuple[Change, str]]) -> ChangeSet:
    """watchfiles' batch as a change set relative to the context (other paths dropped)."""
    changes = ChangeSet()
    for change, path in raw:
        rel = sources.relative(path)
        if rel is not None:
            changes.add(rel, _KINDS[int(change)])
    return changes


class SourceWatcher:
    """Watches a context until ``stop`` is set, calling ``handle`` with each change set."""

    def __init__(self, sources: Callable[[], ServiceSources], handle: Callable[[ChangeSet], object],
                 stop: threading.Event, *, on_error: Callable[[BaseException], None] | None = None,
                 step_ms: int = STEP_MS, debounce_ms: int = DEBOUNCE_MS) -> None:
        self.sources = sources
        self.handle = handle
        self.stop = stop
        self.on_error = on_error
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self.ready = threading.Event()

    def _keep(self, change: Change, path: str) -> bool:
        sources = self.sources()
        rel = sources.relative(path)
        return rel is not None and not sources.ignored(rel)

    def run(self) -> None:
        """Watch (blocking); an error is reported and watching starts again a second later."""
        import watchfiles

        while not self.stop.is_set():
            root: Path = self.sources().context
            try:
                watcher = watchfiles.watch(
                    root, watch_filter=self._keep, debounce=self.debounce_ms, step=self.step_ms,
                    stop_event=self.stop, rust_timeout=500, yield_on_timeout=True,
                    raise_interrupt=False, ignore_permission_denied=True)
                for raw in watcher:
                    self.ready.set()  # the first (timeout) yield: events are being recorded
                    if raw:
                        self._hand_on(raw)
                    if self.stop.is_set():
                        break
            except Exception as exc:  # a watcher that died must not end live sync silently
                if self.on_error is not None:
                    self.on_error(exc)
                self.stop.wait(1.0)

    def _hand_on(self, raw: set[tuple[Change, str]]) -> None:
        changes = change_set(self.sources(), raw)
        if not changes:
            return
        try:
            self.handle(changes)
        except Exception as exc:  # reported; the watcher keeps running
            if self.on_error is not None:
                self.on_error(exc)
