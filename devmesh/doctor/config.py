"""The project file check: the ``devmesh.yaml`` given, else the nearest one, validated; and the
runtime and gateway port it names, for the other checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from devmesh.config import find_config, load_project
from devmesh.doctor.check import RUNTIMES, Check
from devmesh.errors import DevmeshError


@dataclass(frozen=True)
class ConfigOutcome:
    """The devmesh.yaml check, and what the file names for the other checks."""

    check: Check
    runtime: str | None  # the file's ``runtime``, when it could be read
    gateway_port: int | None


def check_config(path: Path | None, *, explicit: bool) -> ConfigOutcome:
    """Validate the project file: the one given, else the nearest one (none is fine)."""
    name, needed_by = "devmesh.yaml", RUNTIMES
    if path is None:
        try:
            path = find_config()
        except DevmeshError:
            skipped = Check(name, "skipped", None, "valid", needed_by, None,
                            "no devmesh.yaml here or in a parent directory")
            return ConfigOutcome(skipped, None, None)
    try:
        project = load_project(path)
    except DevmeshError as exc:
        fix = "correct the file (fields: docs/config.md)" if path.exists() else (
            "give the path of an existing devmesh.yaml with -c" if explicit else "devmesh init"
        )
        return ConfigOutcome(Check(name, "failed", None, "valid", needed_by, fix, str(exc)), None, None)
    ok = Check(name, "ok", None, "valid", needed_by, None, str(project.path))
    return ConfigOutcome(ok, project.runtime, project.routing.gateway_port)
