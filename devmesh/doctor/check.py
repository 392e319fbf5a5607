"""What one check of ``devmesh doctor`` found (``Check``), and the reading of versions and
tool output that the checks share.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

RUNTIMES = ("kind", "docker")
Runtime = Literal["kind", "docker"]
Status = Literal["ok", "missing", "too-old", "failed", "skipped"]


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    status: Status
    version: str | None
    required: str | None
    needed_by: tuple[str, ...]
    fix: str | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")

    @property
    def present(self) -> bool:
        """Found at all (perhaps too old): what ``runtime: auto`` looks at."""
        return self.status in ("ok", "too-old")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["needed_by"] = list(self.needed_by)
        return out


VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def first_version(text: str) -> str | None:
    """The first ``major.minor[.patch]`` in ``text``."""
    match = VERSION.search(text)
    return match.group(0) if match else None


def _as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def at_least(version: str, minimum: tuple[int, ...]) -> bool:
    """Whether the dotted ``version`` is ``minimum`` or newer."""
    found = _as_tuple(version)
    return found + (0,) * (len(minimum) - len(found)) >= minimum


def dotted(version: tuple[int, ...]) -> str:
    """``(1, 41)`` as ``1.41``."""
    return ".".join(str(part) for part in version)


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped (empty when there is none)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""
