"""The Traffic tab: each version's figures over the window, and the latest requests as chains
(newest first), filtered as you type."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Input, Label, Static

from tui.traffic_view import TrafficSnapshot


def _ms(value: int | None) -> str:
    return "-" if value is None else f"{value} ms"


class TrafficPane(Vertical):
    DEFAULT_CSS = """
    TrafficPane #traffic-bar { height: 1; }
    TrafficPane #traffic-filter { width: 1fr; height: 1; border: none; padding: 0 1; }
    TrafficPane #traffic-status { width: auto; padding: 0 1; color: $text-muted; }
    TrafficPane #traffic-figures { height: auto; max-height: 10; }
    TrafficPane #traffic-notes { color: $warning; height: auto; }
    """

    BINDINGS = [Binding("escape", "leave_filter", "Leave the filter", show=False)]

    def __init__(self, *, cursor_blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cursor_blink = cursor_blink
        self.snapshot = TrafficSnapshot()
        self.problem: str | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="traffic-bar"):
            box = Input(placeholder="filter requests (/ to type, esc to leave)", id="traffic-filter")
            box.cursor_blink = self._cursor_blink
            yield box
            yield Label("waiting for the mesh's records…", id="traffic-status")
        table: DataTable[str] = DataTable(id="traffic-figures", cursor_type="row", zebra_stripes=False)
        table.add_columns("service", "version", "requests", "req/s", "error %", "limited", "p50", "p95")
        yield table
        yield Static("", id="traffic-notes")
        with VerticalScroll(id="traffic-chains-box"):
            yield Static("", id="traffic-chains")

    # --- what the screen calls -------------------------------------------------------------

    def show(self, snapshot: TrafficSnapshot) -> None:
        self.snapshot = snapshot
        self.problem = None
        table = self.query_one("#traffic-figures", DataTable)
        table.clear()
        for f in snapshot.figures:
            table.add_row(f.service, f.env, str(f.requests), f"{f.rps:.2f}", f"{f.error_pct:.1f}",
                          str(f.limited), _ms(f.p50_ms), _ms(f.p95_ms))
        self.query_one("#traffic-notes", Static).update("\n".join(f"note: {n}" for n in snapshot.notes))
        self._show_chains()

    def show_problem(self, message: str, hint: str | None) -> None:
        self.problem = message
        text = Text(message, style="bold red")
        if hint:
            text.append(f"\n{hint}", style="dim")
        self.query_one("#traffic-chains", Static).update(text)
        self.query_one("#traffic-status", Label).update("not following")

    def focus_filter(self) -> None:
        self.query_one("#traffic-filter", Input).focus()

    def action_leave_filter(self) -> None:
        self.query_one("#traffic-figures", DataTable).focus()

    # --- events ------------------------------------------------------------------------------

    @on(Input.Changed, "#traffic-filter")
    def _filter_changed(self) -> None:
        if self.problem is None:
            self._show_chains()

    @on(Input.Submitted, "#traffic-filter")
    def _filter_done(self) -> None:
        self.action_leave_filter()

    def _show_chains(self) -> None:
        s = self.snapshot
        shown = s.shown(self.query_one("#traffic-filter", Input).value)
        text = Text()
        for row in shown:
            text.append(row.text + "\n", style="" if row.linked else "dim")
        if not shown:
            text.append("no requests yet" if not s.chains else "no request matches the filter", style="dim")
        self.query_one("#traffic-chains", Static).update(text)
        counts = f"{len(shown)}/{len(s.chains)} requests · {s.records:,} records"
        if s.unparsed:
            counts += f" · {s.unparsed} unparsed"
        self.query_one("#traffic-status", Label).update(f"last {s.window:g} s · {counts}")
