"""Releases: promote and roll back a service's image in the manifest repo's tiers.

Every change goes the same way, whichever front end asks: a preview (the plan on the remote
tip, and the exact diff of the tier file, made by the same editor that writes it, in memory,
on the real checkout), then a confirmation (the front end's), then landing exactly what was
previewed. Landing checks every rule again on the tip: a promotion whose tier below moved
meanwhile is refused instead of landing another image; a rollback that reverts another
promotion than the one shown says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Literal

from devmesh.build import docker_client, ensure_image
from devmesh.config import Project
from devmesh.errors import UserInputError
from devmesh.gitops.cache import Checkout, open_checkout, require_app
from devmesh.gitops.history import read_history
from devmesh.gitops.images import ImageRef, is_digest_ref, parse_image_ref
from devmesh.gitops.land import Landed, Unchanged
from devmesh.gitops.layout import Layout
from devmesh.gitops.promote import PromotionRequest, check_local_image, plan_promotion, promote
from devmesh.gitops.publish import publish_image
from devmesh.gitops.rollback import latest_promotion, plan_rollback, rollback
from devmesh.gitops.settings import ManifestSettings
from devmesh.gitops.tiers import TierMatrix, tier_matrix
from devmesh.gitops.trailers import Promotion, Rollback
from devmesh.workspace import checkout as workspace_checkout
from devmesh.workspace import current_branch, open_repo

Notify = Callable[[str], None]
Publish = Callable[[str, str, str], ImageRef]  # (local image, app, service) → pinned by digest


def _quiet(message: str) -> None:
    del message


@dataclass(frozen=True)
class ManifestRepo:
    """The manifest repo as the release use cases reach it.

    ``app`` is the project's app (None without a project: tiers.yaml names it); ``open``
    gives the locked checkout at the remote tip and ``publish`` pushes a local image (both
    default to the real ones); ``notify`` hears what happens on the way (a push, a cache
    repaired).
    """

    settings: ManifestSettings
    app: str | None = None
    notify: Notify = _quiet
    open: Callable[[], AbstractContextManager[Checkout]] | None = None
    publish: Publish | None = None

    def checkout(self) -> AbstractContextManager[Checkout]:
        if self.open is not None:
            return self.open()
        return open_checkout(self.settings, notify=self.notify)

    def push(self, local: str, app: str, service: str) -> ImageRef:
        self.notify(f"pushing {local} to {self.settings.registry}")
        if self.publish is not None:
            return self.publish(local, app, service)
        return publish_image(local, self.settings.registry, app, service)

    @property
    def source(self) -> str:
        """The repo (and folder) as the user configured it."""
        settings = self.settings
        return settings.url if settings.path == "." else f"{settings.url} ({settings.path})"

    @property
    def destination(self) -> str:
        """Where a change lands, in words."""
        settings = self.settings
        if settings.mode == "pull-request":
            return f"proposed on a new branch of {settings.url} (pull-request mode)"
        return f"committed and pushed to {settings.branch} of {settings.url}"


class NoImageYet(UserInputError):
    """The service has no image in the first tier: nothing can move up until one is pinned."""


# --- the images to promote ------------------------------------------------------------------


def branch_image(project: Project | None, service: str, branch: str, notify: Notify = _quiet) -> str:
    """Build ``service`` from ``branch``'s last commit (never uncommitted files); its local name."""
    if project is None:
        raise UserInputError("--branch needs the project's devmesh.yaml to know how to build",
                             hint="run it in the project, or pass --image")
    if service not in project.services:
        raise UserInputError(f"no service {service!r} in {project.path.name}; "
                             f"services: {', '.join(project.services)}")
    chosen = current_branch(project, branch)
    if chosen.is_current:
        with open_repo(project.root) as repo:
            if repo.is_dirty(untracked_files=True):
                notify(f"uncommitted changes on {branch} are not part of the image: "
                       f"it is built from {chosen.commit[:12]}")
    tree = workspace_checkout(project, chosen.commit, f"promote-{chosen.env}")
    notify(f"building {service} from {branch} at {chosen.commit[:12]}")
    return ensure_image(docker_client(), project, service, root=tree).ref


def resolve_image(repo: ManifestRepo, service: str, tier: str | None, image: str, force: bool = False) -> ImageRef:
    """``image`` pinned by digest: as given, or a local image pushed to the registry.

    A local image is a new asset, so the tier rule allows it only into the first tier
    (``tier`` None) unless ``force``; it is pushed after the rule is checked, outside the lock.
    """
    if is_digest_ref(image) or "@" in image:
        return parse_image_ref(image)
    with repo.checkout() as checkout:
        checkout.require_tip()
        layout = checkout.layout()
        layout.require_service(service)
        check_local_image(layout, tier if tier is not None else layout.tiers()[0].name, image, force)
        app = layout.app(repo.app)
    return repo.push(image, app, service)


# --- previews -------------------------------------------------------------------------------


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
    destination: str  # "committed and pushed to main of …" or "proposed on a new branch of …"
    image: ImageRef | None = None  # promote: the image pinned (landing pins exactly this)
    reverts: str | None = None  # rollback: the promotion commit reverted
    change: Promotion | Rollback | None = field(default=None, compare=False)
    request: PromotionRequest | None = field(default=None, compare=False)  # promote: as asked


def pin_diff(checkout: Checkout, layout: Layout, tier: str, app: str, service: str,
             image: ImageRef | None) -> tuple[str, str]:
    """(path, unified diff) of pinning ``service`` to ``image`` in ``tier``: the edit the
    layout would write, made in memory; nothing in the checkout changes."""
    relative = checkout.relative(layout.tier_file(tier))
    before, after = layout.pin_edit(tier, app, service, image)
    diff = "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{relative}", tofile=f"b/{relative}"))
    return relative, diff


def _lowest_promotable(layout: Layout, app: str, service: str) -> str:
    """The lowest tier that may take a new image of ``service`` from the tier below it."""
    tiers = layout.tiers()
    pins = [layout.pin(t.name, app, service) for t in tiers]
    if pins[0] is None:
        raise NoImageYet(f"{service} has no image in {tiers[0].name}, the first tier, yet")
    for i in range(1, len(tiers)):
        if pins[i - 1] is not None and pins[i] != pins[i - 1]:
            plan = plan_promotion(layout, app, PromotionRequest(service, tiers[i].name))
            if not isinstance(plan, Unchanged):
                return tiers[i].name
    last = pins[-1]
    raise UserInputError(f"nothing to promote: every tier runs {service}'s image {last.short if last else 'none'}")


def preview_promotion(repo: ManifestRepo, service: str, tier: str | None = None, *, image: str | None = None,
                      force: bool = False, reason: str | None = None) -> ChangePreview | Unchanged:
    """What promoting ``service`` would commit, or why it would change nothing.

    ``image`` is a digest reference or a local image (pushed first, to learn its digest).
    ``tier`` None: the first tier when an image is given, else the lowest tier that may move
    up. The tier rule's refusals are UserInputErrors.
    """
    PromotionRequest(service, tier or "", None, force, reason)  # option errors before any network
    ref = resolve_image(repo, service, tier, image, force) if image is not None else None
    with repo.checkout() as checkout:
        checkout.require_tip()
        layout = checkout.layout()
        app = layout.app(repo.app)
        tiers = layout.tiers()
        if tier is None:
            tier = tiers[0].name if ref is not None else _lowest_promotable(layout, app, service)
        request = PromotionRequest(service, tier, ref, force, reason)
        plan = plan_promotion(layout, app, request)
        if isinstance(plan, Unchanged):
            return plan
        index, _ = layout.tier(tier)
        path, diff = pin_diff(checkout, layout, tier, app, service, plan.image)
    if index == 0:
        rule = (f"{tier} is the first tier: it takes any image pinned by digest; "
                "every later tier will only take this same digest")
    elif plan.reason:
        rule = f"{tier} only takes the image {tiers[index - 1].name} runs now; overridden: {plan.reason}"
    else:
        below = tiers[index - 1].name
        rule = (f"{tier} only takes the image {below} runs now: {plan.image.short} "
                f"is what {below} runs, so the rule holds")
    source = f" from {plan.source}" if plan.source else ""
    return ChangePreview(
        "promote", service, tier, f"promote {service} to {tier}{source}", rule, path, diff,
        plan.message(), repo.destination, image=plan.image, change=plan, request=request)


def preview_rollback(repo: ManifestRepo, service: str, tier: str | None = None) -> ChangePreview:
    """What rolling back ``service`` would commit (``tier`` None: where it was last promoted)."""
    with repo.checkout() as checkout:
        checkout.require_tip()
        layout = checkout.layout()
        app = require_app(layout, repo.app)
        layout.require_service(service)
        history = read_history(checkout, service)
        if tier is None:
            latest = latest_promotion(history)
            if latest is None:
                raise UserInputError(f"nothing to roll back: {service} has no promotion left to revert")
            tier = latest.tier
        plan = plan_rollback(layout, app, [e for e in history if e.tier == tier], service, tier)
        path, diff = pin_diff(checkout, layout, tier, app, service, plan.restored)
    back = plan.restored.short if plan.restored else "no pinned image"
    rule = (f"a rollback reverts promotion {plan.reverts[:10]} (\"{plan.reverted_subject}\"): "
            f"{tier} goes back to what it ran before it, {back}")
    return ChangePreview(
        "rollback", service, tier, f"roll back {service} in {tier}", rule, path, diff,
        plan.message(), repo.destination, image=plan.restored, reverts=plan.reverts, change=plan)


# --- landing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Landing:
    """What landing a preview did: the change committed, or why nothing was."""

    kind: Literal["promote", "rollback"]
    landed: Landed
    promotion: Promotion | None = None
    rollback: Rollback | None = None
    warning: str | None = None  # the change landed is not the one previewed

    @property
    def unchanged(self) -> str | None:
        """Why nothing was committed; None when a change landed."""
        if self.landed.unchanged:
            return self.landed.unchanged
        if self.promotion is None and self.rollback is None:
            return "nothing to promote" if self.kind == "promote" else "nothing rolled back"
        return None


def land(repo: ManifestRepo, preview: ChangePreview) -> Landing:
    """Commit and push what ``preview`` showed; every rule is checked again on the tip."""
    with repo.checkout() as checkout:
        if preview.kind == "promote":
            # The previewed image, not "whatever the tier below runs by now": if the tier
            # below moved meanwhile, the tier rule refuses instead of landing another image.
            asked = preview.request or PromotionRequest(preview.service, preview.tier)
            result = promote(checkout, replace(asked, image=preview.image), app=repo.app)
            return Landing("promote", result.landed, promotion=result.promotion)
        outcome = rollback(checkout, preview.service, preview.tier, app=repo.app)
    warning = None
    done = outcome.rollback
    if done is not None and done.reverts != preview.reverts:
        warning = (f"the manifest repo moved meanwhile: reverted {done.reverts[:10]}, "
                   f"not {preview.reverts[:10] if preview.reverts else '?'} as shown")
    return Landing("rollback", outcome.landed, rollback=done, warning=warning)


# --- the tiers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NextStep:
    """What promoting one cell's image into the tier above would do."""

    tier: str
    target: str | None  # the tier above; None in the last tier
    image: ImageRef | None = None  # what the target would take, when the rule lets it
    blocked: str | None = None  # the tier rule's refusal

    @property
    def up_to_date(self) -> bool:
        """The target runs this cell's image already."""
        return self.target is not None and self.image is None and self.blocked is None


@dataclass(frozen=True)
class TierOverview:
    source: str  # the repo (and folder) as the user configured it
    mode: str
    matrix: TierMatrix
    steps: dict[tuple[str, str], NextStep]


def tier_overview(repo: ManifestRepo) -> TierOverview:
    """The service × tier matrix and, for every cell, the tier rule's verdict on moving it up."""
    with repo.checkout() as checkout:
        matrix = tier_matrix(checkout, app=repo.app)
        layout = checkout.layout()
        names = [t.name for t in matrix.tiers]
        steps: dict[tuple[str, str], NextStep] = {}
        for service in matrix.services:
            for i, tier in enumerate(names):
                if i + 1 == len(names):
                    steps[(service, tier)] = NextStep(tier, None)
                    continue
                target = names[i + 1]
                try:
                    plan = plan_promotion(layout, matrix.app, PromotionRequest(service, target))
                except UserInputError as exc:
                    steps[(service, tier)] = NextStep(tier, target, blocked=str(exc))
                    continue
                image = None if isinstance(plan, Unchanged) else plan.image
                steps[(service, tier)] = NextStep(tier, target, image)
    return TierOverview(repo.source, repo.settings.mode, matrix, steps)
