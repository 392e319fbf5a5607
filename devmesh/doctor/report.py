"""The report of ``devmesh doctor``: the checks and the chosen runtime, what that runtime
still needs, and the report as JSON or as an aligned plain-text table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from devmesh.doctor.check import Check, Runtime


@dataclass(frozen=True)
class Report:
    """Every check, and the runtime they were judged for (with the reason it was chosen)."""

    runtime: Runtime
    reason: str
    checks: tuple[Check, ...]

    def problems(self) -> list[Check]:
        """The checks the chosen runtime needs that are not ok."""
        return [c for c in self.checks if not c.ok and self.runtime in c.needed_by]

    @property
    def ok(self) -> bool:
        return not self.problems()

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "reason": self.reason,
            "ok": self.ok,
            "problems": [c.name for c in self.problems()],
            "checks": [c.to_json() for c in self.checks],
        }


_SYMBOL = {"ok": "ok", "missing": "MISSING", "too-old": "TOO OLD", "failed": "FAILED", "skipped": "skipped"}


def format_table(report: Report) -> str:
    """The report as aligned plain text."""
    header = ("CHECK", "STATUS", "FOUND", "REQUIRED", "NEEDED BY")
    rows = [
        (c.name, _SYMBOL[c.status], c.version or "-", c.required or "-", ", ".join(c.needed_by))
        for c in report.checks
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    out = [f"runtime: {report.runtime} ({report.reason})", "", line(header)]
    out += [line(row) for row in rows]
    attention = [c for c in report.checks if not c.ok]
    if attention:
        out.append("")
    for check in attention:
        needed = report.runtime in check.needed_by
        tag = "" if needed else f" (not needed by the {report.runtime} runtime)"
        detail = check.detail.splitlines() or [""]
        out.append(f"{check.name}: {detail[0]}{tag}")
        out += [f"  {more}" for more in detail[1:]]
        if check.fix:
            out.append(f"  fix: {check.fix}")
    out.append("")
    problems = report.problems()
    if problems:
        names = ", ".join(c.name for c in problems)
        out.append(f"not ready: the {report.runtime} runtime needs {names}")
    else:
        out.append(f"ready: everything the {report.runtime} runtime needs is here")
    return "\n".join(out)
