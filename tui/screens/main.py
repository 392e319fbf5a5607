"""The main screen: header, environments, services, and the Routing/Tiers/Logs/Activity tabs.

It holds no domain logic: workers call ``Sources`` (the core) and post what they got; the
handlers hand it to the widgets. Workers never touch widgets.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane
from textual.worker import get_current_worker

from devmesh.errors import DevmeshError
from devmesh.events import Event
from devmesh.runtime.base import EnvironmentState
from tui.keys import bindings
from tui.log_inbox import LineInbox
from tui.manifests import LandedChange, TiersView, read_tiers
from tui.screens.promote import PromoteScreen
from tui.screens.rollback import RollbackScreen
from tui.widgets.activity_log import ActivityLog
from tui.widgets.app_header import AppHeader, HeaderInfo
from tui.widgets.environment_list import EnvironmentList
from tui.widgets.explain_box import ExplainBox
from tui.widgets.logs_pane import LogsPane
from tui.widgets.route_table import RouteTable
from tui.widgets.service_table import ServiceTable, SyncNote
from tui.widgets.tiers_pane import TiersPane

if TYPE_CHECKING:
    from devmesh.environments import Selection
    from devmesh.plan.routing import RoutePlan
    from devmesh.app.environments import UpOutcome
    from tui.sources import Health, Sources

LOG_TAIL = 200  # lines of history per container when a stream starts


def _problem(exc: BaseException, debug: bool) -> tuple[str, str | None]:
    """What to tell the user about a failure: the message and hint, never a bare traceback."""
    if isinstance(exc, DevmeshError):
        return str(exc), exc.hint
    text = f"unexpected error: {type(exc).__name__}: {exc}"
    if debug:
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return text, None if debug else "run with --debug to see where it happened"


def _runtime_name(sources: Sources) -> str:
    """The runtime devmesh.yaml asks for, until the runtime itself says its name."""
    from devmesh.app.environments import choose_runtime

    try:
        return choose_runtime(sources.project)
    except DevmeshError:
        return sources.project.runtime


class MainScreen(Screen[None]):
    BINDINGS = bindings()

    # The environment the header line, the services table and the Logs tab show.
    selected_env: var[str | None] = var(None)

    # --- messages from the workers ---------------------------------------------------------

    class SelectionRead(Message):
        def __init__(self, selection: Selection) -> None:
            super().__init__()
            self.selection = selection

    class StateRead(Message):
        """Environments, the engine's health and the routing plan, read together."""

        def __init__(self, runtime: str, states: list[EnvironmentState], health: Health,
                     plan: RoutePlan) -> None:
            super().__init__()
            self.runtime = runtime
            self.states = states
            self.health = health
            self.plan = plan

    class TiersRead(Message):
        def __init__(self, view: TiersView) -> None:
            super().__init__()
            self.view = view

    class CoreEvent(Message):
        """An event from up, down or a sync, as the core emitted it."""

        def __init__(self, event: Event) -> None:
            super().__init__()
            self.event = event

    class LinesArrived(Message):
        """The log inbox has lines (one pending at a time: the handler takes them all)."""

        def __init__(self, stream: int) -> None:
            super().__init__()
            self.stream = stream

    class WorkFailed(Message):
        def __init__(self, what: str, message: str, hint: str | None) -> None:
            super().__init__()
            self.what = what
            self.message = message
            self.hint = hint

    class WorkDone(Message):
        def __init__(self, what: str, text: str, *, refresh: bool = True) -> None:
            super().__init__()
            self.what = what
            self.text = text
            self.refresh = refresh

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
        self._inbox = LineInbox(log_lines)
        self._stream = 0
        self._stream_stop: threading.Event | None = None
        self._stream_env: str | None = None
        self._services = list(sources.project.services)

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

    # --- workers (threads: they call the core and post messages, never touch widgets) ----------

    @work(thread=True, exclusive=True, group="selection")
    def read_selection(self) -> None:
        try:
            self.post_message(self.SelectionRead(self.sources.selection()))
        except Exception as exc:
            self.post_message(self.WorkFailed("branch", *_problem(exc, self.debug)))

    @work(thread=True, exclusive=True, group="state")
    def read_state(self) -> None:
        try:
            runtime = self.sources.runtime()
            states = runtime.environments()
            health = self.sources.health()
            plan = self.sources.route_plan()
        except Exception as exc:
            self.sources.forget_runtime()
            self.post_message(self.WorkFailed("state", *_problem(exc, self.debug)))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(self.StateRead(runtime.name, states, health, plan))

    @work(thread=True, exclusive=True, group="tiers")
    def read_tier_matrix(self) -> None:
        try:
            view = read_tiers(self.sources)
        except Exception as exc:
            self.post_message(self.WorkFailed("tiers", *_problem(exc, self.debug)))
            return
        self.post_message(self.TiersRead(view))

    def _sink(self, event: Event) -> None:
        """Where the core's events go (called from worker threads: post_message is thread-safe)."""
        self.post_message(self.CoreEvent(event))

    @work(thread=True, exclusive=True, group="env-change")
    def run_up(self) -> None:
        try:
            outcome: UpOutcome = self.sources.up(self._sink)
        except Exception as exc:
            self.post_message(self.WorkFailed("up", *_problem(exc, self.debug)))
            return
        env = outcome.result.environment
        changed = "" if outcome.result.changed else " (nothing changed)"
        self.post_message(self.WorkDone("up", f"environment {env.name} is up{changed}: {env.preview_url}"))

    @work(thread=True, exclusive=True, group="env-change")
    def run_down(self, env: str) -> None:
        try:
            removed = self.sources.runtime().down(env, sink=self._sink)
        except Exception as exc:
            self.post_message(self.WorkFailed("down", *_problem(exc, self.debug)))
            return
        text = (f"removed {len(removed)} object(s) of environment {env}" if removed
                else f"nothing to remove: environment {env} is not running")
        self.post_message(self.WorkDone("down", text))

    @work(thread=True, exclusive=True, group="sync")
    def run_sync(self, on: bool) -> None:
        switch = self.sources.sync
        assert switch is not None
        try:
            switch(on, self._sink)
        except Exception as exc:
            self.sync_on = False
            self.post_message(self.WorkFailed("sync", *_problem(exc, self.debug)))
            return
        self.post_message(self.WorkDone("sync", f"live sync {'on' if on else 'off'}", refresh=False))

    @work(thread=True, exclusive=True, group="logs")
    def stream_logs(self, env: str, stream: int, stop: threading.Event) -> None:
        worker = get_current_worker()
        inbox = self._inbox
        lines: Any = None
        try:
            lines = self.sources.runtime().logs(env, [], follow=True, tail=LOG_TAIL, stop=stop)
            for line in lines:
                if worker.is_cancelled or stop.is_set():
                    break
                if inbox.put(line):
                    self.post_message(self.LinesArrived(stream))
        except Exception as exc:
            if not stop.is_set():
                self.post_message(self.WorkFailed("logs", *_problem(exc, self.debug)))
        finally:
            if hasattr(lines, "close"):
                lines.close()

    # --- handlers ---------------------------------------------------------------------------------

    @on(SelectionRead)
    def _selection_read(self, message: SelectionRead) -> None:
        self.selection = message.selection
        if not self._env_chosen:
            self.selected_env = message.selection.environment.name
        self._show_state()

    @on(StateRead)
    def _state_read(self, message: StateRead) -> None:
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

    @on(TiersRead)
    def _tiers_read(self, message: TiersRead) -> None:
        self.query_one(TiersPane).show(message.view, self.sources.now())

    @on(CoreEvent)
    def _core_event(self, message: CoreEvent) -> None:
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

    @on(LinesArrived)
    def _lines_arrived(self, message: LinesArrived) -> None:
        lines = self._inbox.take()
        if message.stream == self._stream and lines:
            self.query_one(LogsPane).append(lines)

    @on(WorkFailed)
    def _work_failed(self, message: WorkFailed) -> None:
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
        activity.error(f"{message.what}: {message.message}", message.hint)
        self.notify(message.message, title=f"{message.what} failed", severity="error")

    @on(WorkDone)
    def _work_done(self, message: WorkDone) -> None:
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
        self._inbox.take()
        self.query_one(LogsPane).restart(f"{env}")
        self.stream_logs(env, self._stream, self._stream_stop)

    def _stop_stream(self) -> None:
        if self._stream_stop is not None:
            self._stream_stop.set()
        self.workers.cancel_group(self, "logs")

    # --- what the keys do ----------------------------------------------------------------------

    def _selected_url(self) -> str | None:
        env = self.selected_env or (self.selection.environment.name if self.selection else None)
        if env is None or self.plan is None:
            return None
        state = self.states.get(env)
        return state.preview_url if state and state.preview_url else self.plan.preview_url(env)

    def _refuse(self, text: str, title: str = "not done") -> None:
        self.query_one(ActivityLog).note(f"{title}: {text}", style="yellow")
        self.notify(text, title=title, severity="warning")

    def action_up(self) -> None:
        if self.busy:
            self._refuse(f"{self.busy} is still running", "up")
            return
        self.busy = "up"
        label = self.selection.branch.label if self.selection else "the branch"
        self.query_one(ActivityLog).note(f"up: building and starting {label}…", style="bold")
        self.action_show_tab("activity")
        self.run_up()

    def action_down(self) -> None:
        if self.busy:
            self._refuse(f"{self.busy} is still running", "down")
            return
        env = self.selected_env
        if env is None:
            self._refuse("no environment selected", "down")
            return
        self.busy = "down"
        self.query_one(ActivityLog).note(f"down: removing environment {env}…", style="bold")
        self.run_down(env)

    def action_sync(self) -> None:
        if self.sources.sync is None:
            self._refuse("live sync is not available in this version of devmesh", "sync")
            return
        self.sync_on = not self.sync_on
        self.run_sync(self.sync_on)

    def action_open_preview(self) -> None:
        url = self._selected_url()
        if url is None:
            self._refuse("no preview URL yet: the routing plan is not read", "open")
            return
        (self.browser or self.app.open_url)(url)
        self.query_one(ActivityLog).note(f"opened {url}")

    def action_copy_preview(self) -> None:
        url = self._selected_url()
        if url is None:
            self._refuse("no preview URL yet: the routing plan is not read", "copy")
            return
        self.app.copy_to_clipboard(url)
        self.notify(url, title="copied")

    def _target(self) -> tuple[str, str | None, str | None] | None:
        """(service, tier, branch image) that `p`/`b` act on; tier None: let the core decide."""
        tabs = self.query_one(TabbedContent)
        if tabs.active == "tiers":
            chosen = self.query_one(TiersPane).table.chosen
            if chosen is not None:
                return chosen[0], chosen[1], None
        service = self.query_one(ServiceTable).service
        if service is None:
            return None
        env = self.selected_env
        state = self.states.get(env) if env else None
        image = None
        if state is not None and not state.is_baseline:
            own = next((s for s in state.services if s.service == service and s.env == state.name), None)
            image = own.image if own is not None and own.image else None
        return service, None, image

    def action_promote(self) -> None:
        target = self._target()
        if target is None:
            self._refuse("select a service first", "promote")
            return
        service, tier, image = target
        if tier is not None:
            pane = self.query_one(TiersPane)
            verdict = pane.view.verdicts.get((service, tier)) if pane.view else None
            if verdict is not None and verdict.target is None:
                self._refuse(verdict.text, "promote")
                return
            tier = verdict.target if verdict is not None else None
        self.app.push_screen(PromoteScreen(self.sources, service, tier, image), self._change_landed)

    def action_rollback(self) -> None:
        target = self._target()
        if target is None:
            self._refuse("select a service first", "rollback")
            return
        service, tier, _ = target
        self.app.push_screen(RollbackScreen(self.sources, service, tier), self._change_landed)

    def _change_landed(self, landed: LandedChange | None) -> None:
        if landed is None:
            return
        activity = self.query_one(ActivityLog)
        activity.note(landed.text, style="green")
        if landed.warning:
            activity.note(landed.warning, style="yellow")
        self.notify(landed.text, title="manifest repo")
        self.read_tier_matrix()

    def action_filter_logs(self) -> None:
        self.action_show_tab("logs")
        self.query_one(LogsPane).focus_filter()

    def action_follow(self) -> None:
        following = self.query_one(LogsPane).toggle_follow()
        self.notify("following the logs" if following else "logs paused", title="logs")

    def action_refresh(self) -> None:
        self.read_selection()
        self.read_state()
        self.read_tier_matrix()
        self.notify("reading environments, routes and tiers again", title="refresh")

    def action_show_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        if tabs.active == tab:
            return
        # Focus must leave the pane being hidden first: TabbedContent shows the pane that
        # holds the focused widget, so focus left behind would switch straight back.
        focused = self.focused
        if focused is not None and tabs in focused.ancestors:
            self.query_one(ServiceTable).focus()
        tabs.active = tab
        target = {"routing": RouteTable, "tiers": TiersPane, "logs": LogsPane}.get(tab)
        if target is not None and focused is not None and tabs in focused.ancestors:
            widget = self.query_one(target)
            focus_to = widget.table if isinstance(widget, TiersPane) else \
                widget.view if isinstance(widget, LogsPane) else widget
            self.call_after_refresh(focus_to.focus)
