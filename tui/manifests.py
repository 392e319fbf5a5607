"""What the Tiers tab and the promote/rollback modals need from the manifest repo.

Everything here blocks (git, the network, the registry): call it from a thread worker. The
rules themselves are the core's (``plan_promotion``, ``plan_rollback``, ``promote``,
``rollback``); this module asks them and turns their answers into something to show.

The one thing the core does not offer yet is the text diff of a change before it is made:
``pin_diff`` applies the core's own ``Layout.set_pin`` to a temporary copy of the layout and
compares the tier file before and after, so the diff shown is the edit that will be committed.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from devmesh.errors import UserInputError
from devmesh.gitops.landed import landed_message

if TYPE_CHECKING:
    from devmesh.gitops.cache import Checkout
    from devmesh.gitops.images import ImageRef
    from devmesh.gitops.land import Landed
    from devmesh.gitops.layout import Layout
    from devmesh.gitops.tiers import TierMatrix
    from tui.sources import Sources


# --- the matrix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellVerdict:
    """What `p` would do on one cell: promote the cell's image into the next tier, or not."""

    target: str | None  # the tier above; None in the last tier
    ok: bool
    text: str
    short: str = ""  # a few words for the matrix's NEXT column


@dataclass(frozen=True)
class TiersView:
    source: str  # the repo (and folder) as the user configured it
    matrix: TierMatrix
    verdicts: dict[tuple[str, str], CellVerdict] = field(default_factory=dict)
    mode: str = "push"

    def next_for(self, service: str) -> CellVerdict:
        """The service's next step: its lowest promotable cell, else why nothing moves."""
        tiers = [t.name for t in self.matrix.tiers]
        cells = [self.verdicts[(service, t)] for t in tiers if (service, t) in self.verdicts]
        for verdict in cells:
            if verdict.ok:
                return verdict
        for verdict in cells:
            if verdict.target is not None and not verdict.text.startswith("up to date"):
                return verdict
        return CellVerdict(None, False, "up to date: every tier runs the same image", "up to date")


def read_tiers(sources: Sources) -> TiersView:
    """The service × tier matrix and, for every cell, the core's verdict on promoting it up."""
    from devmesh.gitops.land import Unchanged
    from devmesh.gitops.promote import PromotionRequest, plan_promotion
    from devmesh.gitops.tiers import tier_matrix

    settings = sources.manifest_settings()
    with sources.checkout() as checkout:
        matrix = tier_matrix(checkout, app=sources.project.app)
        layout = checkout.layout()
        names = [t.name for t in matrix.tiers]
        verdicts: dict[tuple[str, str], CellVerdict] = {}
        for service in matrix.services:
            for i, tier in enumerate(names):
                if i + 1 == len(names):
                    verdicts[(service, tier)] = CellVerdict(None, False, f"{tier} is the last tier", "up to date")
                    continue
                target = names[i + 1]
                try:
                    plan = plan_promotion(layout, matrix.app, PromotionRequest(service, target))
                except UserInputError as exc:
                    verdicts[(service, tier)] = CellVerdict(target, False, f"blocked: {exc}", f"blocked at {target}")
                    continue
                if isinstance(plan, Unchanged):
                    verdicts[(service, tier)] = CellVerdict(target, False, f"up to date: {target} runs it too",
                                                            "up to date")
                else:
                    digest = plan.image.short.removeprefix("sha256:")
                    verdicts[(service, tier)] = CellVerdict(
                        target, True, f"{target} may take {plan.image.short} from {tier} (p promotes)",
                        f"{target} ← {digest} ({tier})")
    where = settings.url if settings.path == "." else f"{settings.url} ({settings.path})"
    return TiersView(where, matrix, verdicts, settings.mode)


# --- previews ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangePreview:
    """A promotion or rollback exactly as it would be committed."""

    kind: Literal["promote", "rollback"]
    service: str
    tier: str
    title: str
    rule: str
    path: str
    diff: str
    message: str
    destination: str  # "pushed to main of …" or "proposed on a new branch of …"
    image: ImageRef | None = None  # promote: the image pinned (the request lands exactly this)
    reverts: str | None = None  # rollback: the promotion commit reverted


@dataclass(frozen=True)
class Refusal:
    """Why nothing can be done (the tier rule, nothing to roll back, …): shown, not raised."""

    message: str
    hint: str | None = None


def _copy_layout(layout: Layout, into: Path) -> Path:
    root = into / "layout"
    root.mkdir()
    shutil.copy2(layout.tiers_file, root / layout.tiers_file.name)
    for folder in ("base", "tiers"):
        if (layout.root / folder).is_dir():
            shutil.copytree(layout.root / folder, root / folder)
    return root


def pin_diff(checkout: Checkout, layout: Layout, tier: str, app: str, service: str,
             image: ImageRef | None) -> tuple[str, str]:
    """(path, unified diff) of pinning ``service`` to ``image`` in ``tier``, made by the core's
    own editor on a copy of the layout; the checkout itself is not touched."""
    from devmesh.gitops.layout import Layout

    path = layout.tier_file(tier)
    relative = checkout.relative(path)
    before = path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="devmesh-tui-") as tmp:
        copy = Layout(_copy_layout(layout, Path(tmp)), layout.display)
        copy.set_pin(tier, app, service, image)
        after = copy.tier_file(tier).read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{relative}", tofile=f"b/{relative}"))
    return relative, diff


def _destination(checkout: Checkout) -> str:
    settings = checkout.settings
    if settings.mode == "pull-request":
        return f"proposed on a new branch of {settings.url} (pull-request mode)"
    return f"committed and pushed to {settings.branch} of {settings.url}"


def _lowest_promotable(layout: Layout, app: str, service: str) -> str | Refusal:
    """The lowest tier that may take a new image of ``service`` from the tier below it."""
    from devmesh.gitops.land import Unchanged
    from devmesh.gitops.promote import PromotionRequest, plan_promotion

    tiers = layout.tiers()
    pins = [layout.pin(t.name, app, service) for t in tiers]
    if pins[0] is None:
        return Refusal(f"{service} has no image in {tiers[0].name}, the first tier, yet",
                       hint="press p on the service in a branch environment that forks it to promote the branch's build")
    for i in range(1, len(tiers)):
        if pins[i - 1] is not None and pins[i] != pins[i - 1]:
            try:
                plan = plan_promotion(layout, app, PromotionRequest(service, tiers[i].name))
            except UserInputError as exc:
                return Refusal(str(exc), exc.hint)
            if not isinstance(plan, Unchanged):
                return tiers[i].name
    return Refusal(f"nothing to promote: every tier runs {service}'s image {pins[-1].short if pins[-1] else 'none'}")


def preview_promotion(sources: Sources, service: str, tier: str | None = None,
                      local_image: str | None = None) -> ChangePreview | Refusal:
    """What promoting ``service`` would commit.

    ``tier`` None: the branch's ``local_image`` into the first tier when given (it is pushed to
    the registry first, to learn its digest), else the lowest tier that may move up.
    """
    from devmesh.gitops.land import Unchanged
    from devmesh.gitops.promote import PromotionRequest, plan_promotion

    image: ImageRef | None = None
    try:
        if local_image is not None:
            image = sources.publish(local_image, service)
        with sources.checkout() as checkout:
            checkout.require_tip()
            layout = checkout.layout()
            app = layout.app(sources.project.app)
            tiers = layout.tiers()
            if tier is None:
                if image is not None:
                    tier = tiers[0].name
                else:
                    found = _lowest_promotable(layout, app, service)
                    if isinstance(found, Refusal):
                        return found
                    tier = found
            index, _ = layout.tier(tier)
            plan = plan_promotion(layout, app, PromotionRequest(service, tier, image))
            if isinstance(plan, Unchanged):
                return Refusal(plan.reason)
            path, diff = pin_diff(checkout, layout, tier, app, service, plan.image)
            if index == 0:
                rule = (f"{tier} is the first tier: it takes any image pinned by digest; "
                        "every later tier will only take this same digest")
            else:
                below = tiers[index - 1].name
                rule = (f"{tier} only takes the image {below} runs now: {plan.image.short} "
                        f"is what {below} runs, so the rule holds")
            source = f" from {plan.source}" if plan.source else ""
            return ChangePreview(
                "promote", service, tier, f"promote {service} to {tier}{source}", rule, path, diff,
                plan.message(), _destination(checkout), image=plan.image)
    except UserInputError as exc:
        return Refusal(str(exc), exc.hint)


def preview_rollback(sources: Sources, service: str, tier: str | None = None) -> ChangePreview | Refusal:
    """What rolling back ``service`` would commit (``tier`` None: where it was last promoted)."""
    from devmesh.gitops.history import read_history
    from devmesh.gitops.rollback import latest_promotion, plan_rollback

    try:
        with sources.checkout() as checkout:
            checkout.require_tip()
            layout = checkout.layout()
            app = layout.app(sources.project.app)
            layout.require_service(service)
            history = read_history(checkout, service)
            if tier is None:
                latest = latest_promotion(history)
                if latest is None:
                    return Refusal(f"nothing to roll back: {service} has no promotion left to revert")
                tier = latest.tier
            plan = plan_rollback(layout, app, [e for e in history if e.tier == tier], service, tier)
            path, diff = pin_diff(checkout, layout, tier, app, service, plan.restored)
            back = plan.restored.short if plan.restored else "no pinned image"
            rule = (f"a rollback reverts promotion {plan.reverts[:10]} (\"{plan.reverted_subject}\"): "
                    f"{tier} goes back to what it ran before it, {back}")
            return ChangePreview(
                "rollback", service, tier, f"roll back {service} in {tier}", rule, path, diff,
                plan.message(), _destination(checkout), image=plan.restored, reverts=plan.reverts)
    except UserInputError as exc:
        return Refusal(str(exc), exc.hint)


# --- landing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandedChange:
    text: str
    commit: str | None
    warning: str | None = None


def _landed_text(landed: Landed, what: str) -> str:
    # One status line, and as before without the count of push races.
    return landed_message(landed, what, joiner="; ", races=False)


def land_preview(sources: Sources, preview: ChangePreview) -> LandedChange | Refusal:
    """Commit and push what the preview showed; the core checks every rule again on the tip."""
    from devmesh.gitops.promote import PromotionRequest, promote
    from devmesh.gitops.rollback import rollback

    try:
        with sources.checkout() as checkout:
            if preview.kind == "promote":
                # The previewed image, not "whatever the tier below runs by now": if the tier
                # below moved meanwhile, the tier rule refuses instead of landing another image.
                request = PromotionRequest(preview.service, preview.tier, preview.image)
                result = promote(checkout, request, app=sources.project.app)
                if result.landed.unchanged or result.promotion is None:
                    return Refusal(result.landed.unchanged or "nothing to promote")
                done = f"promoted {preview.service} to {preview.tier}: {result.promotion.image.short}"
                return LandedChange(_landed_text(result.landed, done), result.landed.commit)
            outcome = rollback(checkout, preview.service, preview.tier, app=sources.project.app)
            if outcome.landed.unchanged or outcome.rollback is None:
                return Refusal(outcome.landed.unchanged or "nothing rolled back")
            back = outcome.rollback.restored.short if outcome.rollback.restored else "no pinned image"
            done = f"rolled back {preview.service} in {preview.tier} to {back}"
            warning = None
            if outcome.rollback.reverts != preview.reverts:
                warning = (f"the manifest repo moved meanwhile: reverted {outcome.rollback.reverts[:10]}, "
                           f"not {preview.reverts[:10] if preview.reverts else '?'} as shown")
            return LandedChange(_landed_text(outcome.landed, done), outcome.landed.commit, warning)
    except UserInputError as exc:
        return Refusal(str(exc), exc.hint)
