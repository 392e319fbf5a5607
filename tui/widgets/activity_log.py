"""The Activity tab: what devmesh did and is doing, with a progress bar per long piece of work."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, ProgressBar, RichLog

from devmesh.events import BuildDone, BuildProgress, Event, Step, Warning


def _stamp(at: float) -> str:
    return datetime.fromtimestamp(at).strftime("%H:%M:%S")


class WorkProgress(Horizontal):
    """One piece of long work (an image build) and how far it got."""

    DEFAULT_CSS = """
    WorkProgress { height: 1; }
    WorkProgress > Label { width: 30; }
    WorkProgress > ProgressBar { width: 1fr; }
    """

    def __init__(self, key: str, title: str) -> None:
        super().__init__()
        self.key = key
        self.title = title
        self._state: tuple[int | None, int | None, str] = (None, None, "")

    def compose(self) -> ComposeResult:
        yield Label(self.title)
        yield ProgressBar(total=None, show_eta=False)

    def on_mount(self) -> None:
        self._show()

    def advance_to(self, step: int | None, steps: int | None, detail: str) -> None:
        self._state = (step, steps, detail)
        if self.is_mounted:
            self._show()

    def _show(self) -> None:
        step, steps, detail = self._state
        bars = self.query(ProgressBar)
        if not bars:  # children not composed yet: on_mount shows the state
            return
        if steps:
            bars.first().update(total=steps, progress=max(0, (step or 1) - 1))
        self.query_one(Label).update(f"{self.title} {detail}".rstrip())


class ActivityLog(Vertical):
    """Events from the core (builds, applies, syncs, promotions) and the TUI's own errors."""

    DEFAULT_CSS = """
    ActivityLog #work { height: auto; max-height: 8; }
    ActivityLog RichLog { height: 1fr; }
    """

    def __init__(self, *, clock: Callable[[], float] = time.time, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self._steps_shown: dict[str, int | None] = {}
        self.errors = 0
        self.entries: deque[str] = deque(maxlen=2000)  # the lines shown, as plain text

    def compose(self) -> ComposeResult:
        yield Vertical(id="work")
        yield RichLog(max_lines=2000, wrap=True, markup=False, id="events")

    # --- the screen calls these -------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Show an event; build output is condensed to one line per Dockerfile step."""
        if isinstance(event, BuildProgress):
            self._progress(event)
            return
        if isinstance(event, BuildDone):
            self._finish(f"build:{event.service}")
            how = "cached" if event.cached else f"built in {event.seconds:.1f} s"
            # as the CLI marks them: • something was done, · it was already there
            self._write(event.at, "·" if event.cached else "•", f"image {event.service}: {event.image} ({how})",
                        "dim" if event.cached else "green")
            return
        if isinstance(event, Warning):
            self._write(event.at, "!", event.message, "yellow")
            return
        if isinstance(event, Step):
            self._write(event.at, "•" if event.changed else "·", event.message, None if event.changed else "dim")
            return
        step, steps = getattr(event, "step", None), getattr(event, "steps", None)
        if isinstance(step, int) and isinstance(steps, int):  # long work of a kind added later
            key = f"{type(event).__name__}:{getattr(event, 'service', '')}"
            self._bar(key, str(getattr(event, "service", "") or type(event).__name__)).advance_to(
                step, steps, f"{step}/{steps}")
        self._write(event.at, "•", event.message, None)

    def note(self, text: str, *, style: str | None = None, at: float | None = None) -> None:
        """A line from the TUI itself (a promotion landed, a key did nothing, …)."""
        self._write(at if at is not None else self._clock(), "•", text, style)

    def error(self, text: str, hint: str | None = None, *, at: float | None = None) -> None:
        self.errors += 1
        when = at if at is not None else self._clock()
        self._write(when, "✗", text, "bold red")
        if hint:
            self._write(when, " ", f"hint: {hint}", "red")

    def finish_all(self) -> None:
        """Long work ended (done or failed): remove every progress bar."""
        for row in list(self.query(WorkProgress)):
            row.remove()

    # --- internals ----------------------------------------------------------------------------

    def _write(self, at: float, mark: str, message: str, style: str | None) -> None:
        line = Text.assemble((f"{_stamp(at)} ", "dim"), (f"{mark} ", style or ""), (message, style or ""))
        self.entries.append(line.plain)
        self.query_one("#events", RichLog).write(line)

    def _bar(self, key: str, title: str) -> WorkProgress:
        for row in self.query(WorkProgress):
            if row.key == key:
                return row
        row = WorkProgress(key, title)
        self.query_one("#work", Vertical).mount(row)
        return row

    def _progress(self, event: BuildProgress) -> None:
        key = f"build:{event.service}"
        text = event.message.removeprefix(f"{event.service}: ")
        detail = f"{event.step}/{event.steps}" if event.step and event.steps else ""
        self._bar(key, f"build {event.service}").advance_to(event.step, event.steps, detail)
        new_step = event.step is not None and self._steps_shown.get(event.service) != event.step
        if new_step or (event.step is None and text.startswith("building ")):
            self._steps_shown[event.service] = event.step
            self._write(event.at, " ", f"{event.service}: {text}", "dim")

    def _finish(self, key: str) -> None:
        for row in self.query(WorkProgress):
            if row.key == key:
                row.remove()
