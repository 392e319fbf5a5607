"""What runs in a container after files were synced into it.

The action is the service's ``reload`` (set in devmesh.yaml or by its preset): ``restart``
the container, send it a ``signal``, run a ``command`` in it, or ``none`` (the app reloads by
itself, e.g. a server started with a reload flag). A service with no ``reload`` is restarted:
that picks up new code in any process.

On the docker runtime a restart keeps the container's writable layer, so the synced files
survive it; the process is stopped with SIGTERM and killed after ``stop_timeout`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from devmesh.config import ReloadAction
from devmesh.plan.supervisor import RELOAD_GRACE
from devmesh.sync.transport import Target, Transport

RESTART = ReloadAction(action="restart")


def reload_action(configured: ReloadAction | None) -> ReloadAction:
    """The action to run: the configured one, else a restart."""
    return configured if configured is not None else RESTART


def describe(action: ReloadAction) -> str:
    """The action in a few words, for events and docs (``restarted``, ``sent SIGHUP``, …)."""
    if action.action == "restart":
        return "restarted"
    if action.action == "signal":
        return f"sent {action.signal}"
    if action.action == "command":
        return f"ran '{' '.join(action.command)}'"
    return "no reload"


def wait_drained(active: Callable[[], int | None], *, interval: float, first: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 pause: Callable[[float], None] = time.sleep) -> int | None:
    """Before a reload under the supervisor: ask ``active`` (the mesh's count of requests in
    flight to the container; ``first`` when already asked) every ``interval`` seconds until it
    is 0, or None (the count cannot be had), for at most RELOAD_GRACE seconds; the last answer."""
    count = active() if first is None else first
    deadline = clock() + RELOAD_GRACE
    while count is not None and count > 0 and clock() < deadline:
        pause(interval)
        count = active()
    return count


def apply_reload(transport: Transport, target: Target, action: ReloadAction) -> None:
    """Carry out ``action`` on ``target``; the transport's errors propagate."""
    if action.action == "restart":
        transport.restart(target)
    elif action.action == "signal":
        transport.signal(target, action.signal)
    elif action.action == "command":
        transport.run(target, action.command)
