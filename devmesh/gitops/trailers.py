"""Commit messages of promotions, tier strategies and rollbacks, and the trailers that make
them queryable.

``Devmesh-Image``/``Devmesh-From`` are the tier's pin after and before a commit (present only
when it changes the pin); ``Devmesh-Traffic``/``Devmesh-Traffic-From`` the tier's second
version and strategy after and before (present only when it changes them; ``none`` is one
version), so a rollback knows what to restore without reading old files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devmesh.gitops.images import ImageRef

if TYPE_CHECKING:  # the model renders manifests: loaded when a message is written, not by `--help`
    from devmesh.gitops.tier_traffic import TierTraffic

SERVICE = "Devmesh-Service"
TIER = "Devmesh-Tier"
IMAGE = "Devmesh-Image"
FROM = "Devmesh-From"
REASON = "Devmesh-Reason"
REVERTS = "Devmesh-Reverts"
TRAFFIC = "Devmesh-Traffic"
TRAFFIC_FROM = "Devmesh-Traffic-From"
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
    finishes: TierTraffic | None = None  # the strategy whose candidate this promotion makes the one version

    def message(self) -> str:
        from devmesh.gitops.tier_traffic import TierTraffic, to_trailer

        origin = f" from {self.source}" if self.source else ""
        forced = " (forced)" if self.reason else ""
        lines = [f"promote {self.service} to {self.tier}{origin}: {self.image.short}{forced}", ""]
        if self.finishes is not None:
            kind = self.finishes.strategy.kind if self.finishes.strategy else "strategy"
            lines += [f"This finishes the {kind} of {self.service} in {self.tier}: its candidate is the "
                      "tier's one version now.", ""]
        lines += [
            f"{SERVICE}: {self.service}",
            f"{TIER}: {self.tier}",
            f"{IMAGE}: {self.image}",
            f"{FROM}: {_ref(self.previous)}",
        ]
        if self.reason:
            lines.append(f"{REASON}: {_one_line(self.reason)}")
        if self.finishes is not None:
            lines += [f"{TRAFFIC}: {to_trailer(TierTraffic())}", f"{TRAFFIC_FROM}: {to_trailer(self.finishes)}"]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TrafficChange:
    """A tier strategy commit: ``service`` in ``tier`` goes from ``before`` to ``after`` (a
    candidate version and its strategy, or one version again); the pin does not change."""

    service: str
    tier: str
    after: TierTraffic
    before: TierTraffic
    source: str | None = None  # the tier below, whose primary version the candidate is

    @property
    def action(self) -> str:
        """canary, mirror or switch; ``end`` when the tier goes back to one version."""
        return self.after.strategy.kind if self.after.strategy is not None else "end"

    def subject(self) -> str:
        from devmesh.plan.strategy import Canary, Mirror

        after, service, tier = self.after, self.service, self.tier
        if after.candidate is None or after.strategy is None:
            kind = self.before.strategy.kind if self.before.strategy is not None else "strategy"
            return f"end the {kind} of {service} in {tier}: its primary version serves alone"
        to = after.candidate.short
        origin = f" from {self.source}" if self.source else ""
        strategy = after.strategy
        if isinstance(strategy, Canary):
            sticky = f", sticky by {strategy.sticky_header}" if strategy.sticky_header else ""
            return f"canary {service} in {tier}: {strategy.weight}% to {to}{origin}{sticky}"
        if isinstance(strategy, Mirror):
            return f"mirror {service} in {tier}: copies of {strategy.percent:g}% of GET and HEAD to {to}{origin}"
        return f"switch {service} in {tier} to {to}{origin}"

    def message(self) -> str:
        from devmesh.gitops.tier_traffic import summary, to_trailer

        lines = [
            self.subject(),
            "",
            f"Before: {summary(self.before)}.",
            "",
            f"{SERVICE}: {self.service}",
            f"{TIER}: {self.tier}",
            f"{TRAFFIC}: {to_trailer(self.after)}",
            f"{TRAFFIC_FROM}: {to_trailer(self.before)}",
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Rollback:
    """A revert of commit ``reverts`` (a promotion or a tier strategy): ``service`` in ``tier``
    goes back to the pin ``restored`` (when the commit changed the pin) and to the traffic
    ``traffic_restored`` (when it changed that)."""

    service: str
    tier: str
    restored: ImageRef | None
    rolled_back: ImageRef | None
    reverts: str
    reverted_subject: str
    pins: bool = True  # the reverted commit changed the pin
    traffic_restored: TierTraffic | None = None
    traffic_rolled_back: TierTraffic | None = None

    def message(self) -> str:
        from devmesh.gitops.tier_traffic import to_trailer

        lines = [
            f'Revert "{self.reverted_subject}"',
            "",
            f"This reverts commit {self.reverts}.",
            "",
            f"{SERVICE}: {self.service}",
            f"{TIER}: {self.tier}",
        ]
        if self.pins:
            lines += [f"{IMAGE}: {_ref(self.restored)}", f"{FROM}: {_ref(self.rolled_back)}"]
        if self.traffic_restored is not None and self.traffic_rolled_back is not None:
            lines += [f"{TRAFFIC}: {to_trailer(self.traffic_restored)}",
                      f"{TRAFFIC_FROM}: {to_trailer(self.traffic_rolled_back)}"]
        lines.append(f"{REVERTS}: {self.reverts}")
        return "\n".join(lines) + "\n"


def parse_trailers(block: str) -> dict[str, str]:
    """``Key: value`` lines (as ``%(trailers:only,unfold)`` prints them) → a dict; first wins."""
    out: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out
