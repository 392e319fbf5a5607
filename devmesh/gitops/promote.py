"""Promotion: pin a service's image in a tier, following the tier rule.

Into the first tier any digest may go. Into a later tier only the digest the tier below
runs now (the same asset, never a rebuild or a copy), unless forced with a reason, which the
commit records.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.gitops.cache import Checkout
from devmesh.gitops.images import ImageRef
from devmesh.gitops.land import DEFAULT_ATTEMPTS, Change, Landed, Unchanged, land
from devmesh.gitops.layout import Layout
from devmesh.gitops.tier_strategy import finishing, write_traffic
from devmesh.gitops.tier_traffic import TierTraffic
from devmesh.gitops.trailers import Promotion

if TYPE_CHECKING:
    from devmesh.config import Project


@dataclass(frozen=True)
class PromotionRequest:
    service: str
    tier: str
    image: ImageRef | None = None  # required for the first tier; later tiers default to the one below
    force: bool = False
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.force and not (self.reason and self.reason.strip()):
            raise UserInputError("--force needs --reason \"…\": the reason is recorded in the commit")
        if self.reason and not self.force:
            raise UserInputError("--reason is only for --force (it records why the tier rule was overridden)")


@dataclass(frozen=True)
class PromotionResult:
    promotion: Promotion | None  # None when the tier already ran the image
    landed: Landed


def plan_promotion(layout: Layout, app: str, request: PromotionRequest) -> Promotion | Unchanged:
    """What promoting means on the current tip: a Promotion, an Unchanged, or a refusal."""
    service, tier = request.service, request.tier
    layout.require_service(service)
    index, tiers = layout.tier(tier)
    current = layout.pin(tier, app, service)
    image = request.image
    source: str | None = None
    reason: str | None = None
    if index == 0:
        if image is None:
            raise UserInputError(
                f"promoting {service} into the first tier ({tier}) needs --image REF "
                "(NAME@sha256:<digest>, or a local image to push)"
            )
    else:
        below = tiers[index - 1].name
        below_pin = layout.pin(below, app, service)
        if image is None:
            if below_pin is None:
                raise UserInputError(
                    f"{service} has no image in {below}, the tier below {tier}: promote it into {below} first"
                )
            image = below_pin
        if image == below_pin:
            source = below
        elif not request.force:
            same_name = below_pin is not None and below_pin.name == image.name
            runs = f"runs {below_pin.short if same_name else below_pin}" if below_pin else "runs no image of it"
            given = image.short if same_name else str(image)
            raise UserInputError(
                f"{tier} only takes the image {below} runs now, and {below} {runs}, not {given}",
                hint='promote it into the tiers below first, or override with --force --reason "…"',
            )
        else:
            reason = request.reason
    if current == image:
        return Unchanged(f"{service} in {tier} already runs {image.short}: nothing to promote")
    return Promotion(service, tier, image, current, source=source, reason=reason)


def check_local_image(layout: Layout, tier: str, image: str, force: bool) -> None:
    """A local image (not in a registry yet) is a new asset: only the first tier takes one,
    unless the tier rule is overridden; later tiers take what the tier below runs."""
    index, tiers = layout.tier(tier)
    if index > 0 and not force:
        raise UserInputError(
            f"{tier} only takes the image {tiers[index - 1].name} runs now; a local image "
            f"would be a new asset (pushing {image!r} is only for the first tier, {tiers[0].name})"
        )


def proposal_branch(promotion: Promotion) -> str:
    digest = promotion.image.digest.removeprefix("sha256:")[:12]
    return f"devmesh/promote-{promotion.service}-{promotion.tier}-{digest}"


def promote(
    checkout: Checkout,
    request: PromotionRequest,
    *,
    app: str | None = None,
    attempts: int = DEFAULT_ATTEMPTS,
    project: Project | None = None,
) -> PromotionResult:
    """Promote on the remote tip; on a push race the rule is checked again on the new tip.

    Promoting the candidate of a strategy open in the tier finishes it: the same commit puts
    the tier back to one version (``project`` renders its traffic file)."""
    planned: list[Promotion | None] = [None]

    def apply(co: Checkout) -> Change | Unchanged:
        co.require_tip()
        layout = co.layout()
        app_name = layout.app(app)
        plan = plan_promotion(layout, app_name, request)
        if isinstance(plan, Unchanged):
            planned[0] = None
            return plan
        finishes = finishing(layout, project, plan.tier, plan.service, plan.image)
        paths = [co.relative(layout.tier_file(plan.tier))]
        if finishes is not None:
            assert project is not None
            plan = replace(plan, finishes=finishes)
            paths.append(co.relative(write_traffic(layout, project, plan.tier, plan.service, TierTraffic())))
        planned[0] = plan
        layout.set_pin(plan.tier, app_name, plan.service, plan.image)
        return Change(plan.message(), paths, proposal_branch(plan))

    landed = land(checkout, apply, attempts=attempts)
    return PromotionResult(planned[0], landed)
