"""The Logs tab: filter as you type, show or hide services, follow or pause."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import var
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, SelectionList
from textual.widgets.selection_list import Selection

from devmesh.runtime.base import LogLine
from tui.log_buffer import DEFAULT_LIMIT
from tui.palette import service_colour
from tui.widgets.log_view import LogView


class LogsPane(Vertical):
    """A LogView with its controls; the screen feeds it lines with ``append``."""

    DEFAULT_CSS = """
    LogsPane #log-bar { height: 1; }
    LogsPane #log-filter { width: 1fr; height: 1; border: none; padding: 0 1; }
    LogsPane #log-status { width: auto; padding: 0 1; color: $text-muted; }
    LogsPane #log-services { width: 22; border: none; padding: 0; }
    """

    BINDINGS = [Binding("escape", "leave_filter", "Leave the filter", show=False)]

    stream_note: var[str] = var("")  # what the stream is (its environment) or why it stopped

    def __init__(self, limit: int = DEFAULT_LIMIT, *, cursor_blink: bool = True,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self._limit = limit
        self._cursor_blink = cursor_blink
        self._services: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal(id="log-bar"):
            filter_input = Input(placeholder="filter (/ to type, esc to leave)", id="log-filter")
            filter_input.cursor_blink = self._cursor_blink
            yield filter_input
            yield Label("", id="log-status")
        with Horizontal():
            yield SelectionList[str](id="log-services")
            yield LogView(self._limit, id="log-view")

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self.query_one("#log-services", SelectionList).border_title = "services"
        self._update_status()

    # --- what the screen calls -------------------------------------------------------------

    def set_services(self, services: Sequence[str]) -> None:
        """The services that may log; each starts shown."""
        if list(services) == self._services:
            return
        selection = self.query_one("#log-services", SelectionList)
        hidden = set(self._services) - set(selection.selected)
        self._services = list(services)
        selection.clear_options()
        selection.add_options([
            Selection(Text(name, style=f"bold {service_colour(name)}"), name, name not in hidden)
            for name in services
        ])
        self.view.set_services(services)

    def append(self, lines: list[LogLine]) -> None:
        self.view.append(lines)
        self._update_status()

    def restart(self, note: str) -> None:
        """A new stream (another environment): forget the old lines."""
        self.view.clear()
        self.stream_note = note
        self._update_status()  # the line count changed, whether or not the note did

    def watch_stream_note(self) -> None:
        self._update_status()

    def toggle_follow(self) -> bool:
        view = self.view
        view.follow = not view.follow
        self._update_status()
        return view.follow

    def focus_filter(self) -> None:
        self.query_one("#log-filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.view.focus()

    # --- events ------------------------------------------------------------------------------

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self) -> None:
        self._refilter()

    @on(Input.Submitted, "#log-filter")
    def _filter_done(self) -> None:
        self.view.focus()

    @on(SelectionList.SelectedChanged, "#log-services")
    def _services_changed(self) -> None:
        self._refilter()

    def _refilter(self) -> None:
        text = self.query_one("#log-filter", Input).value
        shown = set(self.query_one("#log-services", SelectionList).selected)
        self.view.refilter(text, [s for s in self._services if s not in shown])
        self._update_status()

    def _update_status(self) -> None:
        view = self.view
        buffer = view.buffer
        mode = "following" if view.follow else "paused"
        counts = f"{len(buffer):,}/{buffer.total:,} lines"
        parts = [p for p in (self.stream_note, counts, mode) if p]
        self.query_one("#log-status", Label).update(" · ".join(parts))
