"""The main screen: header, environments, services, and the Routing/Tiers/Logs/Activity tabs.

It holds no domain logic: its workers (``tui.screens.main.workers``) call ``Sources`` (the core)
and post what they got; the handlers here hand it to the widgets. Workers never touch widgets.
What the keys do is in ``tui.screens.main.actions``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from devmesh.app.environments import choose_runtime
from devmesh.errors import DevmeshError
from devmesh.runtime.base import EnvironmentState
from tui.keys import bindings
from tui.log_inbox import LineInbox
from tui.screens.main.actions import MainActions
from tui.screens.main.workers import MainWorkers
from tui.widgets.activity_log import ActivityLog
from tui.widgets.app_header import AppHeader, HeaderInfo
from tui.widgets.environment_list import EnvironmentList
from tui.widgets.explain_box import ExplainBox, Taken
from tui.widgets.logs_pane import LogsPane
from tui.widgets.route_table import RouteTable
from tui.widgets.service_table import ServiceTable, SyncNote
from tui.widgets.tiers_pane import TiersPane
from tui.widgets.traffic_pane import TrafficPane

if TYPE_CHECKING:
    from devmesh.environments import Selection
    from devmesh.plan.routing import RoutePlan
    from tui.sources import Health, Sources


def _runtime_name(sources: Sources) -> str:
    """The runtime devmesh.yaml asks for, until the runtime itself says its name."""
    try:
        return choose_runtime(sources.project)
    except DevmeshError:
        return sources.project.runtime


class MainScreen(MainActions, Screen[None]):
    """The one screen under the modals: it lays the widgets out and shows what the workers read."""

    BINDINGS = bindings()

    # The environment the header line, the services table and the Logs tab show.
    selected_env: var[str | None] = var(None)

    # --- set-up -------------------------------------------------------------------------------

    def __init__(self, sources: Sources, *, log_lines: int, debug: bool = False,
                 cursor_blink: bool = True, poll_seconds: float = 5.0,
                 browser: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.sources = sources
        self.debug = debug
        self.log_lines = log_lines
        self.cursor_blink = cursor_blink
        self.poll_seconds = poll_seconds
        self.browser = browser
        self.selection: Selection | None = None
        self.states: dict[str, EnvironmentState] = {}
        self.plan: RoutePlan | None = None
        self.health: Health | None = None
        self.runtime_name = _runtime_name(sources)
        self._env_chosen = False  # True once the user moved to another environment
        self.sync_on = False
        self.busy: str | None = None  # "up" or "down" while one runs
        self._poll_error: str | None = None
        self.inbox = LineInbox(log_lines)
        self._stream = 0
        self._stream_stop: threading.Event | None = None
        self._stream_env: str | None = None
        self._services = list(sources.project.services)
        self._traffic_stop: threading.Event | None = None

    def compose(self) -> ComposeResult:
        yield AppHeader(HeaderInfo(self.sources.project.app), id="header")
        with Horizontal(id="top"):
            yield EnvironmentList(id="environments")
            yield ServiceTable(id="services")
        with TabbedContent(id="tabs", initial="routing"):
            with TabPane("Routing", id="routing"):
                with Vertical():
                    yield RouteTable(id="routes")
                    yield Static("", id="rule-why")
                    yield ExplainBox(cursor_blink=self.cursor_blink, id="explain")
            with TabPane("Tiers", id="tiers"):
                yield TiersPane(id="tiers-pane")
            with TabPane("Logs", id="logs"):
                yield LogsPane(self.log_lines, cursor_blink=self.cursor_blink, id="logs-pane")
            with TabPane("Traffic", id="traffic"):
                yield TrafficPane(cursor_blink=self.cursor_blink, id="traffic-pane")
            with TabPane("Activity", id="activity"):
                yield ActivityLog(clock=lambda: self.sources.now().timestamp(), id="activity-log")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#environments", EnvironmentList).border_title = "environments"
        self.query_one("#services", ServiceTable).border_title = "services"
        self.query_one(ServiceTable).show("baseline", None, self._services)
        self.query_one(LogsPane).set_services(self._services)
        self.query_one(ServiceTable).focus()
        self.read_selection()
        self.read_state()
        self.read_tier_matrix()
        if self.poll_seconds > 0:
            self.set_interval(self.poll_seconds, self.read_state)

    def on_unmount(self) -> None:
        self._stop_stream()
        if self._traffic_stop is not None:
            self._traffic_stop.set()

    # --- handlers ---------------------------------------------------------------------------------

    @on(MainWorkers.SelectionRead)
    def _selection_read(self, message: MainWorkers.SelectionRead) -> None:
        self.selection = message.selection
        if not self._env_chosen:
            self.selected_env = message.selection.environment.name
        self._show_state()

    @on(MainWorkers.StateRead)
    def _state_read(self, message: MainWorkers.StateRead) -> None:
        if self._poll_error is not None:
            self.query_one(ActivityLog).note("the runtime answers again", style="green")
            self._stream_env = None  # a stream that failed meanwhile starts again
        self._poll_error = None
        self.states = {s.name: s for s in message.states}
        self.health = message.health
        self.runtime_name = message.runtime
        self.plan = message.plan
        self.query_one(RouteTable).show(message.plan)
        self.query_one(ExplainBox).show(message.plan)
        self._show_state()

    @on(MainWorkers.TiersRead)
    def _tiers_read(self, message: MainWorkers.TiersRead) -> None:
        self.query_one(TiersPane).show(message.view, self.sources.now())

    @on(MainWorkers.CoreEvent)
    def _core_event(self, message: MainWorkers.CoreEvent) -> None:
        event = message.event
        self.query_one(ActivityLog).record(event)
        files, service = getattr(event, "files", None), getattr(event, "service", None)
        ms = getattr(event, "ms", None)
        if ms is None and isinstance(getattr(event, "seconds", None), (int, float)):
            ms = event.seconds * 1000  # type: ignore[attr-defined]
        if isinstance(files, int) and isinstance(service, str) and isinstance(ms, (int, float)):
            env = getattr(event, "env", None) or self.selected_env or "baseline"
            table = self.query_one(ServiceTable)
            table.note_sync(env, service, SyncNote(files, float(ms)))
            self._show_services()

    @on(MainWorkers.LinesArrived)
    def _lines_arrived(self, message: MainWorkers.LinesArrived) -> None:
        lines = self.inbox.take()
        if message.stream == self._stream and lines:
            self.query_one(LogsPane).append(lines)

    @on(MainWorkers.TrafficRead)
    def _traffic_read(self, message: MainWorkers.TrafficRead) -> None:
        self.query_one(TrafficPane).show(message.snapshot)
        self.query_one(ExplainBox).records(Taken(message.snapshot.rules, message.snapshot.window))

    @on(MainWorkers.WorkFailed)
    def _work_failed(self, message: MainWorkers.WorkFailed) -> None:
        activity = self.query_one(ActivityLog)
        if message.what == "state":
            if message.message != self._poll_error:
                activity.error(message.message, message.hint)
                self.notify(message.message, title="runtime", severity="error")
            self._poll_error = message.message
            self.health = None
            self._show_state()
            return
        if message.what == "tiers":
            self.query_one(TiersPane).show_problem(message.message, message.hint)
            return
        if message.what in ("up", "down"):
            self.busy = None
            activity.finish_all()
        if message.what == "logs":
            self.query_one(LogsPane).stream_note = "stream stopped"
        if message.what == "traffic":
            self.query_one(TrafficPane).show_problem(message.message, message.hint)
            self._traffic_stop = None  # the next state read that answers starts it again
        activity.error(f"{message.what}: {message.message}", message.hint)
        self.notify(message.message, title=f"{message.what} failed", severity="error")

    @on(MainWorkers.WorkDone)
    def _work_done(self, message: MainWorkers.WorkDone) -> None:
        if message.what in ("up", "down"):
            self.busy = None
            self.query_one(ActivityLog).finish_all()
        self.query_one(ActivityLog).note(message.text, style="green")
        self.notify(message.text, title=message.what)
        if message.refresh:
            self.read_state()

    @on(EnvironmentList.Selected)
    def _environment_selected(self, message: EnvironmentList.Selected) -> None:
        self._env_chosen = True
        self.selected_env = message.env

    def watch_selected_env(self) -> None:
        self._show_header()
        self._show_services()
        self._follow_logs()

    @on(RouteTable.RuleHighlighted)
    def _rule_highlighted(self, message: RouteTable.RuleHighlighted) -> None:
        self.query_one("#rule-why", Static).update(
            Text.assemble((f"{message.where} rule {message.index}: ", "bold"), (message.rule.why, "dim")))

    # --- showing state ---------------------------------------------------------------------------

    def _show_state(self) -> None:
        error = self._poll_error
        branch_env = self.selection.environment.name if self.selection else None
        envs = self.query_one(EnvironmentList)
        if self.selected_env is None:
            self.selected_env = branch_env
        envs.show(list(self.states.values()) if error is None else [], branch_env=branch_env,
                  selected=self.selected_env, error=error)
        self._show_header()
        self._show_services()
        if error is None:
            self._follow_logs()
            self._follow_traffic()

    def _show_header(self) -> None:
        error = self._poll_error
        sel = self.selection
        env = self.selected_env or (sel.environment.name if sel else None)
        url = self.plan.preview_url(env) if self.plan and env else None
        if error is not None:
            health, healthy = "not answering", False
        elif self.health is None:
            health, healthy = "connecting…", None
        else:
            health, healthy = self.health.text, self.health.ok
        self.query_one(AppHeader).show(HeaderInfo(
            app=self.sources.project.app,
            branch=sel.branch.label if sel else "…",
            env=sel.environment.name if sel else "…",
            runtime=self.runtime_name,
            health=health,
            healthy=healthy,
            preview_url=url,
            running=env in self.states if env else False,
        ))

    def _show_services(self) -> None:
        env = self.selected_env or "baseline"
        self.query_one(ServiceTable).show(env, self.states.get(env), self._services,
                                          known=self._poll_error is None)

    def _follow_logs(self) -> None:
        env = self.selected_env
        if env is None or env == self._stream_env:
            return
        if self.plan is None or self._poll_error is not None:
            return  # not before the runtime answered: the state poll reports why it does not
        # A branch environment that is not up yet still streams: the baseline's services
        # answer for it now, and its own containers join when they start.
        self._stop_stream()
        self._stream += 1
        self._stream_env = env
        self._stream_stop = threading.Event()
        self.inbox.take()
        self.query_one(LogsPane).restart(f"{env}")
        self.stream_logs(env, self._stream, self._stream_stop)

    def _follow_traffic(self) -> None:
        """The whole mesh's traffic (every environment), once the runtime has answered."""
        if self._traffic_stop is not None or self.plan is None:
            return
        self._traffic_stop = threading.Event()
        self.follow_traffic(self._traffic_stop)

    def _stop_stream(self) -> None:
        if self._stream_stop is not None:
            self._stream_stop.set()
        self.workers.cancel_group(self, "logs")

