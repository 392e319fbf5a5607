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
    from devmesh.naming import branch_name_problems

    if not isinstance(value, str):
        raise PydanticCustomError(
            "devmesh_branch", "expected a branch name, got {got}", {"got": _describe(value)}
        )
    problems = branch_name_problems(value)
    if problems:
        raise PydanticCustomError(
            "devmesh_branch", "expected a valid git branch name, got {got} ({why})",
            {"got": _describe(value), "why": "; ".join(problems)},
        )
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


def _relative(inside: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise PydanticCustomError(
                "devmesh_relpath", "expected a relative path, got {got}", {"got": _describe(value)}
            )
        posix = PurePosixPath(value)
        if posix.is_absolute() or ".." in posix.parts:
            raise PydanticCustomError(
                "devmesh_relpath",
                "expected a path inside {inside} (relative, without '..'), got {got}",
                {"inside": inside, "got": _describe(value)},
            )
        return value

    return check


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


# --- live sync: the reload action (begin) -------------------------------------------------

_SIGNAL_RE = re.compile(r"^(SIG)?[A-Z][A-Z0-9]*$")
_RELOAD_EXPECTED = "restart, none, {signal: NAME} or {command: [PROGRAM, ARG…]}"


def _reload(value: Any) -> Any:
    """``restart`` | ``none`` | ``{signal: HUP}`` | ``{command: [kill, -HUP, "1"]}`` (a command
    given as one string is split like a shell would, without running one)."""
    import shlex

    if value is None or isinstance(value, ReloadAction):
        return value
    if value == "restart" or value == "none":
        return ReloadAction(action="restart" if value == "restart" else "none")
    if isinstance(value, Mapping) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "signal":
            name = arg.upper() if isinstance(arg, str) else arg
            if not isinstance(name, str) or not _SIGNAL_RE.match(name):
                raise PydanticCustomError(
                    "devmesh_reload", "expected a signal name such as HUP or SIGUSR1, got {got}",
                    {"got": _describe(arg)},
                )
            return ReloadAction(action="signal", signal=name if name.startswith("SIG") else f"SIG{name}")
        if key == "command":
            try:
                argv = shlex.split(arg) if isinstance(arg, str) else arg
            except ValueError:
                argv = None
            if (not isinstance(argv, list) or not argv
                    or not all(isinstance(a, str) and a for a in argv)):
                raise PydanticCustomError(
                    "devmesh_reload",
                    "expected a command to run in the container: a list of words or one line, "
                    "got {got}",
                    {"got": _describe(arg)},
                )
            return ReloadAction(action="command", command=tuple(argv))
    raise PydanticCustomError(
        "devmesh_reload", "expected {expected}, got {got}",
        {"expected": _RELOAD_EXPECTED, "got": _describe(value)},
    )


# --- live sync: the reload action (end) ---------------------------------------------------


Port = Annotated[int, BeforeValidator(_port)]
# <app>-<env> must fit a 63-character namespace name; environment names take up to 40.
AppName = Annotated[str, BeforeValidator(_name(22, "an app name"))]
ServiceName = Annotated[str, BeforeValidator(_name(30, "a service name"))]
BranchName = Annotated[str, BeforeValidator(_branch)]
EnvValue = Annotated[str, BeforeValidator(_env_value)]
HeaderName = Annotated[str, BeforeValidator(_header)]
Domain = Annotated[str, BeforeValidator(_domain)]
RelativePath = Annotated[str, BeforeValidator(_relative("the project"))]
ContextPath = Annotated[str, BeforeValidator(_relative("the build context"))]
RepoPath = Annotated[str, BeforeValidator(_relative("the manifest repository"))]
ContainerPath = Annotated[str, BeforeValidator(_container_path)]
Scalar = Annotated[str | int | float | bool, BeforeValidator(_scalar)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SyncRule(_Model):
    """Copy files under ``src`` (relative to the build context) to ``dest`` in the container."""

    src: ContextPath
    dest: ContainerPath


class ReloadAction(_Model):
    """What runs in a service's containers after files were synced into them: ``restart`` the
    container, send it a ``signal``, run a ``command`` in it, or nothing (``none``)."""

    action: Literal["restart", "signal", "command", "none"]
    signal: str = ""
    command: tuple[str, ...] = ()


# --- resilience: timeouts, retries, circuit breaking, outlier detection (begin) ------------

_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
RETRY_CONDITIONS = ("5xx", "connect-failure", "gateway-error", "refused-stream", "reset",
                    "retriable-4xx")


def _duration(value: Any) -> float:
    """``30s``, ``1.5s``, ``250ms``, ``2m`` or a number of seconds → seconds."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION_RE.match(value.strip())
        if found:
            seconds = float(found.group(1)) * _DURATION_UNITS[found.group(2)]
    if seconds is None or (0 < seconds < 0.001):
        raise PydanticCustomError(
            "devmesh_duration", "expected a duration such as 30s, 1.5s, 250ms or 2m, got {got}",
            {"got": _describe(value)},
        )
    return round(seconds, 3)


def _count(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise PydanticCustomError(
                "devmesh_count", "expected a whole number of at least {min}, got {got}",
                {"min": minimum, "got": _describe(value)},
            )
        return value

    return check


def _percentage(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise PydanticCustomError(
            "devmesh_percent", "expected a whole number 0–100, got {got}", {"got": _describe(value)}
        )
    return value


def _retry_on(value: Any) -> tuple[str, ...]:
    words = [w.strip() for w in value.split(",")] if isinstance(value, str) else None
    if not words or not all(w in RETRY_CONDITIONS for w in words):
        raise PydanticCustomError(
            "devmesh_retry_on",
            "expected retry conditions separated by commas, from {known}; got {got}",
            {"known": ", ".join(RETRY_CONDITIONS), "got": _describe(value)},
        )
    return tuple(dict.fromkeys(words))


Duration = Annotated[float, BeforeValidator(_duration)]
Count = Annotated[int, BeforeValidator(_count(0))]
PositiveCount = Annotated[int, BeforeValidator(_count(1))]
Percentage = Annotated[int, BeforeValidator(_percentage)]
RetryOn = Annotated[tuple[str, ...], BeforeValidator(_retry_on)]


class RetrySettings(_Model):
    """Retry ``attempts`` more times on ``retry_on``; 0 attempts turns retries off."""

    attempts: Count = 2
    retry_on: RetryOn = ("connect-failure", "refused-stream")
    per_try_timeout: Duration = 0.0  # 0: only the request timeout applies


class CircuitBreakerSettings(_Model):
    max_connections: PositiveCount = 1024
    max_pending_requests: PositiveCount = 1024
    max_requests: PositiveCount = 1024
    max_retries: Count = 3


class OutlierDetectionSettings(_Model):
    consecutive_5xx: PositiveCount = 5
    interval: Duration = 10.0
    base_ejection_time: Duration = 30.0
    max_ejection_percent: Percentage = 100


class ResilienceSettings(_Model):
    """A service's traffic policy (from its preset, usually): both runtimes render it."""

    timeout: Duration = 0.0  # 0: no limit
    retries: RetrySettings | None = None
    circuit_breaker: CircuitBreakerSettings | None = None
    outlier_detection: OutlierDetectionSettings | None = None


# --- resilience (end) ---------------------------------------------------------------------


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
    # After a sync; None: the preset's, else restart (see devmesh.sync.reload).
    reload: Annotated[ReloadAction | None, BeforeValidator(_reload)] = None
    # Timeouts, retries, circuit breaking, outlier detection (see docs/strategies.md).
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)


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
    path: RepoPath = "."
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


def _key_line(node: Any, key: Any) -> int | None:
    """The 1-based line of ``key`` in a ruamel mapping, following ``<<`` merges."""
    pos = node.lc.data.get(key) if isinstance(node.lc.data, dict) else None
    if pos:
        return int(pos[0]) + 1
    for source in getattr(node, "merge", None) or ():
        if isinstance(source, tuple):  # older ruamel: (position, mapping)
            source = source[-1]
        if hasattr(source, "lc") and key in source:
            return _key_line(source, key)
    return None


def _plain(node: Any, loc: Loc, lines: dict[Loc, int]) -> Any:
    """Turn ruamel's round-trip nodes into plain data, noting each key's 1-based line."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap):
        out: dict[Any, Any] = {}
        for key in node:
            sub = (*loc, str(key))
            line = _key_line(node, key)
            if line is not None:
                lines[sub] = line
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


# What an unclosed construct is called, by the parser's context.
_UNCLOSED = {
    "while parsing a flow sequence": "a '[' list",
    "while parsing a flow mapping": "a '{' mapping",
    "while scanning a quoted scalar": "a quoted string",
}


def _unclosed_bracket(text: str) -> tuple[str, int] | None:
    """The first '[' or '{' never closed in ``text`` (outside quotes and comments), and its line."""
    stack: list[tuple[str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        quote = ""
        for i, ch in enumerate(line):
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "'\"" and (i == 0 or line[i - 1] in " \t[{,:"):
                quote = ch
            elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
                break
            elif ch in "[{":
                stack.append((ch, number))
            elif ch in "]}" and stack:
                stack.pop()
    return stack[0] if stack else None


def _yaml_problem(exc: Any, text: str) -> tuple[int | None, str]:
    """A YAML syntax error as (line, what is wrong), in words a user can act on."""
    problem = str(exc.problem or exc.context or "invalid YAML")
    context = str(exc.context or "")
    pline = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
    cline = exc.context_mark.line + 1 if exc.context_mark is not None else None
    if "'\\t'" in problem:
        return pline, "a tab character where YAML expects spaces; indent with spaces only"
    at_end = "<stream end>" in problem or "end of stream" in problem
    if at_end and "flow" in context:
        opener = _unclosed_bracket(text)
        if opener is not None:
            what = _UNCLOSED["while parsing a flow sequence" if opener[0] == "[" else "while parsing a flow mapping"]
            return opener[1], f"{what} starts here and is never closed"
    if at_end and context in _UNCLOSED:
        return cline or pline, f"{_UNCLOSED[context]} starts here and is never closed"
    duplicate = re.search(r'found duplicate key "([^"]*)"', problem)
    if duplicate:
        return pline, f"duplicate key {json.dumps(duplicate.group(1))}; each key may appear once"
    if "found another document" in problem:
        return pline, "a second document ('---'); the file must hold exactly one"
    if "mapping values are not allowed here" in problem:
        return pline, "mapping values are not allowed here; quote a value that contains ': '"
    if "found undefined alias" in problem:
        return pline, problem.replace("found undefined alias", "undefined alias")
    if context and cline is not None and cline != pline:
        return pline, f"{problem} ({context.removeprefix('while ')} that starts on line {cline})"
    return pline or cline, problem


def parse_yaml(text: str, display: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text; syntax errors become ConfigErrors with the line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        line, problem = _yaml_problem(exc, text)
        raise ConfigErrors([ConfigError(display, line, None, f"invalid YAML: {problem}")]) from exc
    except YAMLError as exc:
        raise ConfigErrors([ConfigError(display, None, None, f"invalid YAML: {exc}")]) from exc
    lines: dict[Loc, int] = {}
    return _plain(data, (), lines), lines


def _line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _dotted(loc: Loc) -> str:
    """``("services", "api", "sync", 0, "src")`` → ``services.api.sync[0].src``."""
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


def _did_you_mean(loc: Loc) -> tuple[str | None, list[str]]:
    """For an unknown field at ``loc``: the closest known field, and all known fields."""
    model = _model_at(loc)
    known = sorted(model.model_fields) if model else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return (close[0] if close else None), known


# What a required field holds, for the message when it is missing: (model, field) → words.
_REQUIRED = {
    ("Project", "app"): "the app's name, e.g. 'app: shop'",
    ("Project", "services"): "a mapping of service names to their settings",
    ("Manifests", "repo"): "the manifest repository's URL or path",
    ("SyncRule", "src"): "the folder or file to copy, relative to the build context",
    ("SyncRule", "dest"): "where it goes in the container, an absolute path",
}


def _translate(error: Any, loc: Loc) -> str:
    kind = error["type"]
    got = _describe(error.get("input"))
    ctx = error.get("ctx") or {}
    if kind.startswith("devmesh_"):
        return str(error["msg"])
    if kind == "missing":
        model = _model_at(loc)
        wanted = _REQUIRED.get((model.__name__ if model else "", str(loc[-1])))
        return f"required field is missing; expected {wanted}" if wanted else "required field is missing"
    if kind == "extra_forbidden":
        close, known = _did_you_mean(loc)
        hint = f"; did you mean {close!r}?" if close else (
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


# Names pydantic gives the branches of a union inside an error location.
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})


def _error_loc(loc: Loc, data: Any) -> Loc:
    """Map a pydantic error location onto the data: mapping keys as strings (as in the line
    table), list positions as integers, pydantic's internal parts (union branches, validator
    names, ``[key]``) dropped. Walking the data keeps a service named ``int`` intact."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part == "[key]"):
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
            out.append(str(part))
            continue
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out.append(part)
            continue
        if isinstance(part, str) and (part in _UNION_TAGS or "[" in part) and out:
            continue
        out.append(part if isinstance(part, int) and isinstance(node, list) else str(part))
        node = None
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
        if svc.values and svc.preset is None:
            yield (*base, "values"), (
                "values fill the variables of a preset, but the service names no preset; "
                "set 'preset' or remove 'values'"
            )
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


def _preset_origin(loc: Loc, raw: Mapping[Any, Any], root: Path) -> tuple[Loc, str]:
    """Where to blame an error in a field a preset filled in.

    A field set through ``values`` is blamed on that value's line; a field from a variable's
    default names the preset. Anything else keeps its location.
    """
    from devmesh.presets import service_presets

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
    from devmesh.presets import apply_presets

    display = display or str(path)
    raw, lines = parse_yaml(text, display)
    if raw is None:
        raise ConfigErrors([ConfigError(display, 1, None, "the file is empty; expected a mapping with 'app' and 'services'")])
    if not isinstance(raw, dict):
        raise ConfigErrors([ConfigError(display, 1, None, f"expected a mapping at the top level, got {_describe(raw)}")])
    try:
        data, preset_errors = apply_presets(raw, path.parent)
    except ConfigError as exc:  # a project's own preset file is broken
        raise ConfigErrors([exc]) from None
    errors = [ConfigError(display, _line_for(loc, lines), _dotted(loc), msg) for loc, msg in preset_errors]
    if errors:
        raise ConfigErrors(errors)
    try:
        project = Project.model_validate(data)
    except ValidationError as exc:
        found: list[tuple[Loc, str, str]] = []
        for err in exc.errors():
            loc = _error_loc(tuple(err["loc"]), data)
            found.append((loc, err["type"], _translate(err, loc)))
        # A misspelt required field is one mistake: report the spelling, not also the absence.
        suggested = {
            (*loc[:-1], close)
            for loc, kind, _ in found
            if kind == "extra_forbidden" and (close := _did_you_mean(loc)[0]) is not None
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
                ConfigError(display, _line_for(blamed, lines), _dotted(blamed) or None, message + origin)
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
