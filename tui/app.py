"""The devmesh TUI application: one main screen, modals on top, the core behind ``Sources``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from functools import partial

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from tui.keys import KEYS, TABS
from tui.log_buffer import DEFAULT_LIMIT
from tui.palette import assign_colours
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.sources import Sources
from tui.threads import DaemonExecutor


class DevmeshApp(App[None]):
    """``devmesh`` in a terminal: environments, routing, tiers, logs and activity."""

    CSS_PATH = "devmesh.tcss"
    TITLE = "devmesh"
    BINDINGS = [Binding("ctrl+c", "quit", "Quit", show=False, priority=True)]

    def __init__(self, sources: Sources, *, log_lines: int = DEFAULT_LIMIT, debug: bool = False,
                 cursor_blink: bool = True, poll_seconds: float = 5.0,
                 browser: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.sources = sources
        assign_colours(sources.project.services)
        self.main = MainScreen(sources, log_lines=log_lines, debug=debug, cursor_blink=cursor_blink,
                               poll_seconds=poll_seconds, browser=browser)

    def on_load(self) -> None:
        # Thread workers run on the loop's default executor; make quitting never wait for one.
        asyncio.get_running_loop().set_default_executor(DaemonExecutor())

    def on_mount(self) -> None:
        self.title = f"devmesh · {self.sources.project.app}"
        self.push_screen(self.main)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for key in KEYS:
            if key.action.startswith("app."):
                yield SystemCommand(key.label, f"{key.help} ({key.shown})",
                                    partial(self.run_action, key.action.removeprefix("app.")))
            else:
                yield SystemCommand(key.label, f"{key.help} ({key.shown})",
                                    partial(self.main.run_action, key.action))
        for digit, tab, title in TABS:
            yield SystemCommand(f"{title} tab", f"Show the {title} tab ({digit})",
                                partial(self.main.action_show_tab, tab))
        yield from super().get_system_commands(screen)
