"""One forked service kept in step with its sources: plan, send, reload — or rebuild.

``ServiceSync.handle`` takes a change set, merges it with what is still pending from a failed
attempt, and either

- sends the plan to every container of the service (deletions, then one tar stream each) and
  runs the reload action, emitting ``SyncDone``; or
- when a path calls for it (``rebuild_on``, the Dockerfile, a path no rule covers), asks for a
  rebuild and redeploy of the service, emitting ``SyncDone`` with result ``rebuilt``.

A failure emits ``SyncFailed`` with the reason and keeps the change set, so the next change
retries it. Refused paths are reported once (``SyncRefused``) and dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from devmesh.errors import DevmeshError
from devmesh.events import Sink, Step, Warning, discard
from devmesh.sync.archive import Archive, build_archive
from devmesh.sync.changes import ChangeSet, SyncPlan, plan_sync
from devmesh.sync.events import FailedResult, SyncDone, SyncFailed, SyncRefused
from devmesh.sync.reload import RESTART, apply_reload, describe, reload_action
from devmesh.sync.rules import ServiceSources
from devmesh.sync.transport import NotWritable, ReloadWithApply, Target, TargetGone, Transport
from devmesh.units import byte_size

Rebuild = Callable[[str], None]
# Container states a sync can still reach: a stopped container takes files and is started by
# its reload (a crash after a bad save must not need a rebuild to recover from).
_STOPPED = ("exited", "created")


def _names(paths: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class ServiceSync:
    """Live sync of one service into its containers in one environment."""

    def __init__(self, sources: ServiceSources, env: str, transport: Transport, *,
                 sink: Sink = discard, rebuild: Rebuild | None = None,
                 refresh: Callable[[], ServiceSources] | None = None) -> None:
        self.sources = sources
        self.service = sources.service
        self.env = env
        self.transport = transport
        self.sink = sink
        self.rebuild = rebuild
        self.refresh = refresh
        self.pending = ChangeSet()
        self._lock = threading.Lock()

    def handle(self, changes: ChangeSet) -> SyncDone | SyncFailed | None:
        """Bring the containers in step with ``changes`` (and anything pending)."""
        with self._lock:
            started = time.monotonic()
            self.pending.merge(changes)
            plan = plan_sync(self.sources, self.pending)
            for refusal in plan.refused:
                self.sink(SyncRefused(
                    f"{self.service}: not syncing {refusal.path}: {refusal.reason}",
                    service=self.service, env=self.env, path=refusal.path, reason=refusal.reason))
            self.pending.discard(r.path for r in plan.refused)
            if plan.rebuild:
                return self._rebuild(plan, started)
            if not plan.uploads and not plan.deletions:
                self.pending.clear()
                return None
            return self._send(plan, started)

    # --- sync ---------------------------------------------------------------------------------

    def _fail(self, plan: SyncPlan, started: float, reason: str, result: FailedResult = "failed",
              archive: Archive | None = None) -> SyncFailed:
        ms = (time.monotonic() - started) * 1000
        event = SyncFailed(
            f"{self.service}: sync of {_names(plan.handled)} failed after {ms:.0f} ms: {reason}; "
            "the next change retries it",
            service=self.service, env=self.env, result=result, reason=reason,
            files=plan.files, deleted=len(plan.deletions), bytes=archive.size if archive else 0,
            ms=ms, paths=plan.handled)
        self.sink(event)
        return event

    def _owner_advice(self, refused: NotWritable) -> str:
        """What the Dockerfile can do about a sync target its container's user cannot write."""
        inference = self.sources.inference
        if refused.why == "Read-only file system":
            return ""
        rule = next((r for r in self.sources.rules
                     if PurePosixPath(refused.path).is_relative_to(r.dest)), None)
        where = f" ({rule.origin})" if rule is not None and rule.origin else ""
        if inference is not None and inference.user not in (None, "root", "0", "0:0"):
            return (f"; {inference.dockerfile} runs the service as {inference.user} (USER) and its "
                    f"COPY{where} leaves the files to root: COPY --chown={inference.user} makes them theirs")
        return f"; give the files of the sync rule{where} to the container's user (COPY --chown=…)"

    def _gone(self, targets: Sequence[Target]) -> str:
        if not targets:
            return (f"no container of {self.service} in environment {self.env} (it was removed); "
                    "'devmesh up' starts it again")
        states = ", ".join(f"{t.name} is {t.state}" for t in targets)
        return f"{states}; 'devmesh up' starts it again"

    def _send(self, plan: SyncPlan, started: float) -> SyncDone | SyncFailed | None:
        archive = build_archive(plan.uploads) if plan.uploads else None
        try:
            if archive is not None and archive.files == 0 and not plan.deletions:
                self.pending.clear()  # every file vanished since: their deletions come next
                return None
            try:
                targets = self.transport.targets(self.env, self.service)
            except DevmeshError as exc:
                return self._fail(plan, started, str(exc), archive=archive)
            usable = [t for t in targets if t.state == "running" or t.state in _STOPPED]
            if not usable:
                return self._fail(plan, started, self._gone(targets), "gone", archive)
            action = reload_action(self.sources.reload)
            try:
                # Where the transport can, the reload goes in the call that applies the files.
                reloaded: set[str] = set()
                for target in usable:
                    if (isinstance(self.transport, ReloadWithApply) and target.state == "running"
                            and self.transport.apply_and_reload(target, archive, plan.deletions, action)):
                        reloaded.add(target.id)
                    else:
                        self.transport.apply(target, archive, plan.deletions)
                for target in usable:
                    if target.id in reloaded:
                        continue
                    # A stopped container cannot take a signal or run a command: start it.
                    apply_reload(self.transport, target, action if target.state == "running" else RESTART)
            except TargetGone as exc:
                return self._fail(plan, started, f"{exc}; 'devmesh up' starts it again", "gone", archive)
            except NotWritable as exc:
                return self._fail(plan, started, str(exc) + self._owner_advice(exc), archive=archive)
            except DevmeshError as exc:
                return self._fail(plan, started, str(exc), archive=archive)
            ms = (time.monotonic() - started) * 1000
            self.pending.clear()
            size = archive.size if archive else 0
            what = [f"{_count(plan.files, 'file')}, {byte_size(size)}"] if plan.files else []
            if plan.deletions:
                what.append(f"{len(plan.deletions)} removed")
            done = SyncDone(
                f"{self.service}: synced {_names(plan.handled)} ({'; '.join(what)}) into "
                f"{_count(len(usable), 'container')}, {describe(action)} — {ms:.0f} ms",
                service=self.service, env=self.env, result="synced", files=plan.files,
                deleted=len(plan.deletions), bytes=size, ms=ms, containers=len(usable),
                reload=action.action, paths=plan.handled)
            self.sink(done)
            return done
        finally:
            if archive is not None:
                archive.close()

    # --- rebuild ------------------------------------------------------------------------------

    def _rebuild(self, plan: SyncPlan, started: float) -> SyncDone | SyncFailed:
        path, why = plan.rebuild[0]
        more = f" and {len(plan.rebuild) - 1} more" if len(plan.rebuild) > 1 else ""
        self.sink(Step(f"{self.service}: {path} changed ({why}){more}: rebuilding and redeploying",
                       service=self.service, env=self.env))
        if self.rebuild is None:
            return self._fail(plan, started, "a rebuild is needed and this sync cannot run one; "
                              "run 'devmesh up'")
        try:
            self.rebuild(self.service)
        except DevmeshError as exc:
            return self._fail(plan, started, f"rebuild failed: {exc}")
        self.pending.clear()
        if self.refresh is not None:
            try:
                self.sources = self.refresh()  # .dockerignore, the Dockerfile or the rules may have changed
            except DevmeshError as exc:
                self.sink(Warning(f"{self.service}: keeping the sync rules it had: {exc}"))
        ms = (time.monotonic() - started) * 1000
        done = SyncDone(f"{self.service}: rebuilt and redeployed in {ms / 1000:.1f} s",
                        service=self.service, env=self.env, result="rebuilt", ms=ms,
                        paths=plan.handled)
        self.sink(done)
        return done
