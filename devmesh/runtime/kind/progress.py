"""How far the kind runtime's ``up`` got, for the one line it reports when the API server
goes away half-way.

``up`` writes objects one at a time and rolls nothing back: an object written stays written.
When the API server stops answering in the middle, the user is told how many objects were
applied, which, what was not yet, and that the next ``up`` finishes the rest (objects already
applied carry the fingerprint of what was applied, so it writes only what is missing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from devmesh.runtime.kind.errors import ClusterUnreachable

# How many names a list in the message shows before "and N more", so the line stays readable:
# objects applied, and Deployments ready or not.
SHOWN = 3
SHOWN_ROLLOUT = 4


class UpInterrupted(ClusterUnreachable):
    """The API server stopped answering in the middle of ``up``; the message says how far it got."""


def _some(items: Sequence[str], shown: int = SHOWN) -> str:
    """``a, b, c and 2 more``."""
    if len(items) <= shown:
        return ", ".join(items)
    return f"{', '.join(items[:shown])} and {len(items) - shown} more"


@dataclass
class UpProgress:
    """What ``up`` has done so far: objects applied (by verb), what it is doing after them."""

    objects: Sequence[str]
    """Every object ``up`` applies, as "Kind name", in the order it applies them."""
    done: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    phase: str = ""
    """Empty while applying; else what comes after the applies ("while waiting for the rollout")."""
    removed: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)

    def applied(self, verb: str | None) -> None:
        """The next object is done: ``created``, ``updated``, or None when it was unchanged."""
        what = self.objects[self.done]
        if verb == "created":
            self.created.append(what)
        elif verb == "updated":
            self.updated.append(what)
        self.done += 1

    def rolled_out(self, what: str) -> None:
        """``what`` ("api (one)"), one of ``waiting``, is ready."""
        self.waiting.remove(what)
        self.ready.append(what)

    def interrupted(self, exc: ClusterUnreachable, context: str) -> UpInterrupted:
        """The one-line error for ``exc`` happening now."""
        server = exc.server or f"the API server of context {context!r}"
        why = f" ({exc.why})" if exc.why else ""
        total = len(self.objects)
        if self.phase:
            head = f"{server} stopped answering {self.phase}, after all {total} objects were applied{why}"
        else:
            head = f"{server} stopped answering after {self.done} of {total} objects{why}"
        parts = [f"{verb} {_some(names)}" for verb, names in (("created", self.created), ("updated", self.updated))
                 if names]
        unchanged = self.done - len(self.created) - len(self.updated)
        if unchanged:
            parts.append(f"{unchanged} already up to date")
        left = list(self.objects[self.done:])
        if left:
            parts.append(f"not yet {_some(left, 1)}")
        if self.removed:
            parts.append(f"removed {_some(self.removed)}")
        if self.ready:
            parts.append(f"ready: {_some(self.ready, SHOWN_ROLLOUT)}")
        if self.waiting:
            parts.append(f"not ready yet: {_some(self.waiting, SHOWN_ROLLOUT)}")
        changed = ("nothing was rolled back" if self.created or self.updated or self.removed
                   else "nothing was changed")
        message = f"{head}: {'; '.join(parts)}; {changed}: run `devmesh up` again to finish"
        return UpInterrupted(message, hint=exc.hint or "is it running? 'devmesh cluster status' shows each part",
                             server=exc.server, why=exc.why)
