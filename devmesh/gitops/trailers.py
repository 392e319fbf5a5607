"""Commit messages of promotions and rollbacks, and the trailers that make them queryable."""

from __future__ import annotations

from dataclasses import dataclass

from devmesh.gitops.images import ImageRef

SERVICE = "Devmesh-Service"
TIER = "Devmesh-Tier"
IMAGE = "Devmesh-Image"
FROM = "Devmesh-From"
REASON = "Devmesh-Reason"
REVERTS = "Devmesh-Reverts"
NONE = "none"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _ref(ref: ImageRef | None) -> str:
    return str(ref) if ref is not None else NONE


@dataclass(frozen=True)
class Promotion:
    """What a promotion commit says: ``service`` in ``tier`` goes from ``previous`` to ``image``."""

    service: str
    tier: str
    image: ImageRef
    previous: ImageRef | None
    source: str | None = None  # the tier the image came from, None for the first tier
    reason: str | None = None  # set when the tier rule was overridden with --force

    def message(self) -> str:
        origin = f" from {self.source}" if self.source else ""
        forced = " (forced)" if self.reason else ""
        lines = [
            f"promote {self.service} to {self.tier}{origin}: {self.image.short}{forced}",
            "",
            f"{SERVICE}: {self.service}",
            f"{TIER}: {self.tier}",
            f"{IMAGE}: {self.image}",
            f"{FROM}: {_ref(self.previous)}",
        ]
        if self.reason:
            lines.append(f"{REASON}: {_one_line(self.reason)}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Rollback:
    """A revert of promotion ``reverts``: ``service`` in ``tier`` goes back to ``restored``."""

    service: str
    tier: str
    restored: ImageRef | None
    rolled_back: ImageRef
    reverts: str
    reverted_subject: str

    def message(self) -> str:
        lines = [
            f'Revert "{self.reverted_subject}"',
            "",
            f"This reverts commit {self.reverts}.",
            "",
            f"{SERVICE}: {self.service}",
            f"{TIER}: {self.tier}",
            f"{IMAGE}: {_ref(self.restored)}",
            f"{FROM}: {self.rolled_back}",
            f"{REVERTS}: {self.reverts}",
        ]
        return "\n".join(lines) + "\n"


def parse_trailers(block: str) -> dict[str, str]:
    """``Key: value`` lines (as ``%(trailers:only,unfold)`` prints them) → a dict; first wins."""
    out: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out
