"""Events of live sync; the CLI prints their ``message``, the TUI shows their fields.

``SyncDone`` and ``SyncFailed`` carry the same figures (files, bytes, milliseconds) and a
``result``: ``synced`` or ``rebuilt`` for the first; ``failed``, ``gone`` (no running
container) or ``stopped`` (live sync ended, e.g. the branch changed) for the second.
``SyncFailed`` and ``SyncRefused`` are warnings, so a printer that knows only the core events
shows them as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from devmesh.events import Event, Warning

DoneResult = Literal["synced", "rebuilt"]
FailedResult = Literal["failed", "gone", "stopped"]


@dataclass(frozen=True)
class SyncDone(Event):
    """A change set reached every running container of a service (and they were reloaded)."""

    service: str = ""
    env: str = ""
    result: DoneResult = "synced"
    files: int = 0  # files and links written
    deleted: int = 0
    bytes: int = 0  # size of the tar stream sent to each container
    ms: float = 0.0
    containers: int = 0
    reload: str = ""
    paths: tuple[str, ...] = ()  # the changed paths, relative to the build context


@dataclass(frozen=True)
class SyncFailed(Warning):
    """A change set did not reach the containers; it is kept and retried with the next one."""

    service: str = ""
    env: str = ""
    result: FailedResult = "failed"
    reason: str = ""
    files: int = 0
    deleted: int = 0
    bytes: int = 0
    ms: float = 0.0
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncRefused(Warning):
    """A path was not synced because it could place something outside the destination."""

    service: str = ""
    env: str = ""
    path: str = ""
    reason: str = ""
