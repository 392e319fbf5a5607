"""Log lines handed from the stream's thread to the UI in batches.

The stream thread puts lines as fast as the runtime yields them; the UI is woken once per
batch (one message while a wake-up is pending), and takes everything that arrived meanwhile.
Under a flood the batches grow instead of the message queue; the inbox is bounded like the
buffer, so lines the buffer would evict anyway are dropped here already.
"""

from __future__ import annotations

import threading
from collections import deque

from devmesh.runtime.base import LogLine
from tui.log_buffer import DEFAULT_LIMIT


class LineInbox:
    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._lines: deque[LogLine] = deque(maxlen=limit)
        self._limit = limit
        self._lock = threading.Lock()
        self._wake_pending = False
        self.dropped = 0  # lines pushed out before the UI took them (the buffer would evict them)

    def put(self, line: LogLine) -> bool:
        """Add a line; True when the caller should wake the UI (no wake-up is pending)."""
        with self._lock:
            if len(self._lines) == self._limit:
                self.dropped += 1
            self._lines.append(line)
            if self._wake_pending:
                return False
            self._wake_pending = True
            return True

    def take(self) -> list[LogLine]:
        """Everything that arrived since the last take, oldest first."""
        with self._lock:
            lines = list(self._lines)
            self._lines = deque(maxlen=self._limit)
            self._wake_pending = False
            return lines
