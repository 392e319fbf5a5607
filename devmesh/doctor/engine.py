"""The Docker engine check: its version asked through the docker SDK, whose client honours
``DOCKER_HOST`` like the ``docker`` CLI does, and a failure told apart (no engine, not running,
no permission, no answer) with the fix for each.

Minimum version, and why:

- Docker Engine API 1.41 (Engine 20.10): the oldest engine the docker runtime is tested on
  (Debian bookworm's ``docker.io``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from devmesh.doctor.check import RUNTIMES, Check, Status, VERSION, at_least, dotted, first_line

DOCKER_TIMEOUT = 3.0
DOCKER_MIN_API = (1, 41)
DOCKER_INSTALL = "apt-get install docker.io"
DOCKER_UPGRADE = "https://docs.docker.com/engine/install/"


def check_docker(environ: Mapping[str, str] | None = None, timeout: float = DOCKER_TIMEOUT) -> Check:
    """Ask the Docker engine (``DOCKER_HOST``, else the default socket) for its version."""
    env = dict(os.environ if environ is None else environ)
    name, required, needed_by = "docker", f"API >= {dotted(DOCKER_MIN_API)}", RUNTIMES
    explicit = bool(env.get("DOCKER_HOST"))
    host = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # the SDK is a dependency; a broken install still gets an answer
        return Check(name, "failed", None, required, needed_by, "pip install docker",
                     "the docker Python package is not installed")
    try:
        client = docker.from_env(environment=env, timeout=int(max(1, timeout)))
        try:
            info = client.version()
        finally:
            client.close()
    except DockerException as exc:
        return _docker_failure(host, explicit, str(exc), env)
    except Exception as exc:  # the SDK lets some transport errors through unwrapped
        return _docker_failure(host, explicit, f"{type(exc).__name__}: {exc}", env)
    api = str(info.get("ApiVersion", ""))
    engine = str(info.get("Version", "?"))
    version = f"{engine} (API {api})"
    if not VERSION.match(api) or not at_least(api, DOCKER_MIN_API):
        return Check(name, "too-old", version, required, needed_by, DOCKER_UPGRADE,
                     f"the engine at {host} speaks API {api or '?'}; devmesh needs {dotted(DOCKER_MIN_API)}")
    return Check(name, "ok", version, required, needed_by, None, host)


def _docker_failure(host: str, explicit: bool, error: str, env: Mapping[str, str]) -> Check:
    def failed(status: Status, fix: str, detail: str) -> Check:
        return Check("docker", status, None, f"API >= {dotted(DOCKER_MIN_API)}", RUNTIMES, fix, detail)

    lowered = error.lower()
    socket_path = host.removeprefix("unix://") if host.startswith("unix://") else None
    if socket_path is not None and not Path(socket_path).exists():
        if explicit:
            return failed("failed", "unset DOCKER_HOST, or point it at a running engine",
                          f"DOCKER_HOST is {host}, and {socket_path} does not exist")
        if shutil.which("dockerd", path=env.get("PATH", os.defpath)):
            return failed("failed", "sudo systemctl start docker",
                          f"the Docker engine is not running ({socket_path} does not exist)")
        return failed("missing", DOCKER_INSTALL, f"no Docker engine ({socket_path} does not exist)")
    if "permission denied" in lowered:
        return failed("failed", "sudo usermod -aG docker $USER (then log in again)",
                      f"no permission to use the Docker engine at {host}")
    if "timed out" in lowered or "timeout" in lowered:
        detail = f"the Docker engine at {host} did not answer in time"
    elif "connection refused" in lowered:
        detail = f"the Docker engine at {host} is not running"
    else:
        detail = f"cannot reach the Docker engine at {host}: {first_line(error)}"
    fix = "point DOCKER_HOST at a running engine" if explicit else "sudo systemctl start docker"
    return failed("failed", fix, detail)
