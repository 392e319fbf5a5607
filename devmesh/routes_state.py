"""Where the strategies applied to an app's running environments are kept between commands.

One small JSON file per app, in the runtime's state directory next to its other per-app files
(the docker runtime: ``<state dir>/<app>/strategies.json``, beside the Envoy files)::

    {"version": 1, "strategies": [{"kind": "canary", "service": "web", "env": "feat",
                                   "weight": 20, "sticky_header": "x-user-id", ...}]}

Why a file and not labels on containers: a container's labels cannot change without recreating
it, and a strategy must take effect without restarting anything. Why not only the rendered
Envoy files: those are derived (``up`` and ``down`` re-render them from the environments and
these strategies), and the same record serves a runtime that has no Envoy files (kind).

Every change is a read-modify-write under an exclusive ``flock`` on ``strategies.json.lock``,
and the file is replaced by a rename, so two commands at once never lose each other's change
and a reader never sees half a file. Strategies name an environment; when that environment
goes, ``prune`` drops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from devmesh.errors import DevmeshError
from devmesh.plan.routing import plan_for_project
from devmesh.plan.strategy import Strategy, from_json, to_json

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.plan.routing import Environment, RoutePlan

STATE_FILE = "strategies.json"
VERSION = 1


class StrategyStore:
    """The strategies of one app, keyed by service (a service has at most one)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / STATE_FILE

    def load(self) -> tuple[Strategy, ...]:
        """The stored strategies; none when the file does not exist."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ()
        except OSError as exc:
            raise self._broken(f"cannot read it: {exc.strerror}") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise ValueError(f"expected an object with \"version\": {VERSION}")
            items = data.get("strategies")
            if not isinstance(items, list):
                raise ValueError("expected a \"strategies\" list")
            return tuple(from_json(item) for item in items)
        except ValueError as exc:
            raise self._broken(str(exc)) from None

    def put(self, strategy: Strategy) -> Strategy | None:
        """Store ``strategy`` for its service; the one it replaced, if any."""
        with self._locked():
            current = list(self.load())
            old = next((s for s in current if s.service == strategy.service), None)
            self._write([s for s in current if s.service != strategy.service] + [strategy])
        return old

    def remove(self, service: str) -> Strategy | None:
        """Drop the service's strategy; the one removed, if any."""
        with self._locked():
            current = list(self.load())
            old = next((s for s in current if s.service == service), None)
            if old is not None:
                self._write([s for s in current if s.service != service])
        return old

    def prune(self, keep: Callable[[Strategy], bool]) -> list[Strategy]:
        """Drop the strategies ``keep`` rejects (e.g. of an environment that went); those dropped."""
        with self._locked():
            current = list(self.load())
            gone = [s for s in current if not keep(s)]
            if gone:
                self._write([s for s in current if keep(s)])
        return gone

    def clear(self) -> None:
        """Forget every strategy (the app's baseline went)."""
        with self._locked():
            self.path.unlink(missing_ok=True)

    # --- internals -------------------------------------------------------------------------

    def _broken(self, why: str) -> DevmeshError:
        return DevmeshError(
            f"the strategies file {self.path} is not usable: {why}",
            hint="delete it to route every service to its baseline again, then re-apply "
                 "strategies (e.g. 'devmesh canary SERVICE')",
        )

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, strategies: Sequence[Strategy]) -> None:
        ordered = sorted(strategies, key=lambda s: s.service)
        text = json.dumps({"version": VERSION, "strategies": [to_json(s) for s in ordered]},
                          indent=2) + "\n"
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)


def _applies_to(project: Project, environments: Sequence[Environment]) -> Callable[[Strategy], bool]:
    """Whether a strategy still applies: its service exists and its environment forks it."""
    forks = {e.name: set(e.forks) for e in environments if not e.is_baseline}
    services = set(project.services)

    def applies(strategy: Strategy) -> bool:
        return strategy.service in services and strategy.service in forks.get(strategy.env, ())

    return applies


def plan_with_strategies(project: Project, environments: Sequence[Environment],
                         store: StrategyStore) -> RoutePlan:
    """The plan for ``environments`` with the stored strategies that still apply to them (every
    runtime plans this way). A read: the store is left as it is (``prune_strategies`` drops
    what no longer applies, when routes are about to be applied)."""
    applies = _applies_to(project, environments)
    return plan_for_project(project, environments, [s for s in store.load() if applies(s)])


def prune_strategies(project: Project, environments: Sequence[Environment],
                     store: StrategyStore) -> list[Strategy]:
    """Drop the stored strategies that no longer apply to ``environments`` (their environment
    went, or no longer forks the service); the ones dropped."""
    applies = _applies_to(project, environments)
    if all(applies(s) for s in store.load()):
        return []
    return store.prune(applies)
