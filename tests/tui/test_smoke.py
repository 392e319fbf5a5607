"""The real TUI under tmux against the docker runtime and the starter app (.ci/tui-smoke)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.docker


def test_tui_smoke_under_tmux() -> None:
    if shutil.which("tmux") is None:
        if os.environ.get("DEVMESH_REQUIRE_DOCKER") == "1":
            pytest.fail("DEVMESH_REQUIRE_DOCKER=1 but tmux is not installed")
        pytest.skip("tmux is not installed")
    done = subprocess.run(["bash", str(REPO / ".ci" / "tui-smoke")], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "tui-smoke: OK" in done.stdout
