"""`devmesh doctor`: is this machine ready for the runtime it would use?

Each check says what was found, what is required, which runtimes need it, and the one command
or link that fixes it. Tools are probed by running them with an argument list (never through a
shell) and a timeout; the Docker engine through the docker SDK, whose client honours
``DOCKER_HOST`` like the ``docker`` CLI does.

Minimum versions, and why:

- Docker Engine API 1.41 (Engine 20.10): the oldest engine the docker runtime is tested on
  (Debian bookworm's ``docker.io``).
- kind 0.20: node images for current Kubernetes releases, and containerd's ``certs.d``
  registry configuration that kind's local-registry recipe relies on.
- kubectl 1.27: within the version skew Kubernetes supports for the clusters kind 0.20+
  creates, and new enough for ``kubectl kustomize`` with Kustomize v5.
- istioctl 1.22: the first release line whose ``networking.istio.io/v1`` APIs devmesh renders.
- git 2.30: a conservative floor (Debian bullseye's); devmesh uses worktrees and merge-base,
  which older releases also have, but is not tested on them.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from devmesh.ports import bind_error

RUNTIMES = ("kind", "docker")
Runtime = Literal["kind", "docker"]
Status = Literal["ok", "missing", "too-old", "failed", "skipped"]

PROBE_TIMEOUT = 5.0
DOCKER_TIMEOUT = 3.0
DEFAULT_GATEWAY_PORT = 8080


@dataclass(frozen=True)
class Check:
    """The outcome of one check."""

    name: str
    status: Status
    version: str | None
    required: str | None
    needed_by: tuple[str, ...]
    fix: str | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")

    @property
    def present(self) -> bool:
        """Found at all (perhaps too old): what ``runtime: auto`` looks at."""
        return self.status in ("ok", "too-old")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["needed_by"] = list(self.needed_by)
        return out


@dataclass(frozen=True)
class Tool:
    """A command-line tool and how to ask it for its version."""

    name: str
    args: tuple[str, ...]
    minimum: tuple[int, ...]
    needed_by: tuple[str, ...]
    install: str  # the fix when it is missing
    upgrade: str  # the fix when it is too old
    parse: Callable[[str], str | None]


_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


def _first_version(text: str) -> str | None:
    match = _VERSION.search(text)
    return match.group(0) if match else None


def _kubectl_version(text: str) -> str | None:
    try:
        data = json.loads(text)
        return _first_version(str(data["clientVersion"]["gitVersion"]))
    except (ValueError, KeyError, TypeError):
        return _first_version(text)


def _istioctl_version(text: str) -> str | None:
    # "client version: 1.22.0" (newer) or just "1.22.0"; other lines may follow
    for line in text.splitlines():
        if "client" in line.lower() or _VERSION.fullmatch(line.strip()):
            found = _first_version(line)
            if found:
                return found
    return _first_version(text)


TOOLS: tuple[Tool, ...] = (
    Tool("kind", ("version",), (0, 20), ("kind",),
         install="https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
         upgrade="https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
         parse=_first_version),
    Tool("kubectl", ("version", "--client", "-o", "json"), (1, 27), ("kind",),
         install="https://kubernetes.io/docs/tasks/tools/#kubectl",
         upgrade="https://kubernetes.io/docs/tasks/tools/#kubectl",
         parse=_kubectl_version),
    Tool("istioctl", ("version", "--remote=false"), (1, 22), ("kind",),
         install="https://istio.io/latest/docs/setup/getting-started/#download",
         upgrade="https://istio.io/latest/docs/setup/getting-started/#download",
         parse=_istioctl_version),
    Tool("git", ("--version",), (2, 30), RUNTIMES,
         install="apt-get install git",
         upgrade="https://git-scm.com/downloads",
         parse=_first_version),
)

DOCKER_MIN_API = (1, 41)
DOCKER_INSTALL = "apt-get install docker.io"
DOCKER_UPGRADE = "https://docs.docker.com/engine/install/"


def _as_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _at_least(version: str, minimum: tuple[int, ...]) -> bool:
    found = _as_tuple(version)
    return found + (0,) * (len(minimum) - len(found)) >= minimum


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _run_probe(args: list[str], env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``args`` (no shell) with a timeout that also ends any children it started, which
    would otherwise hold the output pipes open long after the timeout."""
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, text=True, env=dict(env),
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def check_tool(tool: Tool, environ: Mapping[str, str] | None = None,
               timeout: float = PROBE_TIMEOUT) -> Check:
    """Find ``tool`` on PATH and read its version."""
    env = dict(os.environ if environ is None else environ)
    required = f">= {_dotted(tool.minimum)}"

    def result(status: Status, version: str | None, fix: str | None, detail: str) -> Check:
        return Check(tool.name, status, version, required, tool.needed_by, fix, detail)

    path = shutil.which(tool.name, path=env.get("PATH", os.defpath))
    if path is None:
        return result("missing", None, tool.install, "not found on PATH")
    try:
        done = _run_probe([path, *tool.args], env, timeout)
    except subprocess.TimeoutExpired:
        return result("failed", None, tool.install,
                      f"'{tool.name} {' '.join(tool.args)}' did not answer within {timeout:g} s")
    except OSError as exc:
        return result("failed", None, tool.install, f"cannot run {path}: {exc.strerror or exc}")
    if done.returncode != 0:
        why = _first_line(done.stderr) or _first_line(done.stdout) or f"exit status {done.returncode}"
        return result("failed", None, tool.install,
                      f"'{tool.name} {' '.join(tool.args)}' failed: {why}")
    version = tool.parse(done.stdout) or tool.parse(done.stderr)
    if version is None:
        return result("failed", None, tool.install,
                      f"cannot read a version from '{_first_line(done.stdout)}'")
    if not _at_least(version, tool.minimum):
        return result("too-old", version, tool.upgrade,
                      f"{tool.name} {version} is older than {_dotted(tool.minimum)}")
    return result("ok", version, None, path)


def check_docker(environ: Mapping[str, str] | None = None, timeout: float = DOCKER_TIMEOUT) -> Check:
    """Ask the Docker engine (``DOCKER_HOST``, else the default socket) for its version."""
    env = dict(os.environ if environ is None else environ)
    name, required, needed_by = "docker", f"API >= {_dotted(DOCKER_MIN_API)}", RUNTIMES
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
    if not _VERSION.match(api) or not _at_least(api, DOCKER_MIN_API):
        return Check(name, "too-old", version, required, needed_by, DOCKER_UPGRADE,
                     f"the engine at {host} speaks API {api or '?'}; devmesh needs {_dotted(DOCKER_MIN_API)}")
    return Check(name, "ok", version, required, needed_by, None, host)


def _docker_failure(host: str, explicit: bool, error: str, env: Mapping[str, str]) -> Check:
    def failed(status: Status, fix: str, detail: str) -> Check:
        return Check("docker", status, None, f"API >= {_dotted(DOCKER_MIN_API)}", RUNTIMES, fix, detail)

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
        detail = f"cannot reach the Docker engine at {host}: {_first_line(error)}"
    fix = "point DOCKER_HOST at a running engine" if explicit else "sudo systemctl start docker"
    return failed("failed", fix, detail)


MANAGED_BY = "app.kubernetes.io/managed-by"
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"


def gateway_owner(port: int, environ: Mapping[str, str] | None = None,
                  timeout: float = DOCKER_TIMEOUT) -> str | None:
    """The devmesh container (its Envoy, or a kind node) publishing ``port``, if any.

    Best effort: any trouble talking to the engine means "not known to be ours".
    """
    env = dict(os.environ if environ is None else environ)
    try:
        import docker

        client = docker.from_env(environment=env, timeout=int(max(1, timeout)))
        try:
            listed = client.api.containers(filters={"status": "running"})
        finally:
            client.close()
    except Exception:
        return None
    for container in listed:
        labels = container.get("Labels") or {}
        if labels.get(MANAGED_BY) != "devmesh" and KIND_CLUSTER_LABEL not in labels:
            continue
        for binding in container.get("Ports") or ():
            if binding.get("PublicPort") == port and binding.get("IP") in ("127.0.0.1", "0.0.0.0", "", None):
                names = container.get("Names") or [str(container.get("Id", "?"))[:12]]
                return str(names[0]).lstrip("/")
    return None


def check_port(port: int, host: str = "127.0.0.1",
               owner: Callable[[int], str | None] | None = None) -> Check:
    """Whether the gateway can listen on ``host:port`` (or devmesh's gateway already does)."""
    name, needed_by = "gateway port", RUNTIMES
    fix = "stop what listens there, or set routing.gateway_port in devmesh.yaml"
    exc = bind_error(port, host)
    if exc is not None:
        if exc.errno != errno.EADDRINUSE:
            return Check(name, "failed", str(port), "free", needed_by, fix,
                         f"cannot listen on {host}:{port}: {exc.strerror or exc}")
        ours = owner(port) if owner is not None else None
        if ours is not None:
            return Check(name, "ok", str(port), "free", needed_by, None,
                         f"{host}:{port} is served by devmesh ({ours})")
        return Check(name, "failed", str(port), "free", needed_by, fix,
                     f"{host}:{port} is already in use")
    return Check(name, "ok", str(port), "free", needed_by, None, f"{host}:{port} is free")


@dataclass(frozen=True)
class ConfigOutcome:
    check: Check
    runtime: str | None  # the file's ``runtime``, when it could be read
    gateway_port: int | None


def check_config(path: Path | None, *, explicit: bool) -> ConfigOutcome:
    """Validate the project file: the one given, else the nearest one (none is fine)."""
    from devmesh.config import find_config, load_project
    from devmesh.errors import DevmeshError

    name, needed_by = "devmesh.yaml", RUNTIMES
    if path is None:
        try:
            path = find_config()
        except DevmeshError:
            skipped = Check(name, "skipped", None, "valid", needed_by, None,
                            "no devmesh.yaml here or in a parent directory")
            return ConfigOutcome(skipped, None, None)
    try:
        project = load_project(path)
    except DevmeshError as exc:
        fix = "correct the file (fields: docs/config.md)" if path.exists() else (
            "give the path of an existing devmesh.yaml with -c" if explicit else "devmesh init"
        )
        return ConfigOutcome(Check(name, "failed", None, "valid", needed_by, fix, str(exc)), None, None)
    ok = Check(name, "ok", None, "valid", needed_by, None, str(project.path))
    return ConfigOutcome(ok, project.runtime, project.routing.gateway_port)


def _kind_runtime_shipped() -> bool:
    """Whether this installation can run the kind runtime (it talks to clusters through the
    kubernetes Python client)."""
    import importlib.util

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


@dataclass(frozen=True)
class Report:
    runtime: Runtime
    reason: str
    checks: tuple[Check, ...]

    def problems(self) -> list[Check]:
        """The checks the chosen runtime needs that are not ok."""
        return [c for c in self.checks if not c.ok and self.runtime in c.needed_by]

    @property
    def ok(self) -> bool:
        return not self.problems()

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "reason": self.reason,
            "ok": self.ok,
            "problems": [c.name for c in self.problems()],
            "checks": [c.to_json() for c in self.checks],
        }


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


_SYMBOL = {"ok": "ok", "missing": "MISSING", "too-old": "TOO OLD", "failed": "FAILED", "skipped": "skipped"}


def format_table(report: Report) -> str:
    """The report as aligned plain text."""
    header = ("CHECK", "STATUS", "FOUND", "REQUIRED", "NEEDED BY")
    rows = [
        (c.name, _SYMBOL[c.status], c.version or "-", c.required or "-", ", ".join(c.needed_by))
        for c in report.checks
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    out = [f"runtime: {report.runtime} ({report.reason})", "", line(header)]
    out += [line(row) for row in rows]
    attention = [c for c in report.checks if not c.ok]
    if attention:
        out.append("")
    for check in attention:
        needed = report.runtime in check.needed_by
        tag = "" if needed else f" (not needed by the {report.runtime} runtime)"
        detail = check.detail.splitlines() or [""]
        out.append(f"{check.name}: {detail[0]}{tag}")
        out += [f"  {more}" for more in detail[1:]]
        if check.fix:
            out.append(f"  fix: {check.fix}")
    out.append("")
    problems = report.problems()
    if problems:
        names = ", ".join(c.name for c in problems)
        out.append(f"not ready: the {report.runtime} runtime needs {names}")
    else:
        out.append(f"ready: everything the {report.runtime} runtime needs is here")
    return "\n".join(out)
