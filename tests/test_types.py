"""The core library and the TUI type-check under mypy --strict (configured in pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_core_and_the_tui_type_check_strictly(tmp_path: Path) -> None:
    # MYPYPATH: this checkout's packages, not whichever devmesh is installed.
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"),
                           "devmesh", "tui"],
                          cwd=REPO, env={**os.environ, "MYPYPATH": str(REPO)},
                          capture_output=True, text=True, timeout=900)
    # Without mypy (it is in the test extra) this fails too: a check that cannot run is no check.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout
