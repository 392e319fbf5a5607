"""The command-line tools ``devmesh doctor`` checks: each found on PATH and asked for its
version by running it with an argument list (never through a shell) and a timeout.

Minimum versions, and why:

- kind 0.20: node images for current Kubernetes releases, and containerd's ``certs.d``
  registry configuration that kind's local-registry recipe relies on.
- kubectl 1.27: within the version skew Kubernetes supports for the clusters kind 0.20+
  creates, and new enough for ``kubectl kustomize`` with Kustomize v5.
- istioctl 1.22: the first release line whose ``networking.istio.io/v1`` APIs devmesh renders.
- git 2.30: a conservative floor (Debian bullseye's); devmesh uses worktrees and merge-base,
  which older releases also have, but is not tested on them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from devmesh.doctor.check import RUNTIMES, Check, Status, VERSION, at_least, dotted, first_line, first_version

PROBE_TIMEOUT = 5.0


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


def _kubectl_version(text: str) -> str | None:
    try:
        data = json.loads(text)
        return first_version(str(data["clientVersion"]["gitVersion"]))
    except (ValueError, KeyError, TypeError):
        return first_version(text)


def istioctl_version(text: str) -> str | None:
    """The client version in the output of ``istioctl version --remote=false``."""
    # "client version: 1.22.0" (newer) or just "1.22.0"; other lines may follow
    for line in text.splitlines():
        if "client" in line.lower() or VERSION.fullmatch(line.strip()):
            found = first_version(line)
            if found:
                return found
    return first_version(text)


TOOLS: tuple[Tool, ...] = (
    Tool("kind", ("version",), (0, 20), ("kind",),
         install="https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
         upgrade="https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
         parse=first_version),
    Tool("kubectl", ("version", "--client", "-o", "json"), (1, 27), ("kind",),
         install="https://kubernetes.io/docs/tasks/tools/#kubectl",
         upgrade="https://kubernetes.io/docs/tasks/tools/#kubectl",
         parse=_kubectl_version),
    Tool("istioctl", ("version", "--remote=false"), (1, 22), ("kind",),
         install="https://istio.io/latest/docs/setup/getting-started/#download",
         upgrade="https://istio.io/latest/docs/setup/getting-started/#download",
         parse=istioctl_version),
    Tool("git", ("--version",), (2, 30), RUNTIMES,
         install="apt-get install git",
         upgrade="https://git-scm.com/downloads",
         parse=first_version),
)


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
    required = f">= {dotted(tool.minimum)}"

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
        why = first_line(done.stderr) or first_line(done.stdout) or f"exit status {done.returncode}"
        return result("failed", None, tool.install,
                      f"'{tool.name} {' '.join(tool.args)}' failed: {why}")
    version = tool.parse(done.stdout) or tool.parse(done.stderr)
    if version is None:
        return result("failed", None, tool.install,
                      f"cannot read a version from '{first_line(done.stdout)}'")
    if not at_least(version, tool.minimum):
        return result("too-old", version, tool.upgrade,
                      f"{tool.name} {version} is older than {dotted(tool.minimum)}")
    return result("ok", version, None, path)
