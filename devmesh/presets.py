"""Service presets: templates owned by a platform team, configured by declared variables.

A preset file (``presets/services/<name>.yaml``) declares ``variables`` (each with a default)
and ``defaults``: service fields in which ``${var}`` is replaced by the variable's value. A
service names the preset and sets only declared variables in ``values``; its own fields win
over the preset's. Presets are applied each time the project is loaded, so a change to a
preset reaches every service that uses it at the next render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

_VAR = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


def presets_root() -> Path:
    """The presets shipped with devmesh (the source tree's or the installed copy)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_presets", here.parent / "presets"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("devmesh's presets directory is missing from this installation")


@dataclass(frozen=True)
class Variable:
    name: str
    default: Any
    description: str = ""


@dataclass(frozen=True)
class ServicePreset:
    name: str
    description: str
    variables: dict[str, Variable]
    defaults: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def render(self, values: dict[str, Any]) -> dict[str, Any]:
        """The preset's service fields with variables substituted."""
        merged = {name: var.default for name, var in self.variables.items()} | values
        return _substitute(self.defaults, merged)


def _substitute(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    if isinstance(node, str):
        whole = _VAR.fullmatch(node)
        if whole:  # keep the value's own type (a port stays an integer)
            return values[whole.group(1)]
        return _VAR.sub(lambda m: str(values[m.group(1)]), node)
    return node


def _read_preset(path: Path) -> ServicePreset:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    variables = {
        name: Variable(name, spec.get("default"), spec.get("description", ""))
        for name, spec in (raw.get("variables") or {}).items()
    }
    return ServicePreset(
        name=path.stem,
        description=raw.get("description", ""),
        variables=variables,
        defaults=raw.get("defaults") or {},
        path=path,
    )


@cache
def _load_dir(folder: Path) -> dict[str, ServicePreset]:
    if not folder.is_dir():
        return {}
    return {p.stem: _read_preset(p) for p in sorted(folder.glob("*.yaml"))}


def service_presets(project_root: Path | None = None) -> dict[str, ServicePreset]:
    """Shipped service presets, overridden by the project's own ``presets/services/``."""
    found = dict(_load_dir(presets_root() / "services"))
    if project_root is not None:
        found.update(_load_dir((project_root / "presets" / "services").resolve()))
    return found


Loc = tuple[str | int, ...]


def apply_presets(data: dict[str, Any], project_root: Path) -> tuple[dict[str, Any], list[tuple[Loc, str]]]:
    """Fill each service's fields from its preset. Returns the new data and any errors."""
    services = data.get("services")
    if not isinstance(services, dict):
        return data, []
    errors: list[tuple[Loc, str]] = []
    available = service_presets(project_root)
    out = dict(services)
    for name, svc in services.items():
        if not isinstance(svc, dict) or svc.get("preset") is None:
            continue
        preset_name = svc["preset"]
        preset = available.get(preset_name) if isinstance(preset_name, str) else None
        if preset is None:
            names = ", ".join(sorted(available)) or "none"
            errors.append(((("services", name, "preset")), f"unknown preset {preset_name!r}; available: {names}"))
            continue
        values = svc.get("values") or {}
        if not isinstance(values, dict):
            continue  # the model reports the wrong type
        unknown = [key for key in values if key not in preset.variables]
        for key in unknown:
            declared = ", ".join(sorted(preset.variables)) or "none"
            errors.append((
                ("services", name, "values", str(key)),
                f"preset {preset.name!r} declares no variable {key!r}; it declares: {declared}",
            ))
        if unknown:
            continue
        out[name] = preset.render(values) | svc
    return {**data, "services": out}, errors
