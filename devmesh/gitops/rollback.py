"""Rollback: revert a tier's latest promotion of one service.

This has ``git revert`` semantics (the promotion's change is undone and the commit says which
one it reverts) but is applied to the one ``images:`` entry it concerns rather than as a
textual patch, so later promotions of other services or tiers never make it conflict.
"""

from __future__ import annotations

from dataclasses import dataclass

from devmesh.errors import UserInputError
from devmesh.gitops.cache import Checkout, require_app
from devmesh.gitops.history import HistoryEntry, read_history
from devmesh.gitops.land import DEFAULT_ATTEMPTS, Change, Landed, Unchanged, land
from devmesh.gitops.layout import Layout
from devmesh.gitops.trailers import Rollback


@dataclass(frozen=True)
class RollbackResult:
    rollback: Rollback | None
    landed: Landed


def latest_promotion(history: list[HistoryEntry]) -> HistoryEntry | None:
    """The newest promotion (of one service in one tier) that no rollback has reverted yet."""
    reverted: set[str] = set()
    for entry in history:  # newest first
        if entry.kind == "rollback":
            if entry.reverts:
                reverted.add(entry.reverts)
            continue
        if entry.commit not in reverted:
            return entry
    return None


def plan_rollback(layout: Layout, app: str, history: list[HistoryEntry], service: str, tier: str) -> Rollback:
    """The revert of ``service``'s latest promotion in ``tier``, or a refusal saying why not."""
    layout.require_service(service)
    layout.tier(tier)
    target = latest_promotion([e for e in history if e.service == service and e.tier == tier])
    if target is None:
        raise UserInputError(f"nothing to roll back: {service} has no promotion into {tier} left to revert")
    current = layout.pin(tier, app, service)
    if current != target.image:
        runs = str(current) if current else "no image"
        raise UserInputError(
            f"{service} in {tier} runs {runs}, not {target.image} that promotion {target.commit[:10]} set: "
            "the tier file was changed outside devmesh; nothing rolled back"
        )
    assert target.image is not None
    return Rollback(
        service=service,
        tier=tier,
        restored=target.previous,
        rolled_back=target.image,
        reverts=target.commit,
        reverted_subject=target.subject,
    )


def rollback(
    checkout: Checkout,
    service: str,
    tier: str,
    *,
    app: str | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
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
            # The remote moved because this very promotion was rolled back (by another
            # process, or by our own push whose answer was lost): do not revert a second one.
            return Unchanged(f"promotion {first.reverts[:10]} of {service} in {tier} is already rolled back")
        plan = plan_rollback(layout, app_name, history, service, tier)
        planned[0] = plan
        layout.set_pin(tier, app_name, service, plan.restored)
        branch = f"devmesh/rollback-{service}-{tier}-{plan.reverts[:12]}"
        return Change(plan.message(), [co.relative(layout.tier_file(tier))], branch)

    landed = land(checkout, apply, attempts=attempts)
    return RollbackResult(planned[0], landed)
