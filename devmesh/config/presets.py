"""Service presets: templates owned by a platform team, configured by declared variables.

A preset file (``presets/services/<name>.yaml``) declares ``variables`` (each with a default)
and ``defaults``: service fields in which ``${var}`` is replaced by the variable's value. A
service names the preset and sets only declared variables in ``values``; its own fields win
over the preset's. Presets are applied each time the project is loaded, so a change to a
preset reaches every service that uses it at the next render.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any


from devmesh.config.diagnostics import dotted, line_for
from devmesh.config.yamlfile import parse_yaml, read_text
from devmesh.errors import ConfigError, UserInputError

_VAR = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")


def presets_root() -> Path:
    """The presets shipped with devmesh (the source tree's or the installed copy)."""
    package = Path(__file__).resolve().parents[1]  # devmesh/
    for candidate in (package / "_presets", package.parent / "presets"):
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
        rendered: dict[str, Any] = _substitute(self.defaults, merged)
        return rendered

    def variable_at(self, path: tuple[str | int, ...]) -> str | None:
        """The variable that fills the service field at ``path`` (e.g. ``("sync", 0, "dest")``)."""
        node: Any = self.defaults
        for part in path:
            if isinstance(node, str):
                break
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                return None
        used = _variables_in(node)
        return used[0] if used else None


def _variables_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [name for value in node.values() for name in _variables_in(value)]
    if isinstance(node, list):
        return [name for value in node for name in _variables_in(value)]
    if isinstance(node, str):
        return _VAR.findall(node)
    return []


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
    """Read one preset file; a broken one is a ConfigError naming the file (and line).

    Read with devmesh.yaml's bounded reader, so an alias bomb or a recursive alias in a
    project's preset fails fast too.
    """
    try:
        display = str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        display = str(path)
    try:
        raw, lines = parse_yaml(read_text(path, display), display)
    except OSError as exc:
        raise ConfigError(display, None, None, f"cannot read preset: {exc.strerror or exc}") from None
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(display, 1, None, "expected a mapping with 'variables' and 'defaults'")

    def error(loc: tuple[str | int, ...], problem: str) -> ConfigError:
        return ConfigError(display, line_for(loc, lines), dotted(loc), problem)

    unknown = sorted(key for key in raw if key not in ("description", "variables", "defaults"))
    if unknown:
        raise error((unknown[0],), "unknown field; a preset has description, variables, defaults")
    specs = raw.get("variables") or {}
    if not isinstance(specs, dict):
        raise error(("variables",), "expected a mapping of variable name to its spec")
    variables: dict[str, Variable] = {}
    for name, spec in specs.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise error(("variables", name),
                        "expected a variable name of lower-case letters, digits and '_'")
        if not isinstance(spec, dict) or "default" not in spec:
            raise error(("variables", name),
                        "expected a mapping with 'default' (and optionally 'description')")
        variables[name] = Variable(name, spec["default"], str(spec.get("description", "")))
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise error(("defaults",), "expected a mapping of service fields")
    undeclared = sorted(set(_variables_in(defaults)) - set(variables))
    if undeclared:
        raise error(("defaults",),
                    f"uses ${{{undeclared[0]}}}, which is not declared under 'variables'")
    return ServicePreset(
        name=path.stem,
        description=str(raw.get("description", "")),
        variables=variables,
        defaults=defaults,
        path=path,
    )


def _dir_signature(folder: Path) -> tuple[tuple[str, int, int], ...]:
    files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    out = []
    for p in files:
        try:
            st = p.stat()
        except OSError:
            continue
        out.append((p.name, st.st_mtime_ns, st.st_size))
    return tuple(out)


@cache
def _load_dir_cached(
    folder: Path, signature: tuple[tuple[str, int, int], ...]
) -> dict[str, ServicePreset]:
    return {Path(name).stem: _read_preset(folder / name) for name, _, _ in signature}


def _load_dir(folder: Path) -> dict[str, ServicePreset]:
    # Keyed on the files' times and sizes: an edited preset is read again by a running
    # process (the TUI), as the module promises.
    return _load_dir_cached(folder, _dir_signature(folder))


def service_presets(project_root: Path | None = None) -> dict[str, ServicePreset]:
    """Shipped service presets, overridden by the project's own ``presets/services/``."""
    found = dict(_load_dir(presets_root() / "services"))
    if project_root is not None:
        found.update(_load_dir((project_root / "presets" / "services").resolve()))
    return found


Loc = tuple[str | int, ...]


def _quoted(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


# Variables presets no longer declare, and what replaced them.
RETIRED = {
    "workdir": "presets no longer take 'workdir': devmesh reads where the sources go from the "
               "Dockerfile's COPY; remove it, or write the rule yourself (sync: [{src: ., dest: DIR}])",
}


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
        key = str(name)
        preset_name = svc["preset"]
        preset = available.get(preset_name) if isinstance(preset_name, str) else None
        if preset is None:
            names = ", ".join(sorted(available)) or "none"
            close = difflib.get_close_matches(str(preset_name), sorted(available), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append((
                ("services", key, "preset"),
                f"unknown preset {_quoted(preset_name)}; {hint}available: {names}",
            ))
            continue
        values = svc.get("values") or {}
        if not isinstance(values, dict):
            continue  # the model reports the wrong type
        unknown = [k for k in values if k not in preset.variables]
        for k in unknown:
            if k in RETIRED:
                errors.append((("services", key, "values", str(k)), RETIRED[str(k)]))
                continue
            declared = ", ".join(sorted(preset.variables)) or "none"
            close = difflib.get_close_matches(str(k), sorted(preset.variables), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append((
                ("services", key, "values", str(k)),
                f"preset {preset.name!r} declares no variable {_quoted(k)}; {hint}it declares: {declared}",
            ))
        if unknown:
            continue
        out[name] = preset.render(values) | svc
    return {**data, "services": out}, errors


# --- strategy presets -----------------------------------------------------------------------
#
# ``presets/strategies/<name>.yaml`` has the same shape as a service preset; its ``defaults``
# name the ``kind`` of strategy and its settings:
#
#   canary    steps (weights in percent, rising, for ``canary --next``), sticky_header
#   mirror    percent
#   switch    (no settings: red/black)
#   rolling   max_surge, max_unavailable (the Deployment update of the kind runtime)

STRATEGY_KINDS: dict[str, frozenset[str]] = {
    "canary": frozenset({"steps", "sticky_header", "analysis"}),
    "mirror": frozenset({"percent"}),
    "switch": frozenset(),
    "rolling": frozenset({"max_surge", "max_unavailable"}),
}


# ``canary --auto``'s thresholds (a canary preset's ``analysis``): name → (default, check, what
# the check wants). Each step waits for min_requests of the canary's and of the baseline's
# requests without the routing header, then the canary passes when its error rate is at most
# the baseline's + max_error_increase points and its p95 latency at most max_latency_ratio × the
# baseline's (or the baseline's + latency_slack_ms, whichever is more: a 2 ms p95 must not fail
# a 3 ms one); step_timeout seconds without enough requests stop the run.
ANALYSIS: dict[str, tuple[float, Callable[[Any], bool], str]] = {
    "min_requests": (20, lambda v: _whole(v) and v >= 1, "a whole number of requests, at least 1"),
    "max_error_increase": (1.0, lambda v: _number(v) and 0 <= v <= 100,
                           "percentage points between 0 and 100"),
    "max_latency_ratio": (1.2, lambda v: _number(v) and 1 <= v <= 1000, "a ratio of at least 1, e.g. 1.2"),
    "latency_slack_ms": (5, lambda v: _whole(v) and 0 <= v <= 3_600_000, "whole milliseconds, 0 or more"),
    "step_timeout": (300, lambda v: _number(v) and 0 < v <= 86_400,
                     "seconds above 0 and at most a day"),
}


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def analysis_problem(analysis: Any) -> tuple[str, str] | None:
    """(field, what is wrong) for a canary preset's ``analysis`` mapping, or None."""
    if not isinstance(analysis, dict):
        return "analysis", f"expected a mapping of {', '.join(ANALYSIS)}"
    for key, value in analysis.items():
        if key not in ANALYSIS:
            return f"analysis.{key}", f"not an analysis threshold (they are: {', '.join(ANALYSIS)})"
        _, check, wanted = ANALYSIS[key]
        if not check(value):
            return f"analysis.{key}", f"expected {wanted}, got {_quoted(value)}"
    return None


def analysis_settings(preset: StrategyPreset) -> dict[str, float]:
    """A canary preset's analysis thresholds, each defaulted."""
    given = preset.settings.get("analysis") or {}
    return {key: float(given.get(key, default)) for key, (default, _, _) in ANALYSIS.items()}


@dataclass(frozen=True)
class StrategyPreset:
    name: str
    description: str
    kind: str
    variables: dict[str, Variable]
    settings: dict[str, Any]
    path: Path | None = None

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(self.settings.get("steps", ()))


def _strategy_problem(kind: Any, settings: dict[str, Any]) -> tuple[str, str] | None:
    """(field, what is wrong) for a strategy preset's rendered defaults, or None."""
    if kind not in STRATEGY_KINDS:
        return "kind", f"expected one of {', '.join(STRATEGY_KINDS)}, got {_quoted(kind)}"
    unknown = sorted(set(settings) - STRATEGY_KINDS[kind])
    if unknown:
        known = ", ".join(sorted(STRATEGY_KINDS[kind])) or "none"
        return unknown[0], f"not a setting of a {kind} strategy (its settings: {known})"
    if kind == "canary":
        steps = settings.get("steps", [])
        if (not isinstance(steps, list) or not steps
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 100 for s in steps)
                or steps != sorted(set(steps))):
            return "steps", "expected a rising list of weights 1–100, e.g. [10, 25, 50, 100]"
        sticky = settings.get("sticky_header", "")
        if not isinstance(sticky, str) or (sticky and not re.fullmatch(r"[a-z0-9][a-z0-9-]*", sticky)):
            return "sticky_header", "expected a lower-case header name, or \"\" for none"
        problem = analysis_problem(settings.get("analysis", {}))
        if problem is not None:
            return problem
    if kind == "mirror":
        percent = settings.get("percent", 100)
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100:
            return "percent", "expected a number above 0 and at most 100"
    if kind == "rolling":
        for key in ("max_surge", "max_unavailable"):
            value = settings.get(key, 0)
            ok = (isinstance(value, int) and not isinstance(value, bool) and value >= 0) or (
                isinstance(value, str) and re.fullmatch(r"\d{1,3}%", value) is not None)
            if not ok:
                return key, "expected a whole number or a percentage such as 25%"
    return None


def _strategy_preset(raw: ServicePreset) -> StrategyPreset:
    display = str(raw.path) if raw.path is not None else raw.name
    rendered = raw.render({})
    kind = rendered.pop("kind", None)
    problem = _strategy_problem(kind, rendered)
    if problem is not None:
        field_name, message = problem
        raise ConfigError(display, None, f"defaults.{field_name}", message)
    return StrategyPreset(raw.name, raw.description, str(kind), raw.variables, rendered, raw.path)


def strategy_presets(project_root: Path | None = None) -> dict[str, StrategyPreset]:
    """Shipped strategy presets, overridden by the project's own ``presets/strategies/``."""
    found = {name: _strategy_preset(p)
             for name, p in _load_dir(presets_root() / "strategies").items()}
    if project_root is not None:
        own = _load_dir((project_root / "presets" / "strategies").resolve())
        found.update((name, _strategy_preset(p)) for name, p in own.items())
    return found


def strategy_preset(name: str, kind: str, project_root: Path | None = None) -> StrategyPreset:
    """The named strategy preset, which must be of ``kind``; a UserInputError otherwise."""
    available = strategy_presets(project_root)
    preset = available.get(name)
    if preset is None:
        names = ", ".join(sorted(available)) or "none"
        close = difflib.get_close_matches(name, sorted(available), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserInputError(f"unknown strategy preset {name!r}; {hint}available: {names}",
                             hint="'devmesh presets' lists them with their variables")
    if preset.kind != kind:
        of_kind = ", ".join(sorted(n for n, p in available.items() if p.kind == kind)) or "none"
        raise UserInputError(f"strategy preset {name!r} is a {preset.kind} preset, not a {kind} one; "
                             f"{kind} presets: {of_kind}")
    return preset


@dataclass(frozen=True)
class PresetListing:
    """One preset as ``devmesh presets`` shows it."""

    category: str  # service or strategy
    name: str
    description: str
    kind: str | None
    variables: tuple[Variable, ...]
    source: str  # "devmesh" for shipped presets, else the file

    def to_json(self) -> dict[str, Any]:
        return {"category": self.category, "name": self.name, "description": self.description,
                "kind": self.kind, "source": self.source,
                "variables": [{"name": v.name, "default": v.default, "description": v.description}
                              for v in self.variables]}


def list_presets(project_root: Path | None = None) -> list[PresetListing]:
    """Every service and strategy preset the project can use, with its variables."""
    shipped = presets_root().resolve()

    def source(path: Path | None) -> str:
        if path is None:
            return "devmesh"
        resolved = path.resolve()
        return "devmesh" if resolved.is_relative_to(shipped) else str(resolved)

    out = [PresetListing("service", p.name, p.description, None,
                         tuple(p.variables.values()), source(p.path))
           for p in service_presets(project_root).values()]
    out += [PresetListing("strategy", p.name, p.description, p.kind,
                          tuple(p.variables.values()), source(p.path))
            for p in strategy_presets(project_root).values()]
    return sorted(out, key=lambda p: (p.category, p.name))
