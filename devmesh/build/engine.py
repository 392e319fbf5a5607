"""The Docker engine: a client for it (found as the Docker CLI finds it), and the errors of
talking to it and of its builds, in words a user can act on."""

from __future__ import annotations

import os
from typing import Any

import docker
import docker.errors
from docker.context import ContextAPI

from devmesh.errors import DevmeshError, MissingDependency

_DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


class DockerUnavailable(MissingDependency):
    """The Docker engine cannot be reached."""


class BuildFailed(DevmeshError):
    """An image build failed; the message names the service and the failing step."""

    def __init__(self, message: str, *, service: str, step: int | None = None,
                 steps: int | None = None, instruction: str = "", error: str = "",
                 output: tuple[str, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.service = service
        self.step = step
        self.steps = steps
        self.instruction = instruction
        self.error = error
        self.output = output


class DockerfileError(BuildFailed):
    """The Dockerfile does not parse; the message gives its path and line."""


class BaseImageUnavailable(BuildFailed):
    """A ``FROM`` image is not on this machine and could not be pulled."""

    def __init__(self, message: str, *, image: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.image = image


def _reason(exc: BaseException) -> str:
    """The most specific cause in an exception chain, in a few words."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.append(cur)
        todo.extend(a for a in getattr(cur, "args", ()) if isinstance(a, BaseException))
        for linked in (cur.__cause__, cur.__context__):
            if linked is not None:
                todo.append(linked)
    for cur in seen:
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip() or type(exc).__name__


def _docker_host() -> tuple[str, bool]:
    """The engine address to use, and whether it came from a non-default ``docker context``."""
    host = os.environ.get("DOCKER_HOST")
    if host:
        return host, False
    try:
        context = ContextAPI.get_current_context()
        if context is not None and context.Name != "default" and context.Host and not context.TLSConfig:
            return str(context.Host), True
    except Exception:  # a broken ~/.docker/config.json must not hide the real problem
        pass
    return _DEFAULT_DOCKER_HOST, False


def _unreachable(host: str, exc: BaseException) -> DockerUnavailable:
    reason = _reason(exc)
    hint = None
    if "ermission denied" in reason and host.startswith("unix://"):
        hint = "add your user to the 'docker' group (then log in again), or set DOCKER_HOST"
    return DockerUnavailable(
        f"cannot reach the Docker engine at {host}: {reason} — start it "
        "(e.g. `sudo systemctl start docker`) or set DOCKER_HOST",
        hint=hint,
    )


def docker_client(*, timeout: int = 60) -> docker.DockerClient:
    """A client for the Docker engine (DOCKER_HOST, else the current docker context, else the
    local socket), checked with a ping; DockerUnavailable when it does not answer."""
    host, from_context = _docker_host()
    try:
        if from_context:
            client = docker.DockerClient(base_url=host, timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # docker-py raises DockerException, requests errors, OSError
        raise _unreachable(host, exc) from exc
    return client


def engine_error(exc: BaseException) -> DevmeshError:
    """A failure talking to the engine (outside a build's own output) as a DevmeshError."""
    if isinstance(exc, docker.errors.APIError):
        return DevmeshError(f"the Docker engine refused a request: {exc.explanation or exc}")
    return _unreachable(_docker_host()[0], exc)
