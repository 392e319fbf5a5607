"""Live sync of an environment: one watcher thread per forked service, until stopped.

``open_live_sync`` (``devmesh sync``) and ``live_sync_after_up`` (``devmesh up``) check that
syncing makes sense — the branch is checked out (sync copies the working tree), it is not the
baseline, its environment runs — and build a ``LiveSync``. A rebuild goes through
``devmesh.session.up`` for the same branch, so it is exactly what ``devmesh up`` would do:
the changed service gets a new image and container, the rest is found up to date.

If the checked-out branch changes while syncing (``git switch``), the working tree no longer
belongs to the environment: live sync stops and says so instead of copying another branch's
files into it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devmesh.errors import UserInputError
from devmesh.events import Sink, Warning, discard
from devmesh.naming import BASELINE_ENV
from devmesh.sync.changes import ChangeSet
from devmesh.sync.engine import ServiceSync
from devmesh.sync.events import SyncFailed
from devmesh.sync.rules import ServiceSources
from devmesh.sync.transport import ReloadCheck, Transport, transport_for
from devmesh.sync.watcher import SourceWatcher

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.session import UpOutcome
    from devmesh.workspace import Branch


class HeadGuard:
    """Notices when the repository's checked-out branch (or detached commit) changes."""

    def __init__(self, head_file: Path) -> None:
        self.head_file = head_file
        self.initial = self._read()

    @classmethod
    def for_project(cls, project: Project) -> HeadGuard:
        from devmesh.workspace import open_repo

        with open_repo(project.root) as repo:
            return cls(Path(repo.git_dir) / "HEAD")

    def _read(self) -> str:
        try:
            return self.head_file.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""

    def moved(self) -> str | None:
        """The new HEAD (``ref: refs/heads/x`` or a commit) when it changed, else None."""
        now = self._read()
        return now if now and now != self.initial else None


class SessionRebuild:
    """Rebuild and redeploy through ``devmesh.session.up`` for the environment's branch."""

    _lock = threading.Lock()  # one rebuild at a time, whichever service asks

    def __init__(self, project: Project, branch: Branch, forks: Sequence[str], *,
                 runtime: str | None, sink: Sink, **up_options: Any) -> None:
        self.project = project
        self.branch = branch
        self.forks = tuple(forks)
        self.runtime = runtime
        self.sink = sink
        self.up_options = up_options  # passed on to session.up (e.g. a kube context)

    def __call__(self, service: str) -> None:
        from devmesh import session
        from devmesh.workspace import changed_services

        with self._lock:
            # Forks the branch's changes alone would not make (an 'up --all') are kept.
            fork_all = bool(set(self.forks) - set(changed_services(self.project, self.branch)))
            session.up(self.project, self.branch.name, fork_all=fork_all, runtime=self.runtime,
                       sink=self.sink, **self.up_options)


class LiveSync:
    """Watches each engine's sources in a thread of its own and feeds its change sets in."""

    def __init__(self, engines: Sequence[ServiceSync], *, sink: Sink = discard,
                 guard: HeadGuard | None = None, step_ms: int | None = None,
                 debounce_ms: int | None = None) -> None:
        self.engines = list(engines)
        self.sink = sink
        self.guard = guard
        self.stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._watchers: list[SourceWatcher] = []
        self._timing: dict[str, int] = {}
        if step_ms is not None:
            self._timing["step_ms"] = step_ms
        if debounce_ms is not None:
            self._timing["debounce_ms"] = debounce_ms

    @property
    def env(self) -> str:
        return self.engines[0].env if self.engines else ""

    def _handle(self, engine: ServiceSync, changes: ChangeSet) -> None:
        moved = self.guard.moved() if self.guard is not None else None
        if moved is not None:
            if not self.stopped.is_set():
                what = moved.removeprefix("ref: refs/heads/")
                reason = (f"the checked-out branch changed (now {what[:40]}): the working tree no "
                          f"longer belongs to environment {engine.env}; live sync stopped "
                          "('devmesh up' runs the new branch)")
                self.sink(SyncFailed(reason, service=engine.service, env=engine.env,
                                     result="stopped", reason=reason))
            self.stopped.set()
            return
        engine.handle(changes)

    def _error(self, engine: ServiceSync, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.sink(SyncFailed(f"{engine.service}: live sync hit an error: {reason}",
                             service=engine.service, env=engine.env, reason=reason))

    def _watcher(self, engine: ServiceSync) -> SourceWatcher:
        def sources() -> ServiceSources:
            return engine.sources  # replaced after a rebuild

        def handle(changes: ChangeSet) -> None:
            self._handle(engine, changes)

        def error(exc: BaseException) -> None:
            self._error(engine, exc)

        return SourceWatcher(sources, handle, self.stopped, on_error=error, **self._timing)

    def start(self) -> None:
        for engine in self.engines:
            watcher = self._watcher(engine)
            thread = threading.Thread(target=watcher.run, name=f"devmesh-sync-{engine.service}",
                                      daemon=True)
            self._watchers.append(watcher)
            self._threads.append(thread)
            thread.start()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Whether every watcher records events (within ``timeout`` seconds)."""
        return all(w.ready.wait(timeout) for w in self._watchers)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until live sync stops (True) or ``timeout`` passes (False)."""
        return self.stopped.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped.set()
        for thread in self._threads:
            thread.join(timeout)

    def __enter__(self) -> LiveSync:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def describe_rules(project: Project, services: Sequence[str]) -> list[str]:
    """One line per service: what goes where, what rebuilds, and the reload action."""
    from devmesh.sync.reload import describe, reload_action

    lines = []
    for name in services:
        svc = project.services[name]
        rules = ", ".join(f"{r.src} → {r.dest}" for r in svc.sync) or "no sync rules (every change rebuilds)"
        rebuild = ", ".join(svc.rebuild_on) or "-"
        lines.append(f"{name}: {rules}; rebuild on {rebuild}; after a sync: "
                     f"{describe(reload_action(svc.reload))}")
    return lines


def _stale(project: Project, rt: Any, env: str, services: Sequence[str], sink: Sink) -> None:
    """Warn about containers built from other sources than the working tree now holds."""
    from devmesh.build import content_tag

    states = {e.name: e for e in rt.environments()}
    state = states.get(env)
    if state is None:
        return
    for s in state.services:
        # An image pinned by digest (the kind runtime's) carries no source tag to compare.
        if s.service in services and s.env == env and s.image and "@" not in s.image:
            if s.image.rsplit(":", 1)[-1] != content_tag(project, s.service):
                sink(Warning(f"{s.service}: the running container was built from other sources "
                             "than your working tree holds (edits made while nothing synced); "
                             "changes from now on are synced — 'devmesh up' rebuilds it"))


def _engines(project: Project, branch: Branch, forks: Sequence[str], transport: Transport, *,
             runtime: str | None, sink: Sink, up_options: dict[str, Any]) -> list[ServiceSync]:
    from devmesh.sync.reload import reload_action

    sources = [ServiceSources.of(project, name) for name in forks]
    if isinstance(transport, ReloadCheck):
        for src in sources:
            if src.rules:  # without rules every change rebuilds: no reload ever runs
                transport.check_reload(src.service, reload_action(src.reload))
    rebuild = SessionRebuild(project, branch, forks, runtime=runtime, sink=sink, **up_options)
    return [
        ServiceSync(src, branch.env, transport, sink=sink, rebuild=rebuild,
                    refresh=functools.partial(ServiceSources.of, project, src.service))
        for src in sources
    ]


def _check_branch(branch: Branch) -> None:
    if branch.env == BASELINE_ENV:
        raise UserInputError(
            f"{branch.label} is the baseline branch: the baseline runs its commit, not your "
            "working tree, so there is nothing to sync",
            hint="switch to a feature branch and run 'devmesh up'")
    if not branch.is_current:
        raise UserInputError(
            f"branch {branch.label} is not checked out: live sync copies your working tree, "
            "which holds another branch",
            hint=f"check it out first (git switch {branch.label})")


def open_live_sync(project: Project, branch: str | None = None, *, runtime: str | None = None,
                   sink: Sink = discard) -> LiveSync:
    """Live sync for the running environment of ``branch`` (default: the checked-out one)."""
    from devmesh import session
    from devmesh.workspace import current_branch

    chosen = current_branch(project, branch)
    _check_branch(chosen)
    rt = session.open_runtime(project, runtime)
    transport = transport_for(rt)
    forks = [name for name in project.services if transport.targets(chosen.env, name)]
    if not forks:
        raise UserInputError(f"environment {chosen.env} (branch {chosen.label}) is not running",
                             hint="'devmesh up' starts it, and syncs while it follows the logs")
    _stale(project, rt, chosen.env, forks, sink)
    engines = _engines(project, chosen, forks, transport, runtime=runtime, sink=sink, up_options={})
    return LiveSync(engines, sink=sink, guard=HeadGuard.for_project(project))


def live_sync_after_up(project: Project, outcome: UpOutcome, rt: Any, *, runtime: str | None = None,
                       sink: Sink = discard, **up_options: Any) -> LiveSync | None:
    """Live sync for the environment ``devmesh up`` just brought up on ``rt``, or None (with a
    note to ``sink`` when it cannot be synced) when there is nothing to sync. ``up_options``
    are the other arguments ``up`` gave ``session.up``; a rebuild passes them again."""
    branch = outcome.selection.branch
    forks = outcome.selection.environment.forks
    if branch.env == BASELINE_ENV or not forks:
        return None  # the baseline runs the baseline branch's commit: nothing of yours to sync
    try:
        _check_branch(branch)
        transport = transport_for(rt)
        engines = _engines(project, branch, forks, transport, runtime=runtime, sink=sink,
                           up_options=up_options)
    except UserInputError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        sink(Warning(f"not syncing: {exc}{hint}"))
        return None
    return LiveSync(engines, sink=sink, guard=HeadGuard.for_project(project))
