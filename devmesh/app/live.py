"""Live sync as a use case: ``devmesh sync``, ``devmesh up`` while it follows the logs, the TUI.

The sync core (``devmesh.sync``) copies saved files into the running versions; what needs a
rebuild comes back here and goes down again through ``devmesh.app.environments.up`` for the
same branch on the same runtime — exactly what ``devmesh up`` does: the changed service gets
a new image and version, the rest is found up to date.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from devmesh.app.environments import UpOutcome, open_runtime, up
from devmesh.build import content_tag
from devmesh.config import Project
from devmesh.errors import UserInputError
from devmesh.events import Sink, Warning, discard
from devmesh.naming import BASELINE_ENV
from devmesh.runtime.base import Runtime
from devmesh.sync.live import HeadGuard, LiveSync, check_branch, sync_engines
from devmesh.workspace import Branch, changed_services, current_branch


class Rebuild:
    """Rebuild and redeploy the environment of ``branch`` through ``up`` on ``rt``."""

    _lock = threading.Lock()  # one rebuild at a time, whichever service asks

    def __init__(self, project: Project, branch: Branch, forks: Sequence[str], rt: Runtime, *,
                 sink: Sink) -> None:
        self.project = project
        self.branch = branch
        self.forks = tuple(forks)
        self.rt = rt
        self.sink = sink

    def __call__(self, service: str) -> None:
        del service  # up rebuilds whatever changed
        with self._lock:
            # Forks the branch's changes alone would not make (an 'up --all') are kept.
            fork_all = bool(set(self.forks) - set(changed_services(self.project, self.branch)))
            up(self.project, self.branch.name, fork_all=fork_all, sink=self.sink, rt=self.rt)


def _stale(project: Project, rt: Runtime, env: str, services: Sequence[str], sink: Sink) -> None:
    """Warn about versions built from other sources than the working tree now holds."""
    state = {e.name: e for e in rt.environments()}.get(env)
    if state is None:
        return
    for s in state.services:
        # An image pinned by digest (the kind runtime's) carries no source tag to compare.
        if s.service in services and s.env == env and s.image and "@" not in s.image:
            if s.image.rsplit(":", 1)[-1] != content_tag(project, s.service):
                sink(Warning(f"{s.service}: the running container was built from other sources "
                             "than your working tree holds (edits made while nothing synced); "
                             "changes from now on are synced — 'devmesh up' rebuilds it"))


def _live_sync(project: Project, branch: Branch, forks: Sequence[str], rt: Runtime,
               sink: Sink) -> LiveSync:
    transport = rt.sync_transport()
    engines = sync_engines(project, branch.env, forks, transport, sink=sink,
                           rebuild=Rebuild(project, branch, forks, rt, sink=sink))
    return LiveSync(engines, sink=sink, guard=HeadGuard.for_project(project))


def open_live_sync(project: Project, branch: str | None = None, *, runtime: str | None = None,
                   sink: Sink = discard, rt: Runtime | None = None) -> LiveSync:
    """Live sync for the running environment of ``branch`` (default: the checked-out one) on
    ``rt`` (default: the runtime ``runtime`` names)."""
    chosen = current_branch(project, branch)
    check_branch(chosen)
    if rt is None:
        rt = open_runtime(project, runtime)
    transport = rt.sync_transport()
    forks = [name for name in project.services if transport.targets(chosen.env, name)]
    if not forks:
        raise UserInputError(f"environment {chosen.env} (branch {chosen.label}) is not running",
                             hint="'devmesh up' starts it, and syncs while it follows the logs")
    _stale(project, rt, chosen.env, forks, sink)
    return _live_sync(project, chosen, forks, rt, sink)


def live_sync_after_up(project: Project, outcome: UpOutcome, rt: Runtime, *,
                       sink: Sink = discard) -> LiveSync | None:
    """Live sync for the environment ``up`` just brought up on ``rt``, or None (with a note to
    ``sink`` when it cannot be synced) when there is nothing to sync."""
    branch = outcome.selection.branch
    forks = outcome.selection.environment.forks
    if branch.env == BASELINE_ENV or not forks:
        return None  # the baseline runs the baseline branch's commit: nothing of yours to sync
    try:
        check_branch(branch)
        return _live_sync(project, branch, forks, rt, sink)
    except UserInputError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        sink(Warning(f"not syncing: {exc}{hint}"))
        return None
