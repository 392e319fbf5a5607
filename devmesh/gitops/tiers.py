"""The service × tier matrix: what each tier runs (its primary version and, while a strategy
runs there, the candidate and its split), since when, by whom, and what may move up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devmesh.gitops.cache import Checkout, require_app
from devmesh.gitops.history import HistoryEntry, read_history
from devmesh.gitops.images import ImageRef
from devmesh.gitops.layout import Tier
from devmesh.gitops.tier_strategy import takes_traffic_at
from devmesh.gitops.tier_traffic import TierTraffic, state_json, summary


@dataclass(frozen=True)
class Cell:
    """One service in one tier."""

    image: ImageRef | None
    last: HistoryEntry | None  # the promotion or rollback that set this image, if devmesh did
    next_may_take: bool | None  # None in the last tier
    traffic: TierTraffic = TierTraffic()  # the candidate and its strategy, while one runs

    def to_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "image": str(self.image) if self.image else None,
            "digest": self.image.digest if self.image else None,
            "short": self.image.short if self.image else None,
            "promoted_at": last.date.isoformat() if last else None,
            "promoted_by": last.author if last else None,
            "commit": last.commit if last else None,
            "via": last.kind if last else None,
            "next_may_take": self.next_may_take,
            "traffic": state_json(self.traffic),
            "split": summary(self.traffic),
        }


@dataclass(frozen=True)
class TierMatrix:
    app: str
    tiers: list[Tier]
    services: dict[str, dict[str, Cell]]

    def to_json(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "tiers": [t.name for t in self.tiers],
            "contexts": {t.name: t.context for t in self.tiers},
            "services": {
                svc: {tier: cell.to_json() for tier, cell in row.items()} for svc, row in self.services.items()
            },
        }


def _latest(history: list[HistoryEntry]) -> dict[tuple[str, str], HistoryEntry]:
    out: dict[tuple[str, str], HistoryEntry] = {}
    for entry in history:  # newest first: the first seen is the latest
        if not entry.pins:
            continue  # a strategy: the pin stays
        out.setdefault((entry.service, entry.tier), entry)
    return out


def tier_matrix(checkout: Checkout, *, app: str | None = None) -> TierMatrix:
    """Read the matrix from the tip of the manifest branch."""
    checkout.require_tip()
    layout = checkout.layout()
    app_name = require_app(layout, app)
    tiers = layout.tiers()
    pins = {t.name: layout.pins(t.name, app_name) for t in tiers}
    latest = _latest(read_history(checkout))
    services: dict[str, dict[str, Cell]] = {}
    for service in layout.services():
        row: dict[str, Cell] = {}
        for i, tier in enumerate(tiers):
            image = pins[tier.name].get(service)
            event = latest.get((service, tier.name))
            if event is not None and event.image != image:
                event = None  # the file was edited by hand after devmesh's last change
            may: bool | None = None
            if i + 1 < len(tiers):
                may = image is not None and pins[tiers[i + 1].name].get(service) != image
            row[tier.name] = Cell(image, event, may, takes_traffic_at(layout, tier.name, service))
        services[service] = row
    return TierMatrix(app_name, tiers, services)
