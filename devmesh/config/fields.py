"""The field types of ``devmesh.yaml``: each a checked value (a port, a name, a path, an image
reference...) whose mistakes read in the file's own words, e.g.
``expected an integer 1–65535, got "http"``; and the strict, frozen base of its models."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from devmesh.config.diagnostics import describe
from devmesh.naming import branch_name_problems

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
DockerfilePath = Annotated[str, BeforeValidator(_dockerfile_path)]
ClusterName = Annotated[str, BeforeValidator(_label(40, "a kind cluster name"))]


class StrictModel(BaseModel):
    """A part of devmesh.yaml: unknown fields are mistakes, values are not coerced, and a
    loaded project does not change."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
