"""The services of the selected environment: which version runs, its state and last sync."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.message import Message
from textual.widgets import DataTable

from devmesh.runtime.base import EnvironmentState
from tui.palette import service_colour
from tui.widgets.keyed_table import KeyedRow, KeyedTable


@dataclass(frozen=True)
class SyncNote:
    """The last live sync into a service: how many files, how long it took."""

    files: int
    ms: float


def short_image(image: str) -> str:
    """``registry/app/api:0123456789abcdef`` → ``api:0123456789ab``; digests shortened alike."""
    if not image:
        return "-"
    name, at, digest = image.partition("@")
    tail = name.rsplit("/", 1)[-1]
    if at:
        return f"{tail}@{digest.removeprefix('sha256:')[:12]}"
    repo, colon, tag = tail.rpartition(":")
    return f"{repo}:{tag[:12]}" if colon else tail


class ServiceTable(KeyedTable):
    """One row per service (its name is the row's key); the highlighted row is the service
    `p` and `b` act on."""

    class Highlighted(Message):
        def __init__(self, service: str) -> None:
            super().__init__()
            self.service = service

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.state: EnvironmentState | None = None
        self.syncs: dict[tuple[str, str], SyncNote] = {}

    def on_mount(self) -> None:
        for label, width in (("SERVICE", 10), ("VERSION", 8), ("IMAGE", 22), ("STATE", 11),
                             ("READY", 5), ("LAST SYNC", 16)):
            self.add_column(label, key=label.lower(), width=width)

    @property
    def service(self) -> str | None:
        """The highlighted service."""
        return self.cursor_key

    def show(self, env: str, state: EnvironmentState | None, services: list[str], *, known: bool = True) -> None:
        """The services of ``env``; ``known`` False when the runtime did not answer."""
        self.state = state
        by_name = {s.service: s for s in state.services} if state else {}
        rows: list[KeyedRow] = []
        for name in services:
            s = by_name.get(name)
            if s is None:
                cells: list[Text | str] = [Text(name, style=service_colour(name)), Text("-", style="dim"), "-",
                                           Text("not running" if known else "unknown", style="dim" if known else "red"),
                                           "-", "-"]
            else:
                forked = s.env == env and env != "baseline"
                version = Text("fork" if forked else "baseline", style="bold magenta" if forked else "")
                state_style = "green" if s.state == "running" else "red" if s.state in ("exited", "dead", "missing") else "yellow"
                ready = Text("yes", style="green") if s.ready else Text("no", style="red") if s.ready is False else Text("?", style="yellow")
                sync = self.syncs.get((s.env, name))
                sync_text = f"{sync.files} file{'s' if sync.files != 1 else ''}, {sync.ms:.0f} ms" if sync else "-"
                cells = [Text(name, style=f"bold {service_colour(name)}"), version, short_image(s.image),
                         Text(s.state, style=state_style), ready, sync_text]
            rows.append((name, cells))
        self.set_rows(rows)

    def note_sync(self, env: str, service: str, note: SyncNote) -> None:
        self.syncs[(env, service)] = note

    @on(DataTable.RowHighlighted)
    def _moved(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Highlighted(str(event.row_key.value)))
