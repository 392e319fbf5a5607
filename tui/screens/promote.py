"""The promote modal: the exact diff to be committed and the tier rule; enter confirms."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.manifests import ChangePreview, Refusal, preview_promotion
from tui.screens.change import ChangeScreen

if TYPE_CHECKING:
    from tui.sources import Sources


class PromoteScreen(ChangeScreen):
    """Promote ``service`` into ``tier`` (None: the next tier it may enter)."""

    verb = "promote"

    def __init__(self, sources: Sources, service: str, tier: str | None = None,
                 local_image: str | None = None) -> None:
        super().__init__(sources, service, tier)
        self.local_image = local_image

    def heading(self) -> str:
        if self.local_image:
            return f"promote {self.service}: the branch's build into the first tier"
        return f"promote {self.service} to {self.tier}" if self.tier else f"promote {self.service} to the next tier"

    def make_preview(self) -> ChangePreview | Refusal:
        return preview_promotion(self.sources, self.service, self.tier, self.local_image)
