"""The rollback modal: the revert as it will be committed; enter confirms."""

from __future__ import annotations

from tui.manifests import ChangePreview, Refusal, preview_rollback
from tui.screens.change import ChangeScreen


class RollbackScreen(ChangeScreen):
    """Revert ``service``'s latest promotion in ``tier`` (None: wherever it was last promoted)."""

    verb = "roll back"

    def make_preview(self) -> ChangePreview | Refusal:
        return preview_rollback(self.sources, self.service, self.tier)
