"""`devmesh.yaml`: the project file, parsed into a validated model.

Every error names the file, the line, the dotted field and what was expected, e.g.
``devmesh.yaml:14: services.api.port: expected an integer 1–65535, got "http"``.
"""

from __future__ import annotations

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

from devmesh.config_errors import ConfigErrors, did_you_mean, error_loc, translate
from devmesh.config_yaml import Loc, describe, dotted, line_for, parse_yaml, read_text
from devmesh.errors import ConfigError, UserInputError

__all__ = ["CONFIG_NAME", "ConfigErrors", "Project", "ReloadAction", "Service", "find_config",
           "load_project", "load_text", "parse_yaml"]

CONFIG_NAME = "devmesh.yaml"
DEFAULT_ENVOY_IMAGE = "envoyproxy/envoy:v1.36.2"

# Every pattern is applied with fullmatch: ``$`` alone would let a trailing newline through
# (``"api\n"``), which then ends up inside rendered names.
_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# Service names become Kubernetes Service names, which are DNS-1035 labels: a letter first.
_NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_HEADER_RE = re.compile(r"[a-z0-9][a-z0-9-]*")
# The preview host is <env>.<app>.<domain>: with an environment name of up to 40 characters and
# an app name of up to 22, a domain of at most 189 keeps it within DNS's 253.
_DOMAIN_MAX = 189
_DOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*")
# Environment variable (and build argument) names, as POSIX shells accept them.
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# devmesh sets these in every container (devmesh.plan.k8s, devmesh.runtime.docker); a user's own
# would be written twice, so the whole DEVMESH_ prefix is kept for devmesh.
RESERVED_ENV_PREFIX = "DEVMESH_"
DEVMESH_ENV_VARS = ("DEVMESH_ENV", "DEVMESH_HEADER", "DEVMESH_SERVICE")
# host[:port]: a DNS name or an IPv4 address, or [IPv6] (registries are addressed so).
_HOST_PORT_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
# An image repository prefix such as ghcr.io/acme/team: host[:port] and lower-case path parts.
_IMAGE_PATH_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_IMAGE_REF_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._:\[\]-]*(?:/[a-z0-9][a-z0-9._-]*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@[a-z0-9]+:[a-f0-9]{32,})?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise PydanticCustomError(
            "devmesh_port", "expected an integer 1–65535, got {got}", {"got": describe(value)}
        )
    return value


def _label(max_len: int, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_len or not _LABEL_RE.fullmatch(value):
            raise PydanticCustomError(
                "devmesh_label",
                "expected {what}: lower-case letters, digits and '-', starting and ending "
                "with a letter or digit, at most {max} characters, got {got}",
                {"what": what, "max": max_len, "got": describe(value)},
            )
        return value

    return check


def _name(max_len: int, what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or len(value) > max_len or not _NAME_RE.fullmatch(value):
            raise PydanticCustomError(
                "devmesh_name",
                "expected {what}: lower-case letters, digits and '-', starting with a letter, "
                "ending with a letter or digit, at most {max} characters, got {got}",
                {"what": what, "max": max_len, "got": describe(value)},
            )
        return value

    return check


def _scalar(value: Any) -> Any:
    if not isinstance(value, (str, int, float, bool)):
        raise PydanticCustomError(
            "devmesh_scalar",
            "expected a string, a number or true/false, got {got}",
            {"got": describe(value)},
        )
    return value


def _branch(value: Any) -> str:
    from devmesh.naming import branch_name_problems

    if not isinstance(value, str):
        raise PydanticCustomError(
            "devmesh_branch", "expected a branch name, got {got}", {"got": describe(value)}
        )
    problems = branch_name_problems(value)
    if problems:
        raise PydanticCustomError(
            "devmesh_branch", "expected a valid git branch name, got {got} ({why})",
            {"got": describe(value), "why": "; ".join(problems)},
        )
    return value


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and "\x00" in value:
        # A process's environment is C strings: a NUL would cut the value short, or fail the run.
        raise PydanticCustomError(
            "devmesh_env", "expected a value without NUL characters, got {got}",
            {"got": describe(value)},
        )
    if isinstance(value, (str, int, float)):
        return str(value)
    raise PydanticCustomError(
        "devmesh_env", "expected a string or number, got {got}", {"got": describe(value)}
    )


def _env_name(reserve: bool) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not _ENV_NAME_RE.fullmatch(value):
            raise PydanticCustomError(
                "devmesh_env_name",
                "expected an environment variable name: letters, digits and '_', not starting "
                "with a digit, got {got}",
                {"got": describe(value)},
            )
        if reserve and value.upper().startswith(RESERVED_ENV_PREFIX):
            raise PydanticCustomError(
                "devmesh_env_name",
                "names starting with {prefix} are reserved for the variables devmesh sets ({own})",
                {"prefix": RESERVED_ENV_PREFIX, "own": ", ".join(DEVMESH_ENV_VARS)},
            )
        return value

    return check


def _text(what: str) -> Callable[[Any], str]:
    """A required one-line string: not empty, not only spaces, no control characters."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or _CONTROL_RE.search(value):
            raise PydanticCustomError(
                "devmesh_text", "expected {what}, got {got}", {"what": what, "got": describe(value)}
            )
        return value

    return check


def _registry_host(value: Any) -> str:
    found = _HOST_PORT_RE.fullmatch(value) if isinstance(value, str) else None
    if found is None or (found["port"] is not None and not 1 <= int(found["port"]) <= 65535):
        raise PydanticCustomError(
            "devmesh_registry",
            "expected a registry address host[:port] such as 127.0.0.1:5001, got {got}",
            {"got": describe(value)},
        )
    return str(value)


def _image_prefix(value: Any) -> str:
    host, _, path = value.partition("/") if isinstance(value, str) else ("", "", "")
    try:
        _registry_host(host)
        ok = not path or all(_IMAGE_PATH_RE.fullmatch(part) for part in path.split("/"))
    except PydanticCustomError:
        ok = False
    if not ok:
        raise PydanticCustomError(
            "devmesh_registry",
            "expected a registry with an optional path, such as ghcr.io/acme or "
            "127.0.0.1:5001, got {got}",
            {"got": describe(value)},
        )
    return str(value)


def _image_ref(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 255 or not _IMAGE_REF_RE.fullmatch(value):
        raise PydanticCustomError(
            "devmesh_image",
            "expected an image reference such as {example}, got {got}",
            {"example": DEFAULT_ENVOY_IMAGE, "got": describe(value)},
        )
    return value


def _header(value: Any) -> str:
    if not isinstance(value, str) or not _HEADER_RE.fullmatch(value):
        raise PydanticCustomError(
            "devmesh_header",
            "expected a lower-case HTTP header name (letters, digits, '-'), got {got}",
            {"got": describe(value)},
        )
    return value


def _domain(value: Any) -> str:
    if not isinstance(value, str) or len(value) > _DOMAIN_MAX or not _DOMAIN_RE.fullmatch(value):
        raise PydanticCustomError(
            "devmesh_domain",
            "expected a lower-case DNS domain such as localhost or preview.example.com (labels "
            "of at most 63 characters, at most {max} in all), got {got}",
            {"max": _DOMAIN_MAX, "got": describe(value)},
        )
    return value


def _relative(inside: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise PydanticCustomError(
                "devmesh_relpath", "expected a relative path, got {got}", {"got": describe(value)}
            )
        _no_control(value)
        posix = PurePosixPath(value)
        if posix.is_absolute() or ".." in posix.parts:
            raise PydanticCustomError(
                "devmesh_relpath",
                "expected a path inside {inside} (relative, without '..'), got {got}",
                {"inside": inside, "got": describe(value)},
            )
        return value

    return check


def _no_control(value: str) -> None:
    """A path with a control character: a NUL fails every file system call, a newline would
    break the rendered files."""
    if _CONTROL_RE.search(value):
        raise PydanticCustomError(
            "devmesh_path", "expected a path without control characters, got {got}",
            {"got": describe(value)},
        )


def _container_path(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise PydanticCustomError(
            "devmesh_abspath",
            "expected an absolute path in the container, got {got}",
            {"got": describe(value)},
        )
    _no_control(value)
    if ".." in PurePosixPath(value).parts:
        raise PydanticCustomError(
            "devmesh_abspath", "expected a path without '..', got {got}", {"got": describe(value)}
        )
    return value


def _dockerfile_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or value.startswith("/"):
        raise PydanticCustomError(
            "devmesh_dockerfile",
            "expected a path relative to the build context, got {got}",
            {"got": describe(value)},
        )
    _no_control(value)
    return value


# --- live sync: the reload action (begin) -------------------------------------------------

# The signals of Linux, where the containers run (the host's own ``signal`` module would judge
# by macOS's set there). ``kill -s NAME`` and the Docker API take these names.
LINUX_SIGNALS = frozenset({
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGIOT", "SIGBUS", "SIGFPE",
    "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT",
    "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
    "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPOLL", "SIGPWR", "SIGSYS",
})
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
            name = arg.upper() if isinstance(arg, str) else None
            if name is not None and not name.startswith("SIG"):
                name = f"SIG{name}"
            if name not in LINUX_SIGNALS:
                raise PydanticCustomError(
                    "devmesh_reload", "expected a signal name such as HUP or SIGUSR1, got {got}",
                    {"got": describe(arg)},
                )
            return ReloadAction(action="signal", signal=name)
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
                    {"got": describe(arg)},
                )
            return ReloadAction(action="command", command=tuple(argv))
    raise PydanticCustomError(
        "devmesh_reload", "expected {expected}, got {got}",
        {"expected": _RELOAD_EXPECTED, "got": describe(value)},
    )


# --- live sync: the reload action (end) ---------------------------------------------------


Port = Annotated[int, BeforeValidator(_port)]
# <app>-<env> must fit a 63-character namespace name; environment names take up to 40.
AppName = Annotated[str, BeforeValidator(_name(22, "an app name"))]
ServiceName = Annotated[str, BeforeValidator(_name(30, "a service name"))]
BranchName = Annotated[str, BeforeValidator(_branch)]
EnvValue = Annotated[str, BeforeValidator(_env_value)]
EnvName = Annotated[str, BeforeValidator(_env_name(reserve=True))]
BuildArgName = Annotated[str, BeforeValidator(_env_name(reserve=False))]
RegistryHost = Annotated[str, BeforeValidator(_registry_host)]
ImagePrefix = Annotated[str, BeforeValidator(_image_prefix)]
ImageRef = Annotated[str, BeforeValidator(_image_ref)]
RepoURL = Annotated[str, BeforeValidator(_text("the manifest repository's URL or path"))]
KubeContext = Annotated[str, BeforeValidator(_text("the name of a kube context"))]
PresetName = Annotated[str, BeforeValidator(_text("the name of a preset"))]
Pattern = Annotated[str, BeforeValidator(_text("a file name or glob pattern"))]
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

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
# Envoy's durations stop near 10,000 years and Istio's at what protobuf holds; no request,
# retry or ejection in a preview environment needs more than a day, so that is the bound.
MAX_DURATION_S = 24 * 3600.0
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
RETRY_CONDITIONS = ("5xx", "connect-failure", "gateway-error", "refused-stream", "reset",
                    "retriable-4xx")


def _duration(value: Any) -> float:
    """``30s``, ``1.5s``, ``250ms``, ``2m`` or a number of seconds → seconds."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION_RE.fullmatch(value.strip())
        if found:
            seconds = float(found.group(1)) * _DURATION_UNITS[found.group(2)]
    if seconds is None or (0 < seconds < 0.001):
        raise PydanticCustomError(
            "devmesh_duration", "expected a duration such as 30s, 1.5s, 250ms or 2m, got {got}",
            {"got": describe(value)},
        )
    if not seconds <= MAX_DURATION_S:  # also NaN
        raise PydanticCustomError(
            "devmesh_duration", "expected a duration of at most 24h, got {got}",
            {"got": describe(value)},
        )
    return round(seconds, 3)


# Istio's connection pool and outlier detection settings are int32 (Envoy's uint32).
INT32_MAX = 2**31 - 1
# Retries beyond a handful only multiply load on a failing service; Istio takes an int32, but
# a hundred is already far past any sensible setting.
MAX_RETRY_ATTEMPTS = 100


def _count(minimum: int, maximum: int = INT32_MAX) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise PydanticCustomError(
                "devmesh_count", "expected a whole number of at least {min}, got {got}",
                {"min": minimum, "got": describe(value)},
            )
        if value > maximum:
            raise PydanticCustomError(
                "devmesh_count", "expected a whole number of at most {max}, got {got}",
                {"max": maximum, "got": describe(value)},
            )
        return value

    return check


def _percentage(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise PydanticCustomError(
            "devmesh_percent", "expected a whole number 0–100, got {got}", {"got": describe(value)}
        )
    return value


def _retry_on(value: Any) -> tuple[str, ...]:
    words = [w.strip() for w in value.split(",")] if isinstance(value, str) else None
    if not words or not all(w in RETRY_CONDITIONS for w in words):
        raise PydanticCustomError(
            "devmesh_retry_on",
            "expected retry conditions separated by commas, from {known}; got {got}",
            {"known": ", ".join(RETRY_CONDITIONS), "got": describe(value)},
        )
    return tuple(dict.fromkeys(words))


Duration = Annotated[float, BeforeValidator(_duration)]
Count = Annotated[int, BeforeValidator(_count(0))]
RetryAttempts = Annotated[int, BeforeValidator(_count(0, MAX_RETRY_ATTEMPTS))]
PositiveCount = Annotated[int, BeforeValidator(_count(1))]
Percentage = Annotated[int, BeforeValidator(_percentage)]
RetryOn = Annotated[tuple[str, ...], BeforeValidator(_retry_on)]


class RetrySettings(_Model):
    """Retry ``attempts`` more times on ``retry_on``; 0 attempts turns retries off."""

    attempts: RetryAttempts = 2
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
    preset: PresetName | None = None
    values: dict[str, Scalar] = Field(default_factory=dict)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    build_args: dict[BuildArgName, EnvValue] = Field(default_factory=dict)
    sync: list[SyncRule] = Field(default_factory=list)
    rebuild_on: list[Pattern] = Field(default_factory=list)
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
    context: KubeContext | None = None
    registry: RegistryHost = "127.0.0.1:5001"


class Manifests(_Model):
    repo: RepoURL
    path: RepoPath = "."
    branch: BranchName = "main"
    mode: Literal["push", "pull-request"] = "push"
    registry: ImagePrefix | None = None


class DockerSettings(_Model):
    envoy_image: ImageRef = DEFAULT_ENVOY_IMAGE


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
        for i, rule in enumerate(svc.sync):
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
