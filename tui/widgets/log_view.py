"""The merged log: renders only the lines on screen, straight from the bounded buffer."""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from devmesh.runtime.base import LogLine
from tui.log_buffer import DEFAULT_LIMIT, LogBuffer
from tui.palette import service_colour

_DIM = Style(dim=True)
_MATCH = Style(reverse=True)
# Terminal escapes and control characters in a service's output would corrupt the screen.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]|[\x00-\x08\x0a-\x1f\x7f]")


def clock(stamp: str) -> str:
    """``HH:MM:SS`` of an RFC 3339 time stamp as the runtime gave it (no zone conversion)."""
    _, sep, rest = stamp.partition("T")
    return rest[:8] if sep and len(rest) >= 8 else ""


class LogView(ScrollView, can_focus=True):
    """Log lines of several services, each prefixed and coloured by its service."""

    DEFAULT_CSS = """
    LogView {
        background: $surface;
        scrollbar-gutter: stable;
        overflow-x: hidden;
    }
    """

    BINDINGS = [
        ("up", "scroll_up", "Up"),
        ("down", "scroll_down", "Down"),
        ("pageup", "page_up", "Page up"),
        ("pagedown", "page_down", "Page down"),
        ("home", "scroll_home", "Top"),
        ("end", "scroll_end", "Bottom"),
    ]

    follow: reactive[bool] = reactive(True)

    def __init__(self, limit: int = DEFAULT_LIMIT, *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.buffer = LogBuffer(limit)
        self._prefix_width = 8
        self._styles: dict[str, Style] = {}

    # --- feeding ----------------------------------------------------------------------------

    def set_services(self, services: Iterable[str]) -> None:
        """Services that may appear: the prefix is as wide as the longest name."""
        names = list(services)
        self._prefix_width = max((len(s) for s in names), default=7) + 1

    def append(self, lines: list[LogLine]) -> None:
        """Add lines; while following, stay at the bottom, else keep the lines in view still."""
        _, dropped = self.buffer.extend(lines)
        self._resize()
        if self.follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        elif dropped:
            self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
        self.refresh()

    def refilter(self, text: str, hidden: Iterable[str]) -> None:
        self.buffer.set_filter(text, hidden)
        self._resize()
        if self.follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)
        self.refresh()

    def clear(self) -> None:
        self.buffer.clear()
        self._resize()
        self.scroll_to(y=0, animate=False, immediate=True)
        self.refresh()

    def _resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.buffer))

    def watch_follow(self, follow: bool) -> None:
        if follow and self.is_mounted:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    def on_resize(self) -> None:
        self._resize()
        if self.follow:
            self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True)

    # --- rendering --------------------------------------------------------------------------

    def _service_style(self, service: str) -> Style:
        style = self._styles.get(service)
        if style is None:
            style = self._styles[service] = Style(color=service_colour(service), bold=True)
        return style

    def render_line(self, y: int) -> Strip:
        index = int(self.scroll_y) + y
        width = self.size.width
        base = self.rich_style
        if index >= len(self.buffer):
            return Strip.blank(width, base)
        line = self.buffer[index]
        segments = [
            Segment(f"{clock(line.at) or '        '} ", _DIM),
            Segment(f"{line.service:<{self._prefix_width}}", self._service_style(line.service)),
            Segment("│ ", _DIM),
        ]
        segments += self._text_segments(_CONTROL.sub("", line.text.expandtabs()))
        return Strip(segments).apply_style(base).crop_extend(0, width, base)

    def _text_segments(self, text: str) -> list[Segment]:
        needle = self.buffer.filter_text
        if not needle or needle != _CONTROL.sub("", needle):
            return [Segment(text)]
        haystack = text if needle != needle.lower() else text.lower()
        out: list[Segment] = []
        start = 0
        while True:
            at = haystack.find(needle, start)
            if at < 0:
                break
            out.append(Segment(text[start:at]))
            out.append(Segment(text[at:at + len(needle)], _MATCH))
            start = at + len(needle)
        out.append(Segment(text[start:]))
        return out
