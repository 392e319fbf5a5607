"""Releases: promote a service's image in the manifest repo's tiers, run a canary, mirror or
switch of it in a tier, and roll either back.

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

from devmesh.app import strategies
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
from devmesh.gitops.rollback import latest_change, plan_rollback, rollback
from devmesh.gitops.settings import ManifestSettings
from devmesh.gitops.tier_strategy import (
    TrafficRequest,
    change_traffic,
    finishing,
    plan_traffic,
    traffic_location,
)
from devmesh.gitops.tier_traffic import CANDIDATE, TierTraffic, file_text, summary
from devmesh.gitops.tiers import TierMatrix, tier_matrix
from devmesh.gitops.trailers import Promotion, Rollback, TrafficChange
from devmesh.plan.strategy import Strategy
from devmesh.workspace import checkout as workspace_checkout
from devmesh.workspace import current_branch, open_repo

Notify = Callable[[str], None]
Publish = Callable[[str, str, str], ImageRef]  # (local image, app, service) → pinned by digest


def _quiet(message: str) -> None:
    del message


@dataclass(frozen=True)
class ManifestRepo:
    """The manifest repo as the release use cases reach it.

    ``app`` is the project's app (None without a project: tiers.yaml names it); ``project``
    renders the tiers' traffic files (strategies need it); ``open``
    gives the locked checkout at the remote tip and ``publish`` pushes a local image (both
    default to the real ones); ``notify`` hears what happens on the way (a push, a cache
    repaired).
    """

    settings: ManifestSettings
    app: str | None = None
    notify: Notify = _quiet
    open: Callable[[], AbstractContextManager[Checkout]] | None = None
    publish: Publish | None = None
    project: Project | None = None

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
    """A promotion, tier strategy or rollback exactly as it would be committed."""

    kind: Literal["promote", "rollback", "traffic"]
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
    change: Promotion | Rollback | TrafficChange | None = field(default=None, compare=False)
    request: PromotionRequest | None = field(default=None, compare=False)  # promote: as asked
    traffic_request: TrafficRequest | None = field(default=None, compare=False)  # traffic: as asked


def pin_diff(checkout: Checkout, layout: Layout, tier: str, app: str, service: str,
             image: ImageRef | None) -> tuple[str, str]:
    """(path, unified diff) of pinning ``service`` to ``image`` in ``tier``: the edit the
    layout would write, made in memory; nothing in the checkout changes."""
    relative = checkout.relative(layout.tier_file(tier))
    before, after = layout.pin_edit(tier, app, service, image)
    diff = "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{relative}", tofile=f"b/{relative}"))
    return relative, diff


def _diff(relative: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{relative}", tofile=f"b/{relative}"))


def traffic_diff(checkout: Checkout, layout: Layout, project: Project, tier: str, service: str,
                 state: TierTraffic) -> tuple[str, str]:
    """(path, unified diff) of writing ``service``'s traffic file in ``tier`` for ``state``,
    made in memory; nothing in the checkout changes."""
    path, _ = traffic_location(layout, tier, service)
    relative = checkout.relative(path)
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    return relative, _diff(relative, before, file_text(project, tier, service, state))


def _require_project(repo: ManifestRepo, what: str) -> Project:
    if repo.project is None:
        raise UserInputError(f"{what} needs the project's devmesh.yaml: a tier's traffic is rendered from it",
                             hint="run it in the project")
    return repo.project


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
        finishes = finishing(layout, repo.project, tier, service, plan.image)
        if finishes is not None:
            assert repo.project is not None
            plan = replace(plan, finishes=finishes)
            diff += traffic_diff(checkout, layout, repo.project, tier, service, TierTraffic())[1]
    if index == 0:
        rule = (f"{tier} is the first tier: it takes any image pinned by digest; "
                "every later tier will only take this same digest")
    elif plan.reason:
        rule = f"{tier} only takes the image {tiers[index - 1].name} runs now; overridden: {plan.reason}"
    else:
        below = tiers[index - 1].name
        rule = (f"{tier} only takes the image {below} runs now: {plan.image.short} "
                f"is what {below} runs, so the rule holds")
    if plan.finishes is not None:
        rule += "; it finishes the strategy open there: the candidate becomes the tier's one version"
    source = f" from {plan.source}" if plan.source else ""
    return ChangePreview(
        "promote", service, tier, f"promote {service} to {tier}{source}", rule, path, diff,
        plan.message(), repo.destination, image=plan.image, change=plan, request=request)


def preview_rollback(repo: ManifestRepo, service: str, tier: str | None = None) -> ChangePreview:
    """What rolling back ``service`` would commit (``tier`` None: where it last changed)."""
    with repo.checkout() as checkout:
        checkout.require_tip()
        layout = checkout.layout()
        app = require_app(layout, repo.app)
        layout.require_service(service)
        history = read_history(checkout, service)
        if tier is None:
            latest = latest_change(history)
            if latest is None:
                raise UserInputError(f"nothing to roll back: {service} has no promotion or strategy left to revert")
            tier = latest.tier
        plan = plan_rollback(layout, app, [e for e in history if e.tier == tier], service, tier, repo.project)
        path, diff = pin_diff(checkout, layout, tier, app, service, plan.restored) if plan.pins else ("", "")
        if plan.traffic_restored is not None:
            assert repo.project is not None
            traffic_path, more = traffic_diff(checkout, layout, repo.project, tier, service, plan.traffic_restored)
            path, diff = path or traffic_path, diff + more
    rule = (f"a rollback reverts {plan.reverts[:10]} (\"{plan.reverted_subject}\"): "
            f"{tier} goes back to what it ran before it, {rollback_back(plan)}")
    return ChangePreview(
        "rollback", service, tier, f"roll back {service} in {tier}", rule, path, diff,
        plan.message(), repo.destination, image=plan.restored, reverts=plan.reverts, change=plan)


def rollback_back(plan: Rollback) -> str:
    """What a rollback goes back to, in words."""
    return _in_words(plan, plan.restored, plan.traffic_restored)


def rollback_from(plan: Rollback) -> str:
    """What a rollback undoes, in words."""
    return _in_words(plan, plan.rolled_back, plan.traffic_rolled_back)


def _in_words(plan: Rollback, pin: ImageRef | None, traffic: TierTraffic | None) -> str:
    parts = []
    if plan.pins:
        parts.append(pin.short if pin else "no pinned image")
    if traffic is not None:
        parts.append(summary(traffic))
    return ", ".join(parts)


def tier_strategy_request(project: Project, service: str, tier: str, kind: str, *, image: ImageRef | None = None,
                          weight: int | None = None, next_step: bool = False, sticky: str | None = None,
                          percent: float | None = None, preset: str | None = None, end: bool = False,
                          end_kind: str | None = None) -> TrafficRequest:
    """A canary, mirror or switch of ``service`` in ``tier`` (``end``: end the one open, of
    ``end_kind`` when given), its choices made as the runtimes' strategies make them: the
    preset's steps and variables, the sticky header kept from step to step."""
    if end:
        return TrafficRequest(service, tier, kind, None, end_kind=end_kind)
    where = f" --tier {tier}"

    def choose(found: Strategy | None) -> Strategy:
        if kind == "canary":
            return strategies.choose_canary(project, service, CANDIDATE, found, weight=weight, next_step=next_step,
                                            sticky=sticky, preset=preset or "canary", where=where)
        if kind == "mirror":
            return strategies.choose_mirror(project, service, CANDIDATE, percent=percent, preset=preset or "mirror")
        return strategies.choose_switch(project, service, CANDIDATE, preset=preset or "red-black")

    choose(None)  # a bad preset, weight or header is refused before the manifest repo is opened
    return TrafficRequest(service, tier, kind, choose, image=image)


def preview_traffic(repo: ManifestRepo, request: TrafficRequest) -> ChangePreview | Unchanged:
    """What running (or ending) a strategy of a service in a tier would commit, or why it
    would change nothing; the tier rule's and the one-strategy rule's refusals are
    UserInputErrors."""
    project = _require_project(repo, f"a {request.kind} in a tier")
    with repo.checkout() as checkout:
        checkout.require_tip()
        layout = checkout.layout()
        app = layout.app(repo.app)
        plan = plan_traffic(layout, project, app, request)
        if isinstance(plan, Unchanged):
            return plan
        path, diff = traffic_diff(checkout, layout, project, plan.tier, plan.service, plan.after)
    if plan.after.candidate is None:
        rule = f"{plan.tier} goes back to its primary version alone; the candidate's Deployment is removed"
    elif plan.source:
        rule = (f"{plan.tier} only takes an image {plan.source} runs as its primary version: the candidate "
                f"{plan.after.candidate.short} is what {plan.source} runs, so the rule holds")
    else:
        rule = f"{plan.tier} is the first tier: its candidate may be any image pinned by digest"
    return ChangePreview(
        "traffic", plan.service, plan.tier, plan.subject(), rule, path, diff, plan.message(),
        repo.destination, image=plan.after.candidate, change=plan, traffic_request=request)


# --- landing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Landing:
    """What landing a preview did: the change committed, or why nothing was."""

    kind: Literal["promote", "rollback", "traffic"]
    landed: Landed
    promotion: Promotion | None = None
    rollback: Rollback | None = None
    warning: str | None = None  # the change landed is not the one previewed
    traffic: TrafficChange | None = None

    @property
    def unchanged(self) -> str | None:
        """Why nothing was committed; None when a change landed."""
        if self.landed.unchanged:
            return self.landed.unchanged
        if self.promotion is None and self.rollback is None and self.traffic is None:
            return {"promote": "nothing to promote", "rollback": "nothing rolled back"}.get(self.kind, "nothing changed")
        return None


def land(repo: ManifestRepo, preview: ChangePreview) -> Landing:
    """Commit and push what ``preview`` showed; every rule is checked again on the tip."""
    with repo.checkout() as checkout:
        if preview.kind == "promote":
            # The previewed image, not "whatever the tier below runs by now": if the tier
            # below moved meanwhile, the tier rule refuses instead of landing another image.
            asked = preview.request or PromotionRequest(preview.service, preview.tier)
            result = promote(checkout, replace(asked, image=preview.image), app=repo.app, project=repo.project)
            return Landing("promote", result.landed, promotion=result.promotion)
        if preview.kind == "traffic":
            return _land_traffic(repo, checkout, preview)
        outcome = rollback(checkout, preview.service, preview.tier, app=repo.app, project=repo.project)
    warning = None
    done = outcome.rollback
    if done is not None and done.reverts != preview.reverts:
        warning = (f"the manifest repo moved meanwhile: reverted {done.reverts[:10]}, "
                   f"not {preview.reverts[:10] if preview.reverts else '?'} as shown")
    return Landing("rollback", outcome.landed, rollback=done, warning=warning)


def _land_traffic(repo: ManifestRepo, checkout: Checkout, preview: ChangePreview) -> Landing:
    asked = preview.traffic_request
    assert asked is not None and isinstance(preview.change, TrafficChange)
    shown = preview.change
    # The candidate previewed, not "whatever the tier below runs by now": if the tier below
    # moved meanwhile, the tier rule refuses instead of landing another candidate.
    request = replace(asked, image=shown.after.candidate) if shown.after.candidate is not None else asked
    result = change_traffic(checkout, _require_project(repo, f"a {asked.kind} in a tier"), request, app=repo.app)
    warning = None
    if result.change is not None and result.change.after != shown.after:
        warning = (f"the manifest repo moved meanwhile: landed {summary(result.change.after)}, "
                   f"not {summary(shown.after)} as shown")
    return Landing("traffic", result.landed, traffic=result.change, warning=warning)


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
                if image is not None:
                    try:  # a strategy open in the target takes only its candidate, once it serves all
                        finishing(layout, repo.project, target, service, image)
                    except UserInputError as exc:
                        steps[(service, tier)] = NextStep(tier, target, blocked=str(exc))
                        continue
                steps[(service, tier)] = NextStep(tier, target, image)
    return TierOverview(repo.source, repo.settings.mode, matrix, steps)
