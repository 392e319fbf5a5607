"""Events emitted by long-running work (builds, applies, syncs); the CLI prints them, the TUI shows them."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Event:
    """Something that happened; ``message`` is a one-line text for people."""

    message: str
    at: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class Step(Event):
    """A step of an operation began or finished (network created, container started, …)."""

    kind: str = "step"
    service: str | None = None
    env: str | None = None
    changed: bool = True


@dataclass(frozen=True)
class BuildProgress(Event):
    """A line of build output; ``step``/``steps`` when the builder said 'Step 3/7'."""

    service: str = ""
    step: int | None = None
    steps: int | None = None


@dataclass(frozen=True)
class BuildDone(Event):
    service: str = ""
    image: str = ""
    cached: bool = False
    seconds: float = 0.0


@dataclass(frozen=True)
class Warning(Event):  # noqa: A001 - a domain event, not the builtin
    pass


Sink = Callable[[Event], None]


def discard(_: Event) -> None:
    """A sink that ignores every event."""
