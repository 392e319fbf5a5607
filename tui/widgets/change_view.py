"""A promotion or rollback as it will be committed: the rule, the diff and the message."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.manifests import ChangePreview, Refusal


def diff_text(diff: str) -> Text:
    """A unified diff with added lines green, removed lines red and hunk headers cyan."""
    out = Text()
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = "dim"
        out.append(line + "\n", style=style)
    return out


class ChangeView(Static):
    """Shows a ChangePreview, or a Refusal with its reason."""

    DEFAULT_CSS = """
    ChangeView { height: auto; }
    """

    def show_preview(self, preview: ChangePreview) -> None:
        self.update(Text.assemble(
            ("tier rule  ", "bold"), preview.rule, "\n",
            ("where      ", "bold"), preview.destination, "\n\n",
            (f"diff of {preview.path}\n", "bold"),
            diff_text(preview.diff) if preview.diff else Text("(the file does not change)\n", style="yellow"),
            ("\ncommit message\n", "bold"),
            (preview.message, "dim"),
        ))

    def show_refusal(self, refusal: Refusal) -> None:
        text = Text(refusal.message, style="bold red")
        if refusal.hint:
            text.append(f"\nhint: {refusal.hint}", style="red")
        self.update(text)
