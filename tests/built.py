"""Where `.ci/build-k8s` keeps what it built, as the test run found it.

Tests give HOME a temporary directory of their own (tests/conftest.py), so the environment is
kept as it was when the run began: the binaries and Go's caches are under that HOME.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / ".ci" / "build-k8s"
ENV = dict(os.environ)


def pinned_versions() -> dict[str, str]:
    """``.ci/build-k8s --print versions``: each part's pinned version by name."""
    out = subprocess.run([str(BUILD), "--print", "versions"], capture_output=True, text=True, timeout=60,
                         env=ENV).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def cached_binary(name: str, version: str | None) -> Path:
    """The path ``name`` at ``version`` has in the cache once built (it may not exist)."""
    cache = Path(ENV.get("XDG_CACHE_HOME") or Path(ENV.get("HOME") or Path.home()) / ".cache")
    return cache / "devmesh" / "bin" / f"{name}-{version}" / name
