"""Reading the project: finding devmesh.yaml, validating it into a Project, and naming every
mistake with its file, line, dotted field and what was expected, e.g.
``devmesh.yaml:14: services.api.port: expected an integer 1–65535, got "http"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from devmesh.config.diagnostics import (
    ConfigErrors,
    Loc,
    describe,
    did_you_mean,
    dotted,
    error_loc,
    line_for,
    translate,
)
from devmesh.config.schema import CONFIG_NAME, Project
from devmesh.config.yamlfile import parse_yaml, read_text
from devmesh.errors import ConfigError, UserInputError
from devmesh.config.presets import apply_presets, service_presets


def _iter_semantic_errors(project: Project, lines: Mapping[Loc, int]) -> Iterator[tuple[Loc, str]]:
    entries = [name for name, svc in project.services.items() if svc.entry]
    if not project.services:
        yield ("services",), "expected at least one service"
        return
    if len(entries) > 1:
        for name in entries[1:]:
            yield (
                ("services", name, "entry"),
                f"only one service can be the entry; {entries[0]!r} already is",
            )
    for name, svc in project.services.items():
        base = ("services", name)
        if svc.values and svc.preset is None:
            yield (*base, "values"), (
                "values fill the variables of a preset, but the service names no preset; "
                "set 'preset' or remove 'values'"
            )
        context = project.root / svc.context
        where = (*base, "context") if (*base, "context") in lines else base
        if context.is_file():
            yield where, f"build context {svc.context!r} is a file, not a folder"
            continue
        if not context.is_dir():
            yield where, f"build context {svc.context!r} does not exist (looked in {context})"
            continue
        # Resolved, so that a symbolic link cannot lead the build (and sync) out of the project.
        root = project.root.resolve()
        if not context.resolve().is_relative_to(root):
            yield where, (f"build context {svc.context!r} lies outside the project "
                          f"(it leads to {context.resolve()})")
            continue
        dockerfile = (context / svc.dockerfile).resolve()
        where = (*base, "dockerfile") if (*base, "dockerfile") in lines else base
        if not dockerfile.is_relative_to(root):
            yield where, f"Dockerfile {svc.dockerfile!r} lies outside the project"
        elif not dockerfile.is_file():
            yield where, f"Dockerfile {svc.dockerfile!r} not found in build context {svc.context!r}"
        if svc.port is None:
            yield (*base, "port") if (*base, "port") in lines else base, (
                "no container port: set 'port' or use a preset that gives one"
            )
        for i, rule in enumerate(svc.sync or ()):
            if not (context / rule.src).exists():
                yield (*base, "sync", i, "src"), (
                    f"sync source {rule.src!r} does not exist in build context {svc.context!r}"
                )
            elif not (context / rule.src).resolve().is_relative_to(root):
                yield (*base, "sync", i, "src"), (
                    f"sync source {rule.src!r} lies outside the project"
                )
    if project.services and not entries and len(project.services) > 1:
        yield ("services",), (
            "no entry service: mark the one behind the preview URL with 'entry: true'"
        )


def _preset_origin(loc: Loc, raw: Mapping[Any, Any], root: Path) -> tuple[Loc, str]:
    """Where to blame an error in a field a preset filled in.

    A field set through ``values`` is blamed on that value's line; a field from a variable's
    default names the preset. Anything else keeps its location.
    """
    if len(loc) < 3 or loc[0] != "services" or not isinstance(raw.get("services"), dict):
        return loc, ""
    service = next((v for k, v in raw["services"].items() if str(k) == loc[1]), None)
    if not isinstance(service, dict) or loc[2] in service or not isinstance(service.get("preset"), str):
        return loc, ""
    preset = service_presets(root).get(service["preset"])
    variable = preset.variable_at(loc[2:]) if preset is not None else None
    if preset is None or variable is None:
        return loc, ""
    values = service.get("values")
    if isinstance(values, dict) and variable in values:
        return ("services", loc[1], "values", variable), ""
    return loc, f" (the default of variable {variable!r} in preset {preset.name!r})"


def load_text(text: str, path: Path, display: str | None = None) -> Project:
    """Validate ``text`` as the content of ``path``; raise ConfigErrors on any mistake."""
    display = display or str(path)
    try:
        raw, lines = parse_yaml(text, display)
    except ConfigError as exc:
        raise ConfigErrors([exc]) from None
    if raw is None:
        raise ConfigErrors([ConfigError(display, 1, None, "the file is empty; expected a mapping with 'app' and 'services'")])
    if not isinstance(raw, dict):
        raise ConfigErrors([ConfigError(display, 1, None, f"expected a mapping at the top level, got {describe(raw)}")])
    try:
        data, preset_errors = apply_presets(raw, path.parent)
    except ConfigError as exc:  # a project's own preset file is broken
        raise ConfigErrors([exc]) from None
    errors = [ConfigError(display, line_for(loc, lines), dotted(loc), msg) for loc, msg in preset_errors]
    if errors:
        raise ConfigErrors(errors)
    try:
        project = Project.model_validate(data)
    except ValidationError as exc:
        found: list[tuple[Loc, str, str]] = []
        for err in exc.errors():
            loc = error_loc(tuple(err["loc"]), data)
            found.append((loc, err["type"], translate(Project, err, loc)))
        # A misspelt required field is one mistake: report the spelling, not also the absence.
        suggested = {
            (*loc[:-1], close)
            for loc, kind, _ in found
            if kind == "extra_forbidden" and (close := did_you_mean(Project, loc)[0]) is not None
        }
        direct = {loc for loc, _, _ in found}
        seen: set[tuple[Loc, str]] = set()
        for loc, kind, message in found:
            if kind == "missing" and loc in suggested:
                continue
            blamed, origin = _preset_origin(loc, raw, path.parent)
            if blamed != loc and blamed in direct:
                continue  # the value itself is already reported where it is written
            if (blamed, message) in seen:
                continue
            seen.add((blamed, message))
            errors.append(
                ConfigError(display, line_for(blamed, lines), dotted(blamed) or None, message + origin)
            )
        raise ConfigErrors(errors) from None
    project._path = path
    # A single service is the entry even when it does not say so.
    if len(project.services) == 1 and not any(s.entry for s in project.services.values()):
        (only,) = project.services
        services = {only: project.services[only].model_copy(update={"entry": True})}
        project = project.model_copy(update={"services": services})
        project._path = path
    semantic = [
        ConfigError(display, line_for(loc, lines), dotted(loc), msg)
        for loc, msg in _iter_semantic_errors(project, lines)
    ]
    if semantic:
        raise ConfigErrors(semantic)
    return project


def find_config(start: Path | None = None) -> Path:
    """The nearest devmesh.yaml in ``start`` or one of its parents."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise UserInputError(
        f"no {CONFIG_NAME} in {here} or any parent directory",
        hint="run 'devmesh init' to write one, or 'devmesh init --starter shop DIR' for the example app",
    )


def _display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_project(path: Path | None = None) -> Project:
    """Find, read and validate the project file."""
    config = path if path is not None else find_config()
    display = _display_name(config)
    try:
        text = read_text(config, display)
    except FileNotFoundError:
        raise UserInputError(f"{display}: no such file") from None
    except ConfigError as exc:
        raise ConfigErrors([exc]) from None
    except OSError as exc:
        raise UserInputError(f"{display}: cannot read: {exc.strerror}") from None
    return load_text(text, config.resolve(), display)
