"""What the Tiers tab and the promote/rollback modals need from the manifest repo.

Everything here blocks (git, the network, the registry): call it from a thread worker. The
use cases are the core's (``devmesh.app.releases``: the tier matrix with each cell's verdict,
the previews with their exact diffs, landing them); this module asks them and turns their
answers into something to show, and their refusals into a Refusal instead of an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from devmesh.app import releases
from devmesh.app.releases import ChangePreview, ManifestRepo
from devmesh.errors import UserInputError
from devmesh.gitops.landed import landed_message

if TYPE_CHECKING:
    from devmesh.gitops.images import ImageRef
    from devmesh.gitops.land import Landed
    from devmesh.gitops.tiers import TierMatrix
    from tui.sources import Sources

__all__ = ["CellVerdict", "ChangePreview", "LandedChange", "Refusal", "TiersView", "land_preview",
           "preview_promotion", "preview_rollback", "read_tiers"]

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


def _repo(sources: Sources) -> ManifestRepo:
    """The manifest repo through the TUI's seam (its checkout, its registry push)."""

    def publish(local: str, app: str, service: str) -> ImageRef:
        del app  # the project's: the layout of another app is refused before any push
        return sources.publish(local, service)

    return ManifestRepo(sources.manifest_settings(), sources.project.app, open=sources.checkout, publish=publish,
                        project=sources.project)


def _verdict(step: releases.NextStep) -> CellVerdict:
    if step.target is None:
        return CellVerdict(None, False, f"{step.tier} is the last tier", "up to date")
    if step.blocked is not None:
        return CellVerdict(step.target, False, f"blocked: {step.blocked}", f"blocked at {step.target}")
    if step.image is None:
        return CellVerdict(step.target, False, f"up to date: {step.target} runs it too", "up to date")
    digest = step.image.short.removeprefix("sha256:")
    return CellVerdict(step.target, True, f"{step.target} may take {step.image.short} from {step.tier} (p promotes)",
                       f"{step.target} ← {digest} ({step.tier})")


def read_tiers(sources: Sources) -> TiersView:
    """The service × tier matrix and, for every cell, the core's verdict on promoting it up."""
    overview = releases.tier_overview(_repo(sources))
    verdicts = {cell: _verdict(step) for cell, step in overview.steps.items()}
    return TiersView(overview.source, overview.matrix, verdicts, overview.mode)


# --- previews ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why nothing can be done (the tier rule, nothing to roll back, …): shown, not raised."""

    message: str
    hint: str | None = None


Shown = TypeVar("Shown")


def _refused(call: Callable[[], Shown]) -> Shown | Refusal:
    try:
        return call()
    except releases.NoImageYet as exc:
        return Refusal(str(exc), "press p on the service in a branch environment that forks it "
                                 "to promote the branch's build")
    except UserInputError as exc:
        return Refusal(str(exc), exc.hint)


def preview_promotion(sources: Sources, service: str, tier: str | None = None,
                      local_image: str | None = None) -> ChangePreview | Refusal:
    """What promoting ``service`` would commit.

    ``tier`` None: the branch's ``local_image`` into the first tier when given (it is pushed to
    the registry first, to learn its digest), else the lowest tier that may move up.
    """

    def preview() -> ChangePreview | Refusal:
        found = releases.preview_promotion(_repo(sources), service, tier, image=local_image)
        return found if isinstance(found, ChangePreview) else Refusal(found.reason)

    return _refused(preview)


def preview_rollback(sources: Sources, service: str, tier: str | None = None) -> ChangePreview | Refusal:
    """What rolling back ``service`` would commit (``tier`` None: where it was last promoted)."""
    return _refused(lambda: releases.preview_rollback(_repo(sources), service, tier))


def preview_tier_strategy(sources: Sources, service: str, tier: str, kind: str) -> ChangePreview | Refusal:
    """What a ``kind`` (canary, switch) of ``service`` in ``tier`` would commit; a canary
    starts at its preset's first step, or takes the open one to the next step."""

    def preview() -> ChangePreview | Refusal:
        request = releases.tier_strategy_request(sources.project, service, tier, kind, next_step=kind == "canary")
        found = releases.preview_traffic(_repo(sources), request)
        return found if isinstance(found, ChangePreview) else Refusal(found.reason)

    return _refused(preview)


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

    def land() -> LandedChange | Refusal:
        landing = releases.land(_repo(sources), preview)
        if landing.unchanged:
            return Refusal(landing.unchanged)
        if landing.promotion is not None:
            done = f"promoted {preview.service} to {preview.tier}: {landing.promotion.image.short}"
        elif landing.traffic is not None:
            done = landing.traffic.subject()
        else:
            assert landing.rollback is not None
            done = f"rolled back {preview.service} in {preview.tier} to {releases.rollback_back(landing.rollback)}"
        return LandedChange(_landed_text(landing.landed, done), landing.landed.commit, landing.warning)

    return _refused(land)
