"""What the main screen's keys do: up, down, sync, the preview URL, promote, rollback, the tier
strategies, the logs, refresh and the tabs (the keys themselves are listed in ``tui.keys``).

An action checks what it can on the UI thread, refuses with a note and a notification when
it cannot run, and otherwise starts a worker or pushes a modal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.widgets import TabbedContent

from devmesh.runtime.base import EnvironmentState
from tui.manifests import LandedChange
from tui.screens.main.workers import MainWorkers
from tui.screens.promote import PromoteScreen
from tui.screens.rollback import RollbackScreen
from tui.screens.tier_strategy import TierStrategyScreen
from tui.widgets.activity_log import ActivityLog
from tui.widgets.logs_pane import LogsPane
from tui.widgets.route_table import RouteTable
from tui.widgets.service_table import ServiceTable
from tui.widgets.tiers_pane import TiersPane
from tui.widgets.traffic_pane import TrafficPane

if TYPE_CHECKING:
    from devmesh.environments import Selection
    from devmesh.plan.routing import RoutePlan


class MainActions(MainWorkers):
    """The key actions of the main screen (a mixin of ``MainScreen``, which sets this state)."""

    selected_env: str | None
    selection: Selection | None
    states: dict[str, EnvironmentState]
    plan: RoutePlan | None
    busy: str | None
    browser: Callable[[str], None] | None

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

    def _tier_strategy(self, kind: str) -> None:
        chosen = self.query_one(TiersPane).table.chosen if self.query_one(TabbedContent).active == "tiers" else None
        if chosen is None or chosen[1] is None:
            self._refuse(f"a {kind} runs in a tier: choose the service's cell in the Tiers tab (2)", kind)
            return
        self.app.push_screen(TierStrategyScreen(self.sources, chosen[0], chosen[1], kind), self._change_landed)

    def action_canary(self) -> None:
        self._tier_strategy("canary")

    def action_switch(self) -> None:
        self._tier_strategy("switch")

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
        if self.query_one(TabbedContent).active == "traffic":
            self.query_one(TrafficPane).focus_filter()
            return
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
        target = {"routing": RouteTable, "tiers": TiersPane, "logs": LogsPane, "traffic": TrafficPane}.get(tab)
        if target is not None and focused is not None and tabs in focused.ancestors:
            widget = self.query_one(target)
            focus_to = widget.table if isinstance(widget, TiersPane) else \
                widget.view if isinstance(widget, LogsPane) else \
                widget.query_one("#traffic-figures") if isinstance(widget, TrafficPane) else widget
            self.call_after_refresh(focus_to.focus)
