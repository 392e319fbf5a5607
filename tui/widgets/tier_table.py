"""The service × tier matrix: which image each tier runs, its split while a strategy runs there,
and what may move up."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import DataTable

from devmesh.plan.strategy import Canary
from tui.manifests import TiersView
from tui.palette import service_colour

NEXT = "next"


def age(when: datetime, now: datetime) -> str:
    seconds = int((now - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return "just now"


class TierTable(DataTable[Text | str]):
    """One row per service, one column per tier (in rollout order), and the next step."""

    class CellChosen(Message):
        """The cursor is on a service in a tier (tier None: on the service or next column)."""

        def __init__(self, service: str, tier: str | None) -> None:
            super().__init__()
            self.service = service
            self.tier = tier

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="cell")
        self.view: TiersView | None = None
        self.tier_names: list[str] = []

    def show(self, view: TiersView, now: datetime) -> None:
        keep = self.cursor_coordinate
        self.view = view
        self.tier_names = [t.name for t in view.matrix.tiers]
        self.clear(columns=True)
        self.add_column("SERVICE", key="service", width=10)
        for tier in view.matrix.tiers:
            label = tier.name + (f" ({tier.context})" if tier.context else "")
            self.add_column(label, key=f"tier:{tier.name}", width=22)
        self.add_column("NEXT", key=NEXT, width=28)
        for service, row in view.matrix.services.items():
            cells: list[Text | str] = [Text(service, style=f"bold {service_colour(service)}")]
            for name in self.tier_names:
                cell = row[name]
                verdict = view.verdicts.get((service, name))
                if cell.image is None:
                    cells.append(Text("-", style="dim"))
                    continue
                text = Text(cell.image.short.removeprefix("sha256:"))
                if cell.last is not None:
                    text.append(f" {age(cell.last.date, now)}", style="dim")
                    if cell.last.kind == "rollback":
                        text.append(" ↶", style="yellow")
                if verdict is not None and verdict.ok:
                    text.append(" ▸", style="bold green")
                strategy = cell.traffic.strategy
                if strategy is not None:
                    share = f" {strategy.weight}%" if isinstance(strategy, Canary) else ""
                    text.append(f" ⑂{strategy.kind}{share}", style="bold magenta")
                cells.append(text)
            nxt = view.next_for(service)
            style = "green" if nxt.ok else "red" if nxt.text.startswith("blocked") else "dim"
            cells.append(Text(nxt.short or nxt.text, style=style))
            self.add_row(*cells, key=service)
        if keep.row < self.row_count and keep.column < len(self.columns):
            self.move_cursor(row=keep.row, column=keep.column, animate=False)
        elif self.row_count:
            self.move_cursor(row=0, column=1, animate=False)

    @property
    def chosen(self) -> tuple[str, str | None] | None:
        """The service under the cursor and its tier (None outside the tier columns)."""
        if self.view is None or self.row_count == 0:
            return None
        keys = self.coordinate_to_cell_key(self.cursor_coordinate)
        service = str(keys.row_key.value)
        column = str(keys.column_key.value)
        return service, column.removeprefix("tier:") if column.startswith("tier:") else None

    @on(DataTable.CellHighlighted)
    def _moved(self, event: DataTable.CellHighlighted) -> None:
        event.stop()
        chosen = self.chosen
        if chosen is not None:
            self.post_message(self.CellChosen(*chosen))
