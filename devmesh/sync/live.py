"""Live sync of an environment: one watcher thread per forked service, until stopped.

The use cases (``devmesh.app.live``: ``devmesh sync``, ``devmesh up``, the TUI) check that
syncing makes sense — ``check_branch``: the branch is checked out (sync copies the working
tree) and is not the baseline; its environment runs — and build a ``LiveSync`` from
``sync_engines``, giving it how to rebuild: a rebuild is theirs to do (``devmesh up`` for the
same branch), never this floor's.

If the checked-out branch changes while syncing (``git switch``), the working tree no longer
belongs to the environment: live sync stops and says so instead of copying another branch's
files into it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devmesh.errors import UserInputError
from devmesh.events import Sink, discard
from devmesh.naming import BASELINE_ENV
from devmesh.sync.changes import ChangeSet
from devmesh.sync.engine import ServiceSync
from devmesh.sync.events import SyncFailed
from devmesh.sync.reload import describe, reload_action
from devmesh.sync.rules import ServiceSources
from devmesh.sync.transport import ReloadCheck, Transport
from devmesh.sync.watcher import SourceWatcher
from devmesh.workspace import open_repo

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.workspace import Branch


class HeadGuard:
    """Notices when the repository's checked-out branch (or detached commit) changes."""

    def __init__(self, head_file: Path) -> None:
        self.head_file = head_file
        self.initial = self._read()

    @classmethod
    def for_project(cls, project: Project) -> HeadGuard:
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
    lines = []
    for name in services:
        src = ServiceSources.of(project, name)
        rules = ", ".join(f"{r.src or '.'} → {r.dest}" for r in src.rules) or "no sync rules (every change rebuilds)"
        if src.inference is not None:
            rules += f" (from {src.inference.dockerfile})"
        rebuild = ", ".join(p.text for p in src.rebuild_on) or "-"
        lines.append(f"{name}: {rules}; rebuild on {rebuild}; after a sync: "
                     f"{describe(reload_action(src.reload))}")
    return lines


def sync_engines(project: Project, env: str, forks: Sequence[str], transport: Transport, *,
                 rebuild: Callable[[str], None], sink: Sink) -> list[ServiceSync]:
    """One engine per forked service of ``env``; a reload the transport cannot do is refused
    first (UserInputError). ``rebuild(service)`` rebuilds and redeploys when a change needs it."""
    sources = [ServiceSources.of(project, name) for name in forks]
    if isinstance(transport, ReloadCheck):
        for src in sources:
            if src.rules:  # without rules every change rebuilds: no reload ever runs
                transport.check_reload(env, src.service, reload_action(src.reload))
    return [
        ServiceSync(src, env, transport, sink=sink, rebuild=rebuild,
                    refresh=functools.partial(ServiceSources.of, project, src.service))
        for src in sources
    ]


def check_branch(branch: Branch) -> None:
    """A UserInputError unless ``branch`` can be synced: checked out, and not the baseline."""
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
