"""The main screen's thread workers and the messages they post.

Each worker calls ``Sources`` (the core) on a thread and posts what it got, or what went wrong,
as one of the messages below; workers never touch widgets. The screen's handlers take the
messages from there.
"""

from __future__ import annotations

import threading
import traceback
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.worker import get_current_worker

from devmesh.errors import DevmeshError
from devmesh.events import Event
from devmesh.runtime.base import EnvironmentState
from tui.log_inbox import LineInbox
from tui.manifests import TiersView, read_tiers
from tui.traffic_view import TrafficFollower, TrafficSnapshot

if TYPE_CHECKING:
    from textual.screen import Screen

    from devmesh.app.environments import UpOutcome
    from devmesh.environments import Selection
    from devmesh.plan.routing import RoutePlan
    from tui.sources import Health, Sources

    # The mixin is only ever a base of the main screen: type-check it as one.
    _ScreenBase = Screen[None]
else:
    _ScreenBase = object

LOG_TAIL = 200  # lines of history per container when a stream starts
TRAFFIC_SECONDS = 1.0  # how often the Traffic tab's rows are rebuilt


def _problem(exc: BaseException, debug: bool) -> tuple[str, str | None]:
    """What to tell the user about a failure: the message and hint, never a bare traceback."""
    if isinstance(exc, DevmeshError):
        return str(exc), exc.hint
    text = f"unexpected error: {type(exc).__name__}: {exc}"
    if debug:
        text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
    return text, None if debug else "run with --debug to see where it happened"


class MainWorkers(_ScreenBase):
    """The workers of the main screen (a mixin of ``MainScreen``, which sets this state)."""

    sources: Sources
    debug: bool
    sync_on: bool
    inbox: LineInbox

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

    class TrafficRead(Message):
        """The Traffic tab's rows, built on the follower's side."""

        def __init__(self, snapshot: TrafficSnapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

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

    @work(thread=True, exclusive=True, group="traffic")
    def follow_traffic(self, stop: threading.Event) -> None:
        """The mesh's records into the Traffic tab, its rows rebuilt once a second."""
        worker = get_current_worker()
        follower: TrafficFollower | None = None
        try:
            follower = TrafficFollower(self.sources.runtime(), stop)
            follower.start()
            while not stop.wait(TRAFFIC_SECONDS) and not worker.is_cancelled:
                if follower.error is not None:
                    raise follower.error
                self.post_message(self.TrafficRead(follower.snapshot()))
        except Exception as exc:
            if not stop.is_set():
                self.post_message(self.WorkFailed("traffic", *_problem(exc, self.debug)))
        finally:
            stop.set()

    @work(thread=True, exclusive=True, group="logs")
    def stream_logs(self, env: str, stream: int, stop: threading.Event) -> None:
        worker = get_current_worker()
        inbox = self.inbox
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
