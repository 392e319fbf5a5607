"""Rollback: revert a tier's latest change of one service (a promotion or a tier strategy).

This has ``git revert`` semantics (the change is undone and the commit says which one it
reverts) but is applied to what the change concerns — the one ``images:`` entry, the service's
traffic file re-rendered in the state before — rather than as a textual patch, so later
changes of other services or tiers never make it conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.gitops.cache import Checkout, require_app
from devmesh.gitops.history import HistoryEntry, read_history
from devmesh.gitops.land import DEFAULT_ATTEMPTS, Change, Landed, Unchanged, land
from devmesh.gitops.layout import Layout
from devmesh.gitops.tier_strategy import current_traffic, write_traffic
from devmesh.gitops.tier_traffic import TierTraffic, summary
from devmesh.gitops.trailers import Rollback

if TYPE_CHECKING:
    from devmesh.config import Project


@dataclass(frozen=True)
class RollbackResult:
    rollback: Rollback | None
    landed: Landed


def latest_change(history: list[HistoryEntry]) -> HistoryEntry | None:
    """The newest promotion or strategy (of one service in one tier) that no rollback has
    reverted yet."""
    reverted: set[str] = set()
    for entry in history:  # newest first
        if entry.kind == "rollback":
            if entry.reverts:
                reverted.add(entry.reverts)
            continue
        if entry.commit not in reverted:
            return entry
    return None


def plan_rollback(layout: Layout, app: str, history: list[HistoryEntry], service: str, tier: str,
                  project: Project | None = None) -> Rollback:
    """The revert of ``service``'s latest change in ``tier``, or a refusal saying why not.

    ``project`` renders the traffic file when the change reverted was a strategy's."""
    layout.require_service(service)
    layout.tier(tier)
    target = latest_change([e for e in history if e.service == service and e.tier == tier])
    if target is None:
        raise UserInputError(f"nothing to roll back: {service} has no promotion or strategy in {tier} left to revert")
    if target.pins:
        current = layout.pin(tier, app, service)
        if current != target.image:
            runs = str(current) if current else "no image"
            raise UserInputError(
                f"{service} in {tier} runs {runs}, not {target.image} that promotion {target.commit[:10]} set: "
                "the tier file was changed outside devmesh; nothing rolled back"
            )
    restored: TierTraffic | None = None
    if target.traffic is not None:
        if project is None:
            raise UserInputError(f"rolling back {target.commit[:10]} rewrites the traffic file of {service} in "
                                 f"{tier}, which is rendered from devmesh.yaml", hint="run it in the project")
        now = current_traffic(layout, project, tier, service, allow_stale=True)
        if now != target.traffic:
            raise UserInputError(
                f"{service} in {tier} runs {summary(now)}, not {summary(target.traffic)} that "
                f"{target.commit[:10]} set: its traffic file was changed outside devmesh; nothing rolled back")
        restored = target.traffic_from or TierTraffic()
    return Rollback(
        service=service,
        tier=tier,
        restored=target.previous if target.pins else None,
        rolled_back=target.image if target.pins else None,
        reverts=target.commit,
        reverted_subject=target.subject,
        pins=target.pins,
        traffic_restored=restored,
        traffic_rolled_back=target.traffic if restored is not None else None,
    )


def rollback(
    checkout: Checkout,
    service: str,
    tier: str,
    *,
    app: str | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    project: Project | None = None,
) -> RollbackResult:
    """Commit and push the rollback; on a push race it is planned again on the new tip."""
    planned: list[Rollback | None] = [None]

    def apply(co: Checkout) -> Change | Unchanged:
        co.require_tip()
        layout = co.layout()
        app_name = require_app(layout, app)
        history = read_history(co, service, tier)
        first = planned[0]
        if first is not None and any(e.reverts == first.reverts for e in history):
            # The remote moved because this very change was rolled back (by another
            # process, or by our own push whose answer was lost): do not revert a second one.
            return Unchanged(f"{first.reverts[:10]} of {service} in {tier} is already rolled back")
        plan = plan_rollback(layout, app_name, history, service, tier, project)
        planned[0] = plan
        paths = []
        if plan.pins:
            layout.set_pin(tier, app_name, service, plan.restored)
            paths.append(co.relative(layout.tier_file(tier)))
        if plan.traffic_restored is not None:
            assert project is not None
            paths.append(co.relative(write_traffic(layout, project, tier, service, plan.traffic_restored)))
        branch = f"devmesh/rollback-{service}-{tier}-{plan.reverts[:12]}"
        return Change(plan.message(), paths, branch)

    landed = land(checkout, apply, attempts=attempts)
    return RollbackResult(planned[0], landed)
