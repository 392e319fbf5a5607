"""The top line: app, branch → environment, runtime and its health, preview URL."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True)
class HeaderInfo:
    app: str
    branch: str = "…"
    env: str = "…"
    runtime: str = "…"
    health: str = "connecting…"
    healthy: bool | None = None  # None while not known yet
    preview_url: str | None = None
    running: bool = False


class AppHeader(Static):
    """Two lines that say what the screen is about."""

    DEFAULT_CSS = """
    AppHeader { height: 2; background: $panel; padding: 0 1; }
    """

    def __init__(self, info: HeaderInfo, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.info = info

    def on_mount(self) -> None:
        self.show(self.info)

    def show(self, info: HeaderInfo) -> None:
        self.info = info
        health_style = {True: "green", False: "bold red", None: "yellow"}[info.healthy]
        mark = {True: "●", False: "✗", None: "○"}[info.healthy]
        first = Text.assemble(
            ("devmesh ", "bold"),
            (info.app, "bold cyan"),
            "  ",
            (info.branch, "bold"),
            " → ",
            (info.env, "bold magenta"),
            "   runtime ",
            (info.runtime, "bold"),
            " ",
            (f"{mark} {info.health}", health_style),
        )
        if info.preview_url and info.running:
            url = Text.assemble(("preview ", "dim"), (info.preview_url, "underline cyan"), ("  (o opens, y copies)", "dim"))
        elif info.preview_url:
            url = Text.assemble(("preview ", "dim"), (info.preview_url, "dim"), ("  not running: u starts it", "yellow"))
        else:
            url = Text("preview: not known yet", style="dim")
        self.update(Text("\n").join([first, url]))
