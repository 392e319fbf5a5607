"""The Tiers tab: the matrix, where it comes from, and what the cursor's cell may do."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from devmesh.gitops.tier_traffic import summary
from tui.manifests import TiersView
from tui.widgets.tier_table import TierTable, age


class TiersPane(Vertical):
    """Shows a TiersView, or why there is none (no manifest repo, unreachable, …)."""

    DEFAULT_CSS = """
    TiersPane #tiers-source { height: auto; }
    TiersPane TierTable { height: auto; max-height: 1fr; }
    TiersPane #tiers-detail { height: auto; min-height: 3; padding: 1 0 0 0; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: TiersView | None = None
        self.now: datetime | None = None

    def compose(self) -> ComposeResult:
        yield Static("reading the manifest repo…", id="tiers-source")
        yield TierTable(id="tier-table")
        yield Static("", id="tiers-detail")

    @property
    def table(self) -> TierTable:
        return self.query_one(TierTable)

    def show(self, view: TiersView, now: datetime) -> None:
        self.view, self.now = view, now
        tiers = " → ".join(t.name for t in view.matrix.tiers)
        mode = " (pull requests)" if view.mode == "pull-request" else ""
        self.query_one("#tiers-source", Static).update(
            Text.assemble(("manifest repo ", "dim"), view.source + mode, ("   tiers ", "dim"), tiers,
                          ("\n▸ may move up · p promotes the cell's image to the next tier · "
                           "b rolls back the cell's latest promotion", "dim")))
        self.table.display = True
        self.table.show(view, now)
        self._detail()

    def show_problem(self, message: str, hint: str | None) -> None:
        self.view = None
        self.query_one("#tiers-source", Static).update(Text(message, style="bold red"))
        self.table.display = False
        self.query_one("#tiers-detail", Static).update(Text(f"hint: {hint}" if hint else "", style="red"))

    @on(TierTable.CellChosen)
    def _detail(self) -> None:
        detail = self.query_one("#tiers-detail", Static)
        chosen = self.table.chosen
        if self.view is None or chosen is None:
            detail.update("")
            return
        service, tier = chosen
        if tier is None:
            verdict = self.view.next_for(service)
            detail.update(Text.assemble((f"{service}: ", "bold"), (verdict.text, _style(verdict.ok, verdict.text))))
            return
        cell = self.view.matrix.services[service][tier]
        verdict = self.view.verdicts[(service, tier)]
        lines = Text.assemble((f"{service} in {tier}: ", "bold"), str(cell.image) if cell.image else "no image pinned")
        if cell.last is not None and self.now is not None:
            lines.append(f"\n{cell.last.kind} {cell.last.commit[:10]} by {cell.last.author}, "
                         f"{age(cell.last.date, self.now)}: {cell.last.subject}", style="dim")
        if cell.traffic.candidate is not None:
            lines.append(f"\n{summary(cell.traffic)}: candidate {cell.traffic.candidate}", style="bold magenta")
        lines.append("\n")
        lines.append(verdict.text, style=_style(verdict.ok, verdict.text))
        detail.update(lines)


def _style(ok: bool, text: str) -> str:
    return "green" if ok else "bold red" if text.startswith("blocked") else "dim"
