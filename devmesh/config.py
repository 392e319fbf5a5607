"""`devmesh.yaml`: the project file, parsed into a validated model.

Every error names the file, the line, the dotted field and what was expected, e.g.
``devmesh.yaml:14: services.api.port: expected an integer 1–65535, got "http"``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from devmesh.errors import ConfigError, UserInputError

CONFIG_NAME = "devmesh.yaml"
DEFAULT_ENVOY_IMAGE = "envoyproxy/envoy:v1.36.2"

_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Service names become Kubernetes Service names, which are DNS-1035 labels: a letter first.
_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_HEADER_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_DOMAIN_RE = re.compile(r"^(?=.{1,200}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _describe(value: Any) -> str:
    """How a YAML value reads in an error message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise PydanticCustomError(
            "devmesh_port", "expected an integer 1–65535, got {got}", {"got": _describe(value)}
        )
    return value


def _label(max_len: int, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_len or not _LABEL_RE.match(value):
            raise PydanticCustomError(
                "devmesh_label",
                "expected {what}: lower-case letters, digits and '-', starting and ending "
                "with a letter or digit, at most {max} characters, got {got}",
                {"what": what, "max": max_len, "got": _describe(value)},
            )
        return value

    return check


def _name(max_len: int, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_len or not _NAME_RE.match(value):
            raise PydanticCustomError(
                "devmesh_name",
                "expected {what}: lower-case letters, digits and '-', starting with a letter, "
                "ending with a letter or digit, at most {max} characters, got {got}",
                {"what": what, "max": max_len, "got": _describe(value)},
            )
        return value

    return check


def _scalar(value: Any) -> Any:
    if not isinstance(value, (str, int, float, bool)):
        raise PydanticCustomError(
            "devmesh_scalar",
            "expected a string, a number or true/false, got {got}",
            {"got": _describe(value)},
        )
    return value


def _branch(value: Any) -> str:
    from devmesh.naming import check_branch_name

    if not isinstance(value, str):
        raise PydanticCustomError(
            "devmesh_branch", "expected a branch name, got {got}", {"got": _describe(value)}
        )
    try:
        check_branch_name(value)
    except UserInputError as exc:
        raise PydanticCustomError(
            "devmesh_branch", "expected a valid git branch name, got {got}: {why}",
            {"got": _describe(value), "why": exc.message.split(": ", 1)[-1]},
        ) from None
    return value


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise PydanticCustomError(
        "devmesh_env", "expected a string or number, got {got}", {"got": _describe(value)}
    )


def _header(value: Any) -> str:
    if not isinstance(value, str) or not _HEADER_RE.match(value):
        raise PydanticCustomError(
            "devmesh_header",
            "expected a lower-case HTTP header name (letters, digits, '-'), got {got}",
            {"got": _describe(value)},
        )
    return value


def _domain(value: Any) -> str:
    if not isinstance(value, str) or not _DOMAIN_RE.match(value):
        raise PydanticCustomError(
            "devmesh_domain",
            "expected a lower-case DNS domain such as localhost or preview.example.com, got {got}",
            {"got": _describe(value)},
        )
    return value


def _relative_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PydanticCustomError(
            "devmesh_relpath", "expected a relative path, got {got}", {"got": _describe(value)}
        )
    posix = PurePosixPath(value)
    if posix.is_absolute() or ".." in posix.parts:
        raise PydanticCustomError(
            "devmesh_relpath",
            "expected a path inside the project (relative, without '..'), got {got}",
            {"got": _describe(value)},
        )
    return value


def _container_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise PydanticCustomError(
            "devmesh_abspath",
            "expected an absolute path in the container, got {got}",
            {"got": _describe(value)},
        )
    if ".." in PurePosixPath(value).parts:
        raise PydanticCustomError(
            "devmesh_abspath", "expected a path without '..', got {got}", {"got": _describe(value)}
        )
    return value


def _dockerfile_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or value.startswith("/"):
        raise PydanticCustomError(
            "devmesh_dockerfile",
            "expected a path relative to the build context, got {got}",
            {"got": _describe(value)},
        )
    return value


Port = Annotated[int, BeforeValidator(_port)]
# <app>-<env> must fit a 63-character namespace name; environment names take up to 40.
AppName = Annotated[str, BeforeValidator(_name(22, "an app name"))]
ServiceName = Annotated[str, BeforeValidator(_name(30, "a service name"))]
BranchName = Annotated[str, BeforeValidator(_branch)]
EnvValue = Annotated[str, BeforeValidator(_env_value)]
HeaderName = Annotated[str, BeforeValidator(_header)]
Domain = Annotated[str, BeforeValidator(_domain)]
RelativePath = Annotated[str, BeforeValidator(_relative_path)]
ContainerPath = Annotated[str, BeforeValidator(_container_path)]
Scalar = Annotated[str | int | float | bool, BeforeValidator(_scalar)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SyncRule(_Model):
    """Copy files under ``src`` (relative to the build context) to ``dest`` in the container."""

    src: RelativePath
    dest: ContainerPath


class Service(_Model):
    context: RelativePath = "."
    # Relative to the context; may lie outside it (``../docker/api.Dockerfile``) but not
    # outside the project.
    dockerfile: Annotated[str, BeforeValidator(_dockerfile_path)] = "Dockerfile"
    port: Port | None = None
    entry: bool = False
    preset: str | None = None
    values: dict[str, Scalar] = Field(default_factory=dict)
    env: dict[str, EnvValue] = Field(default_factory=dict)
    build_args: dict[str, EnvValue] = Field(default_factory=dict)
    sync: list[SyncRule] = Field(default_factory=list)
    rebuild_on: list[str] = Field(default_factory=list)


class Routing(_Model):
    header: HeaderName = "x-devmesh-env"
    domain: Domain = "localhost"
    gateway_port: Port = 8080


class Cluster(_Model):
    name: Annotated[str, BeforeValidator(_label(40, "a kind cluster name"))] = "devmesh"
    config: RelativePath = "kind-config/cluster.yaml"
    context: str | None = None
    registry: str = "127.0.0.1:5001"


class Manifests(_Model):
    repo: str
    path: RelativePath = "."
    branch: BranchName = "main"
    mode: Literal["push", "pull-request"] = "push"
    registry: str | None = None


class DockerSettings(_Model):
    envoy_image: str = DEFAULT_ENVOY_IMAGE


class Project(_Model):
    app: AppName
    baseline: BranchName | None = None
    runtime: Literal["auto", "kind", "docker"] = "auto"
    services: dict[ServiceName, Service]
    routing: Routing = Field(default_factory=Routing)
    cluster: Cluster = Field(default_factory=Cluster)
    manifests: Manifests | None = None
    docker: DockerSettings = Field(default_factory=DockerSettings)

    _path: Path = PrivateAttr(default=Path(CONFIG_NAME))

    @property
    def path(self) -> Path:
        """The devmesh.yaml this project was read from."""
        return self._path

    @property
    def root(self) -> Path:
        """The directory holding devmesh.yaml; service contexts are relative to it."""
        return self._path.parent

    @property
    def entry_service(self) -> str:
        """The service behind the preview URL."""
        return next(name for name, svc in self.services.items() if svc.entry)

    def context_dir(self, service: str) -> Path:
        """The build context of ``service`` on disk."""
        return self.root / self.services[service].context

    def dockerfile_path(self, service: str) -> Path:
        """The Dockerfile of ``service`` on disk."""
        return self.context_dir(service) / self.services[service].dockerfile

    def port_of(self, service: str) -> int:
        """The container port of ``service`` (given, or filled in by its preset)."""
        port = self.services[service].port
        assert port is not None, "ports are resolved when the project is loaded"
        return port


# --- reading the file -------------------------------------------------------------------


Loc = tuple[str | int, ...]


def _plain(node: Any, loc: Loc, lines: dict[Loc, int]) -> Any:
    """Turn ruamel's round-trip nodes into plain data, noting each key's 1-based line."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key in node:
            sub = (*loc, str(key))
            lines[sub] = node.lc.key(key)[0] + 1
            out[key] = _plain(node[key], sub, lines)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, item in enumerate(node):
            sub = (*loc, i)
            lines[sub] = node.lc.item(i)[0] + 1
            items.append(_plain(item, sub, lines))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


def parse_yaml(text: str, display: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text; syntax errors become a ConfigError with the line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        if "found duplicate key" in str(problem) or "duplicate key" in str(exc):
            key = re.search(r'duplicate key "([^"]*)"', str(exc))
            problem = f"duplicate key {json.dumps(key.group(1)) if key else ''}".strip()
        raise ConfigError(display, line, None, f"invalid YAML: {problem}") from exc
    except YAMLError as exc:
        raise ConfigError(display, None, None, f"invalid YAML: {exc}") from exc
    lines: dict[Loc, int] = {}
    return _plain(data, (), lines), lines


def _line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose field the last element of ``loc`` names."""
    model: Any = Project
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        if isinstance(model, dict):  # a mapping of names to models: the part is a name
            model = model["value"]
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _field_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _field_model(annotation: Any) -> Any:
    import typing

    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        inner = _field_model(args[1])
        return {"value": inner} if inner is not None else None
    if origin is list and args:
        return _field_model(args[0])
    if args and origin is not None:  # Optional[...] / unions / Annotated
        for arg in args:
            found = _field_model(arg)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _translate(error: Any) -> str:
    kind = error["type"]
    got = _describe(error.get("input"))
    ctx = error.get("ctx") or {}
    loc: Loc = tuple(error["loc"])
    if kind.startswith("devmesh_"):
        return str(error["msg"])
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        model = _model_at(loc)
        known = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f"; known fields: {', '.join(known)}" if known else ""
        )
        return f"unknown field{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("string_type", "str_type"):
        return f"expected a string, got {got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {got}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"expected one of {expected}, got {got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s), got none"
    return f"{error['msg']}, got {got}"


def _error_loc(loc: Loc) -> Loc:
    """Drop pydantic's internal parts of a location (union branches, function names)."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part in ("[key]",)):
            continue
        if isinstance(part, str) and part in ("str", "int", "float", "bool") and out:
            continue
        out.append(part)
    return tuple(out)


class ConfigErrors(UserInputError):
    """One or more ConfigErrors, printed one per line in file order."""

    def __init__(self, errors: list[ConfigError]) -> None:
        errors = sorted(errors, key=lambda e: (e.line or 0))
        super().__init__("\n".join(e.message for e in errors))
        self.errors = errors


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
        context = project.root / svc.context
        if not context.is_dir():
            where = (*base, "context") if (*base, "context") in lines else base
            yield where, f"build context {svc.context!r} does not exist (looked in {context})"
            continue
        dockerfile = (context / svc.dockerfile).resolve()
        where = (*base, "dockerfile") if (*base, "dockerfile") in lines else base
        if not dockerfile.is_relative_to(project.root.resolve()):
            yield where, f"Dockerfile {svc.dockerfile!r} lies outside the project"
        elif not dockerfile.is_file():
            yield where, f"Dockerfile {svc.dockerfile!r} not found in build context {svc.context!r}"
        if svc.port is None:
            yield (*base, "port") if (*base, "port") in lines else base, (
                "no container port: set 'port' or use a preset that gives one"
            )
        for i, rule in enumerate(svc.sync):
            if not (context / rule.src).exists():
                yield (*base, "sync", i, "src"), (
                    f"sync source {rule.src!r} does not exist in build context {svc.context!r}"
                )
    if project.services and not entries and len(project.services) > 1:
        yield ("services",), (
            "no entry service: mark the one behind the preview URL with 'entry: true'"
        )


def load_text(text: str, path: Path, display: str | None = None) -> Project:
    """Validate ``text`` as the content of ``path``; raise ConfigErrors on any mistake."""
    from devmesh.presets import apply_presets

    display = display or str(path)
    data, lines = parse_yaml(text, display)
    if data is None:
        raise ConfigErrors([ConfigError(display, 1, None, "the file is empty; expected a mapping with 'app' and 'services'")])
    if not isinstance(data, dict):
        raise ConfigErrors([ConfigError(display, 1, None, f"expected a mapping at the top level, got {_describe(data)}")])
    data, preset_errors = apply_presets(data, path.parent)
    errors = [ConfigError(display, _line_for(loc, lines), _dotted(loc), msg) for loc, msg in preset_errors]
    if errors:
        raise ConfigErrors(errors)
    try:
        project = Project.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _error_loc(tuple(err["loc"]))
            errors.append(ConfigError(display, _line_for(loc, lines), _dotted(loc) or None, _translate(err)))
        raise ConfigErrors(errors) from None
    project._path = path
    # A single service is the entry even when it does not say so.
    if len(project.services) == 1 and not any(s.entry for s in project.services.values()):
        (only,) = project.services
        services = {only: project.services[only].model_copy(update={"entry": True})}
        project = project.model_copy(update={"services": services})
        project._path = path
    semantic = [
        ConfigError(display, _line_for(loc, lines), _dotted(loc), msg)
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
        text = config.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"{display}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ConfigErrors([ConfigError(display, None, None, f"not UTF-8 text ({exc.reason})")]) from None
    except OSError as exc:
        raise UserInputError(f"{display}: cannot read: {exc.strerror}") from None
    return load_text(text, config.resolve(), display)
