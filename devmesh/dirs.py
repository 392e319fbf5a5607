"""Where devmesh keeps what it writes outside a project."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """Per-app state (Envoy's files, release strategies, kind's settings): DEVMESH_STATE_DIR
    itself, else ``devmesh`` under $XDG_STATE_HOME (default ~/.local/state)."""
    chosen = os.environ.get("DEVMESH_STATE_DIR")
    if chosen:
        return Path(chosen)
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "devmesh"
