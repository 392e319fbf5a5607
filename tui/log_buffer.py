"""The log tab's memory: a bounded buffer of lines and the filtered view over it.

Memory stays flat: the buffer keeps the newest ``limit`` lines and the view holds references
to some of those same lines, never copies. Appending is O(1); changing the filter rebuilds
the view in one pass over the buffer (about a millisecond per 10,000 lines).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from devmesh.runtime.base import LogLine

DEFAULT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Entry:
    """A line as the buffer holds it; ``seq`` orders lines across evictions."""

    seq: int
    line: LogLine


class LogBuffer:
    """The newest ``limit`` lines, and those of them the filter and service choice let through."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("the log buffer needs room for at least one line")
        self.limit = limit
        self._all: deque[Entry] = deque(maxlen=limit)
        self._view: deque[Entry] = deque(maxlen=limit)
        self._seq = 0
        self._needle = ""
        self._fold = True
        self.hidden: frozenset[str] = frozenset()
        self.received = 0  # every line ever appended, evicted or not

    # --- the filter -----------------------------------------------------------------------

    @property
    def filter_text(self) -> str:
        return self._needle

    def set_filter(self, text: str, hidden: Iterable[str] | None = None) -> None:
        """Show lines containing ``text`` (case-insensitive unless it has capitals), from
        services not in ``hidden``; rebuilds the view."""
        self._fold = text == text.lower()
        self._needle = text
        if hidden is not None:
            self.hidden = frozenset(hidden)
        self._view = deque((e for e in self._all if self._passes(e.line)), maxlen=self.limit)

    def _passes(self, line: LogLine) -> bool:
        if line.service in self.hidden:
            return False
        if not self._needle:
            return True
        text = line.text.lower() if self._fold else line.text
        return self._needle in text

    # --- lines ----------------------------------------------------------------------------

    def extend(self, lines: Iterable[LogLine]) -> tuple[int, int]:
        """Append ``lines``; returns (lines added to the view, lines dropped from its top)."""
        all_, view, passes = self._all, self._view, self._passes
        before = len(view)
        added = 0
        seq = self._seq
        for line in lines:
            seq += 1
            entry = Entry(seq, line)
            all_.append(entry)
            if passes(line):
                view.append(entry)
                added += 1
        self.received += seq - self._seq
        self._seq = seq
        dropped = before + added - len(view)  # pushed out by the view's own bound
        return added, dropped + self._trim_view()

    def _trim_view(self) -> int:
        """Drop view entries older than the buffer's oldest line."""
        if not self._all:
            return 0
        first = self._all[0].seq
        view = self._view
        dropped = 0
        while view and view[0].seq < first:
            view.popleft()
            dropped += 1
        return dropped

    def clear(self) -> None:
        self._all.clear()
        self._view.clear()

    # --- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        """Lines in the view."""
        return len(self._view)

    @property
    def total(self) -> int:
        """Lines in the buffer (shown or not)."""
        return len(self._all)

    def __getitem__(self, index: int) -> LogLine:
        return self._view[index].line

    def seq_at(self, index: int) -> int:
        return self._view[index].seq

    def window(self, start: int, count: int) -> list[LogLine]:
        """``count`` view lines from ``start`` (fewer at the end)."""
        view = self._view
        end = min(len(view), start + count)
        return [view[i].line for i in range(max(0, start), end)]
