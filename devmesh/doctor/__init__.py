"""`devmesh doctor`: is this machine ready for the runtime it would use?

Each check says what was found, what is required, which runtimes need it, and the one command
or link that fixes it. Tools are probed by running them with an argument list (never through a
shell) and a timeout; the Docker engine through the docker SDK, whose client honours
``DOCKER_HOST`` like the ``docker`` CLI does.

Modules:

- ``check``    ``Check``, one check's outcome, and the version reading the checks share
- ``tools``    kind, kubectl, istioctl and git: found on PATH, versions probed
- ``engine``   the Docker engine, through the docker SDK
- ``gateway``  the gateway port: free, or already devmesh's
- ``config``   the project's devmesh.yaml
- ``report``   the ``Report`` and its table

This module runs them all (``diagnose``) and picks the runtime (``choose_runtime``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devmesh.doctor.check import RUNTIMES, Check, Runtime, Status
from devmesh.doctor.config import ConfigOutcome, check_config
from devmesh.doctor.engine import DOCKER_INSTALL, DOCKER_MIN_API, DOCKER_TIMEOUT, DOCKER_UPGRADE, check_docker
from devmesh.doctor.gateway import KIND_CLUSTER_LABEL, MANAGED_BY, check_port, gateway_owner
from devmesh.doctor.report import Report, format_table
from devmesh.doctor.tools import PROBE_TIMEOUT, TOOLS, Tool, check_tool

__all__ = [
    "DEFAULT_GATEWAY_PORT",
    "DOCKER_INSTALL",
    "DOCKER_MIN_API",
    "DOCKER_TIMEOUT",
    "DOCKER_UPGRADE",
    "KIND_CLUSTER_LABEL",
    "MANAGED_BY",
    "PROBE_TIMEOUT",
    "RUNTIMES",
    "TOOLS",
    "Check",
    "ConfigOutcome",
    "Report",
    "Runtime",
    "Status",
    "Tool",
    "check_config",
    "check_docker",
    "check_port",
    "check_tool",
    "choose_runtime",
    "diagnose",
    "format_table",
    "gateway_owner",
]

DEFAULT_GATEWAY_PORT = 8080


def _kind_runtime_shipped() -> bool:
    """Whether this installation can run the kind runtime (it talks to clusters through the
    kubernetes Python client)."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("devmesh.runtime.kind.runtime", "kubernetes"))


def choose_runtime(requested: str | None, configured: str | None,
                   checks: Mapping[str, Check]) -> tuple[Runtime, str]:
    """The runtime to check for, and why: ``--runtime``, else devmesh.yaml, else ``auto``.

    ``auto`` is kind when both kind and a Docker engine are present, otherwise docker.
    """
    if requested and requested != "auto":
        return requested, "--runtime"  # type: ignore[return-value]
    if configured and configured != "auto" and not requested:
        return configured, "runtime in devmesh.yaml"  # type: ignore[return-value]
    kind, engine = checks.get("kind"), checks.get("docker")
    if not (kind and kind.present):
        return "docker", "auto: kind is not installed"
    if not (engine and engine.present):
        return "docker", "auto: no Docker engine for kind to run in"
    if not _kind_runtime_shipped():
        return "docker", "auto: this version of devmesh ships only the docker runtime"
    return "kind", "auto: kind and a Docker engine are present"


def diagnose(config: Path | None = None, *, requested_runtime: str | None = None,
             environ: Mapping[str, str] | None = None) -> Report:
    """Run every check (tools in parallel) and pick the runtime."""
    env = dict(os.environ if environ is None else environ)
    with ThreadPoolExecutor(max_workers=len(TOOLS) + 1) as pool:
        docker_future = pool.submit(check_docker, env)
        tool_futures = [pool.submit(check_tool, tool, env) for tool in TOOLS]
        outcome = check_config(config, explicit=config is not None)
        tools = [f.result() for f in tool_futures]
        engine = docker_future.result()
    port = check_port(outcome.gateway_port or DEFAULT_GATEWAY_PORT,
                      owner=lambda number: gateway_owner(number, env) if engine.present else None)
    checks = (engine, *tools, outcome.check, port)
    runtime, reason = choose_runtime(requested_runtime, outcome.runtime, {c.name: c for c in checks})
    return Report(runtime, reason, checks)
