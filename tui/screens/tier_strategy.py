"""The tier strategy modal: a canary step or a switch in one tier, as the commit to its traffic
file; enter confirms."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.manifests import ChangePreview, Refusal, preview_tier_strategy
from tui.screens.change import ChangeScreen

if TYPE_CHECKING:
    from tui.sources import Sources


class TierStrategyScreen(ChangeScreen):
    """A ``kind`` (canary: its next step; switch) of ``service`` in ``tier``."""

    def __init__(self, sources: Sources, service: str, tier: str, kind: str) -> None:
        super().__init__(sources, service, tier)
        self.kind = kind
        self.verb = kind

    def heading(self) -> str:
        return f"{self.kind} {self.service} in {self.tier}"

    def make_preview(self) -> ChangePreview | Refusal:
        assert self.tier is not None
        return preview_tier_strategy(self.sources, self.service, self.tier, self.kind)
