"""The `?` help: every key, what it does, and where else to find it."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.keys import KEYS, TABS


def keys_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", justify="right")
    table.add_column()
    for key in KEYS:
        table.add_row(key.shown, key.help)
    for digit, _, title in TABS:
        table.add_row(digit, f"Show the {title} tab")
    table.add_row("tab", "Move between the lists, tables and tabs")
    table.add_row("ctrl+p", "Command palette: every action above, by name")
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 90; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    """

    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close"),
        Binding("q", "close", "Close", show=False),
        Binding("enter", "close", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("devmesh keys", style="bold"))
            yield Static(keys_table())
            yield Static(Text("\nesc closes", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)
