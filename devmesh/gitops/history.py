"""Promotions and rollbacks, read from the trailers in git log (git is the database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from devmesh.errors import UserInputError
from devmesh.gitops import trailers as t
from devmesh.gitops.cache import Checkout
from devmesh.gitops.images import ImageRef, parse_image_ref

_FIELD = "%x1f"
_RECORD = "%x1e"
_FORMAT = _FIELD.join(["%H", "%an", "%ae", "%aI", "%s", "%(trailers:only=true,unfold=true)"]) + _RECORD


@dataclass(frozen=True)
class HistoryEntry:
    """One promotion or rollback commit."""

    commit: str
    kind: Literal["promote", "rollback"]
    service: str
    tier: str
    image: ImageRef | None
    previous: ImageRef | None
    author: str
    email: str
    date: datetime
    subject: str
    reason: str | None = None
    reverts: str | None = None

    @property
    def forced(self) -> bool:
        return self.reason is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.commit,
            "kind": self.kind,
            "service": self.service,
            "tier": self.tier,
            "image": str(self.image) if self.image else None,
            "from": str(self.previous) if self.previous else None,
            "author": self.author,
            "email": self.email,
            "date": self.date.isoformat(),
            "subject": self.subject,
            "forced": self.forced,
            "reason": self.reason,
            "reverts": self.reverts,
        }


def _image(value: str | None) -> ImageRef | None:
    if not value or value == t.NONE:
        return None
    return parse_image_ref(value)


def _entry(record: str) -> HistoryEntry | None:
    parts = record.strip("\n").split("\x1f")
    if len(parts) != 6:
        return None
    commit, author, email, date, subject, block = parts
    found = t.parse_trailers(block)
    if t.SERVICE not in found or t.TIER not in found:
        return None
    try:
        image, previous = _image(found.get(t.IMAGE)), _image(found.get(t.FROM))
    except UserInputError:
        return None  # a hand-written trailer that is not ours to interpret
    reverts = found.get(t.REVERTS)
    return HistoryEntry(
        commit=commit,
        kind="rollback" if reverts else "promote",
        service=found[t.SERVICE],
        tier=found[t.TIER],
        image=image,
        previous=previous,
        author=author,
        email=email,
        date=datetime.fromisoformat(date),
        subject=subject,
        reason=found.get(t.REASON),
        reverts=reverts,
    )


def read_history(
    checkout: Checkout, service: str | None = None, tier: str | None = None
) -> list[HistoryEntry]:
    """Promotions and rollbacks on the manifest branch, newest first."""
    if checkout.tip is None:
        return []
    out = checkout.git(
        "log", f"--format={_FORMAT}", "--grep", f"^{t.SERVICE}: ", "HEAD", "--", checkout.settings.path
    )
    entries = []
    for record in out.split("\x1e"):
        entry = _entry(record)
        if entry is None:
            continue
        if service is not None and entry.service != service:
            continue
        if tier is not None and entry.tier != tier:
            continue
        entries.append(entry)
    return entries
