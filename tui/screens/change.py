"""The modal shared by promote and rollback: preview, confirm with enter, land, report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, LoadingIndicator

from devmesh.errors import DevmeshError
from tui.manifests import ChangePreview, LandedChange, Refusal, land_preview
from tui.widgets.change_view import ChangeView

if TYPE_CHECKING:
    from tui.sources import Sources


class ChangeScreen(ModalScreen[LandedChange | None]):
    """Subclasses say what to preview; this screen shows it and lands it on enter."""

    DEFAULT_CSS = """
    ChangeScreen { align: center middle; }
    ChangeScreen > #dialog {
        width: 100; height: auto; max-height: 90%;
        border: thick $primary; background: $surface; padding: 0 1;
    }
    ChangeScreen #change-title { text-style: bold; width: 1fr; padding: 0 0 1 0; }
    ChangeScreen #change-body { height: auto; max-height: 26; }
    ChangeScreen LoadingIndicator { height: 3; }
    ChangeScreen #change-keys { color: $text-muted; padding: 1 0 0 0; }
    """

    BINDINGS = [
        Binding("enter", "confirm", "Confirm", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    verb = "change"

    def __init__(self, sources: Sources, service: str, tier: str | None) -> None:
        super().__init__()
        self.sources = sources
        self.service = service
        self.tier = tier
        self.preview: ChangePreview | None = None
        self.refusal: Refusal | None = None
        self.busy = True

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.heading(), id="change-title")
            yield LoadingIndicator()
            with VerticalScroll(id="change-body"):
                yield ChangeView(id="change-view")
            yield Label("reading the manifest repo… (esc cancels)", id="change-keys")

    def heading(self) -> str:
        where = f" in {self.tier}" if self.tier else ""
        return f"{self.verb} {self.service}{where}"

    def on_mount(self) -> None:
        self.prepare()

    # --- what subclasses provide ------------------------------------------------------------

    def make_preview(self) -> ChangePreview | Refusal:
        raise NotImplementedError

    # --- workers ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="change")
    def prepare(self) -> None:
        outcome = self._guarded(self.make_preview)
        self.app.call_from_thread(self._prepared, outcome)

    @work(thread=True, exclusive=True, group="change")
    def land(self, preview: ChangePreview) -> None:
        outcome = self._guarded(lambda: land_preview(self.sources, preview))
        self.app.call_from_thread(self._landed, outcome)

    @staticmethod
    def _guarded(call: object) -> ChangePreview | LandedChange | Refusal:
        """Every failure becomes a Refusal with the reason: the user sees words, not a traceback."""
        assert callable(call)
        try:
            return call()  # type: ignore[no-any-return]
        except DevmeshError as exc:
            return Refusal(str(exc), exc.hint)
        except Exception as exc:  # a bug or an SDK error: still a message, never a crash
            return Refusal(f"unexpected error: {type(exc).__name__}: {exc}")

    # --- results --------------------------------------------------------------------------------

    def _prepared(self, outcome: ChangePreview | LandedChange | Refusal) -> None:
        self.busy = False
        self.query_one(LoadingIndicator).display = False
        view = self.query_one(ChangeView)
        keys = self.query_one("#change-keys", Label)
        if isinstance(outcome, ChangePreview):
            self.preview = outcome
            self.query_one("#change-title", Label).update(Text(outcome.title, style="bold"))
            view.show_preview(outcome)
            keys.update("enter commits this change · esc cancels")
        else:
            assert isinstance(outcome, Refusal)
            self.refusal = outcome
            self.query_one("#change-title", Label).update(Text(f"cannot {self.heading()}", style="bold red"))
            view.show_refusal(outcome)
            keys.update("enter or esc closes")

    def _landed(self, outcome: ChangePreview | LandedChange | Refusal) -> None:
        self.busy = False
        if isinstance(outcome, LandedChange):
            self.dismiss(outcome)
            return
        self.query_one(LoadingIndicator).display = False
        assert isinstance(outcome, Refusal)
        self.preview = None
        self.refusal = outcome
        self.query_one("#change-title", Label).update(Text(f"{self.heading()}: not done", style="bold red"))
        self.query_one(ChangeView).show_refusal(outcome)
        self.query_one("#change-keys", Label).update("enter or esc closes")

    # --- keys -----------------------------------------------------------------------------------

    def action_confirm(self) -> None:
        if self.busy:
            return
        if self.preview is None:
            self.dismiss(None)
            return
        self.busy = True
        self.query_one(LoadingIndicator).display = True
        self.query_one("#change-keys", Label).update("committing and pushing…")
        self.land(self.preview)

    def action_cancel(self) -> None:
        self.workers.cancel_group(self, "change")
        self.dismiss(None)
