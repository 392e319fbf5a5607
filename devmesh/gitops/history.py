"""Promotions, tier strategies and rollbacks, read from the trailers in git log (git is the
database)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from devmesh.errors import UserInputError
from devmesh.gitops import trailers as t
from devmesh.gitops.cache import Checkout
from devmesh.gitops.images import ImageRef, parse_image_ref
from devmesh.gitops.layout import Layout
from devmesh.gitops.tier_traffic import TierTraffic, from_trailer, state_json, summary

Kind = Literal["promote", "rollback", "canary", "mirror", "switch", "end"]

_FIELD = "%x1f"
# Records are split at NUL (git log -z), which no commit message can hold.
_FORMAT = _FIELD.join(["%H", "%an", "%ae", "%aI", "%s", "%(trailers:only=true,unfold=true)", "%b"])
# What ``git revert`` writes in the body; the first such line names the commit reverted.
_REVERTS = re.compile(r"^This reverts commit ([0-9a-f]{7,64})\b", re.MULTILINE)


@dataclass(frozen=True)
class HistoryEntry:
    """One promotion, tier strategy or rollback commit.

    ``image``/``previous`` are the tier's pin after and before it (only when ``pins``);
    ``traffic``/``traffic_from`` its second version and strategy after and before (None when
    the commit did not change them)."""

    commit: str
    kind: Kind
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
    pins: bool = True
    traffic: TierTraffic | None = None
    traffic_from: TierTraffic | None = None

    @property
    def forced(self) -> bool:
        return self.reason is not None

    @property
    def what(self) -> str:
        """The change in a few words, for tables."""
        parts = []
        if self.pins:
            parts.append(f"{self.previous.short if self.previous else 'none'} → {self.image.short if self.image else 'none'}")
        if self.traffic is not None:
            parts.append(summary(self.traffic))
        return "; ".join(parts)

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
            "pins": self.pins,
            "traffic": state_json(self.traffic) if self.traffic is not None else None,
            "traffic_from": state_json(self.traffic_from) if self.traffic_from is not None else None,
            "changes_traffic": self.traffic is not None,
        }


def _image(value: str | None) -> ImageRef | None:
    if not value or value == t.NONE:
        return None
    return parse_image_ref(value)


@dataclass(frozen=True)
class _Commit:
    """One commit as git log printed it, before it is read as a history entry."""

    commit: str
    author: str
    email: str
    date: datetime
    subject: str
    trailers: dict[str, str]
    reverts: str | None  # the commit named by "This reverts commit <sha>."


def _parse(record: str) -> _Commit | None:
    parts = record.strip("\n").split("\x1f")
    if len(parts) != 7:
        return None
    commit, author, email, date, subject, block, body = parts
    try:
        when = datetime.fromisoformat(date)
    except ValueError:
        return None
    match = _REVERTS.search(body)
    return _Commit(commit, author, email, when, subject, t.parse_trailers(block), match.group(1) if match else None)


def _traffic_kind(state: TierTraffic) -> Kind:
    """A strategy commit's kind: its strategy's, or ``end`` when it goes back to one version."""
    kinds: dict[str, Kind] = {"canary": "canary", "mirror": "mirror", "switch": "switch"}
    return kinds[state.strategy.kind] if state.strategy is not None else "end"


def _own(found: _Commit) -> HistoryEntry | None:
    """A commit devmesh wrote (a promotion, or a rollback with its Devmesh-Reverts trailer)."""
    trailers = found.trailers
    if t.SERVICE not in trailers or t.TIER not in trailers:
        return None
    pins = t.IMAGE in trailers
    try:
        image, previous = _image(trailers.get(t.IMAGE)), _image(trailers.get(t.FROM))
        traffic = from_trailer(trailers[t.TRAFFIC]) if t.TRAFFIC in trailers else None
        traffic_from = from_trailer(trailers.get(t.TRAFFIC_FROM, "none")) if traffic is not None else None
    except (UserInputError, ValueError):
        return None  # a hand-written trailer that is not ours to interpret
    if not pins and traffic is None:
        return None
    reverts = trailers.get(t.REVERTS) or None
    kind: Kind
    if reverts:
        kind = "rollback"
    elif pins:
        kind = "promote"
    else:
        assert traffic is not None
        kind = _traffic_kind(traffic)
    return HistoryEntry(
        commit=found.commit,
        kind=kind,
        service=trailers[t.SERVICE],
        tier=trailers[t.TIER],
        image=image,
        previous=previous,
        author=found.author,
        email=found.email,
        date=found.date,
        subject=found.subject,
        reason=trailers.get(t.REASON),
        reverts=reverts,
        pins=pins,
        traffic=traffic,
        traffic_from=traffic_from,
    )


def _is_plain_revert(found: _Commit) -> bool:
    """A ``git revert`` made outside devmesh: it names a commit that its trailers do not.

    git revert may keep the reverted commit's message (and so its Devmesh-* trailers) in
    the body; only a Devmesh-Reverts trailer naming the same commit makes it devmesh's own.
    """
    if found.reverts is None:
        return False
    own = found.trailers.get(t.REVERTS, "")
    return not (own and (own.startswith(found.reverts) or found.reverts.startswith(own)))


def _undo(found: _Commit, undone: HistoryEntry) -> HistoryEntry:
    """A plain revert of ``undone``: a rollback of a promotion or strategy; a rollback undone
    is read as the change it had reverted, made again."""
    kind: Kind
    if undone.kind != "rollback":
        kind = "rollback"
    elif undone.pins:
        kind = "promote"
    else:
        kind = _traffic_kind(undone.traffic_from or TierTraffic())
    return HistoryEntry(
        commit=found.commit,
        kind=kind,
        service=undone.service,
        tier=undone.tier,
        image=undone.previous,
        previous=undone.image,
        author=found.author,
        email=found.email,
        date=found.date,
        subject=found.subject,
        reverts=undone.commit if undone.kind != "rollback" else None,
        pins=undone.pins,
        traffic=undone.traffic_from,
        traffic_from=undone.traffic,
    )


def _lookup(entries: dict[str, HistoryEntry], sha: str) -> HistoryEntry | None:
    if sha in entries:
        return entries[sha]
    matches = [e for full, e in entries.items() if full.startswith(sha)]
    return matches[0] if len(matches) == 1 else None


def parse_log(out: str) -> list[HistoryEntry]:
    """Promotions, strategies and rollbacks from ``git log -z --format=_FORMAT`` output, newest first.

    Records that are not devmesh's (or are garbled) are skipped; a plain ``git revert`` of
    a promotion or rollback is read as its undo.
    """
    commits = [c for c in (_parse(r) for r in out.split("\0")) if c is not None]
    by_commit: dict[str, HistoryEntry] = {}
    ordered: list[HistoryEntry] = []
    for found in reversed(commits):  # oldest first: a revert comes after what it reverts
        entry: HistoryEntry | None
        if _is_plain_revert(found):
            assert found.reverts is not None
            undone = _lookup(by_commit, found.reverts)
            entry = _undo(found, undone) if undone is not None else None
        else:
            entry = _own(found)
        if entry is not None:
            by_commit[entry.commit] = entry
            ordered.append(entry)
    ordered.reverse()
    return ordered


def read_history(
    checkout: Checkout, service: str | None = None, tier: str | None = None
) -> list[HistoryEntry]:
    """Promotions, tier strategies and rollbacks on the manifest branch, newest first."""
    if checkout.tip is None:
        return []
    out = checkout.git(
        "log", "-z", f"--format={_FORMAT}", "--grep", f"^{t.SERVICE}: ", "--grep", "^This reverts commit ",
        "HEAD", "--", checkout.settings.path,
    )
    return [
        e
        for e in parse_log(out)
        if (service is None or e.service == service) and (tier is None or e.tier == tier)
    ]


def require_known(layout: Layout, entries: list[HistoryEntry], service: str | None, tier: str | None) -> None:
    """Refuse a service or tier that neither the layout nor its history knows.

    A name that is not there is a typo far more often than a question with an empty answer;
    one that was removed from the layout but has history is still answered.
    """
    if tier is not None and not any(e.tier == tier for e in entries):
        layout.tier(tier)
    if service is not None and not entries and service not in layout.services():
        layout.require_service(service)
