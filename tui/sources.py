"""Where the TUI gets its data and effects: the core library, behind one small seam.

The app never calls docker, git or the manifest repo itself: it calls a ``Sources`` object.
The default one calls the core (``devmesh.app``, ``devmesh.environments``,
``devmesh.gitops``); tests give it fakes (a runtime with ``environments``, ``route_plan``,
``logs`` and ``down``, a recorded selection, an ``up`` that replays events). Every method may
block: the app only calls them from thread workers.

The routing plan is the runtime's own (``route_plan()``: its live environments and the stored
release strategies), so the Routing tab shows what the gateway and the services were given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from devmesh.app.environments import UpOutcome, open_runtime, up
from devmesh.app.live import open_live_sync
from devmesh.environments import Selection, select
from devmesh.events import Sink
from devmesh.gitops.cache import Checkout, open_checkout
from devmesh.gitops.publish import publish_image
from devmesh.gitops.settings import ManifestSettings, manifest_settings
from devmesh.runtime.base import Health as Health  # the TUI's screens take it from here
from devmesh.runtime.base import Runtime

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.gitops.images import ImageRef
    from devmesh.plan.routing import RoutePlan


SyncSwitch = Callable[[bool, Sink], None]


class LiveSyncSwitch:
    """`s`: live sync of the branch's running environment, on or off (call from a worker)."""

    def __init__(self, project: Project, branch: str | None, runtime: Callable[[], Runtime]) -> None:
        self.project = project
        self.branch = branch
        self.runtime = runtime  # the TUI's one runtime, opened on first use
        self._live: Any = None
        self._lock = threading.Lock()

    def __call__(self, on: bool, sink: Sink) -> None:
        with self._lock:
            if on and self._live is None:
                live = open_live_sync(self.project, self.branch, sink=sink, rt=self.runtime())
                live.start()
                self._live = live
            elif not on and self._live is not None:
                self._live.stop()
                self._live = None


_LIVE_SYNC: Any = object()  # the default: the core's live sync


class Sources:
    """The core library as the TUI sees it. Pass any keyword to replace one part (tests do)."""

    def __init__(
        self,
        project: Project,
        *,
        branch: str | None = None,
        runtime: Runtime | None = None,
        open_runtime: Callable[[], Runtime] | None = None,
        selection: Selection | Callable[[], Selection] | None = None,
        up: Callable[[Sink], UpOutcome] | None = None,
        health: Callable[[Runtime], Health] | None = None,
        manifests: ManifestSettings | Callable[[], ManifestSettings] | None = None,
        publish: Callable[[str, str], ImageRef] | None = None,
        sync: SyncSwitch | None = _LIVE_SYNC,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.project = project
        self.branch = branch
        self._open_runtime = open_runtime
        self._runtime_opened: Runtime | None = runtime
        self._runtime_fixed = runtime is not None
        self._selection = selection
        self._up = up
        self._health = health
        self._manifests = manifests
        self._publish = publish
        # None makes the `s` key say live sync is unavailable (a runtime without it).
        self.sync: SyncSwitch | None = LiveSyncSwitch(project, branch, self.runtime) if sync is _LIVE_SYNC else sync
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(timezone.utc))
        self._lock = threading.Lock()

    # --- the branch and its environment ----------------------------------------------------

    def selection(self) -> Selection:
        """The branch to show and its environment (git: call from a worker)."""
        if self._selection is None:
            return select(self.project, self.branch)
        if callable(self._selection):
            return self._selection()
        return self._selection

    # --- the runtime ------------------------------------------------------------------------

    def runtime(self) -> Runtime:
        """The runtime, opened once (connecting to the engine may block or fail)."""
        with self._lock:
            if self._runtime_opened is None:
                if self._open_runtime is not None:
                    self._runtime_opened = self._open_runtime()
                else:
                    self._runtime_opened = open_runtime(self.project)
            return self._runtime_opened

    def forget_runtime(self) -> None:
        """Open the runtime again next time (after the engine was unreachable)."""
        with self._lock:
            if not self._runtime_fixed:
                self._runtime_opened = None

    def health(self) -> Health:
        """Whether the engine answers, and its version."""
        rt = self.runtime()
        if self._health is not None:
            return self._health(rt)
        return rt.health()

    def up(self, sink: Sink) -> UpOutcome:
        """Build and run the branch's environment beside the baseline, reporting to ``sink``."""
        if self._up is not None:
            return self._up(sink)
        return up(self.project, self.branch, sink=sink, rt=self.runtime())

    def route_plan(self) -> RoutePlan:
        """The routing plan as the runtime applies it: environments and release strategies."""
        return self.runtime().route_plan()

    # --- the manifest repo ----------------------------------------------------------------

    def manifest_settings(self) -> ManifestSettings:
        """Where the manifest repo is; a UserInputError when none is configured."""
        if self._manifests is None:
            return manifest_settings(self.project)
        if callable(self._manifests):
            return self._manifests()
        return self._manifests

    def checkout(self, notify: Callable[[str], None] | None = None) -> AbstractContextManager[Checkout]:
        """The locked, cached clone at the remote tip (git and the network: call from a worker)."""
        return open_checkout(self.manifest_settings(), notify=notify or (lambda _: None))

    def publish(self, local_image: str, service: str) -> ImageRef:
        """Push a branch's local image to the registry; the digest the registry gave."""
        if self._publish is not None:
            return self._publish(local_image, service)
        settings = self.manifest_settings()
        return publish_image(local_image, settings.registry, self.project.app, service)
