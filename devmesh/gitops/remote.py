"""Talking to the remote: a git that never prompts, and its failures as one-line errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

from devmesh.errors import DevmeshError, UserInputError

_AUTH = re.compile(
    r"authentication failed|permission denied|could not read (username|password)|"
    r"terminal prompts disabled|access denied|\b403\b|\b401\b|invalid credentials|"
    r"host key verification failed",
    re.IGNORECASE,
)
_UNREACHABLE = re.compile(
    r"could not resolve host|connection refused|connection timed out|timed out|"
    r"network is unreachable|no route to host|could not connect|failed to connect|"
    r"unable to access|connection reset|ssl|could not read from remote repository",
    re.IGNORECASE,
)
_NOT_A_REPO = re.compile(
    r"does not appear to be a git repository|not a git repository|repository .* not found|"
    r"\b404\b",
    re.IGNORECASE,
)


def git_environment() -> dict[str, str]:
    """Variables that make git fail instead of waiting for a password nobody will type."""
    env = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never", "LC_ALL": "C"}
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"
    return env


def first_line(stderr: str) -> str:
    """The most telling line of git's error output."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for prefix in ("fatal:", "error:", "remote: error:", "remote:"):
        for line in lines:
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip().strip("'").strip()
    return lines[-1] if lines else "git failed without saying why"


def remote_error(url: str, stderr: str) -> DevmeshError:
    """Turn git's complaint about ``url`` into an error a person can act on."""
    from devmesh.gitops.settings import is_local_repo

    detail = first_line(stderr)
    if is_local_repo(url):
        local = Path(url.removeprefix("file://"))
        if not local.exists():
            return UserInputError(
                f"manifest repo {url} does not exist",
                hint="check manifests.repo in devmesh.yaml or DEVMESH_MANIFESTS",
            )
        if _NOT_A_REPO.search(stderr):
            return UserInputError(f"manifest repo {url} is not a git repository")
    if _AUTH.search(stderr):
        return DevmeshError(
            f"manifest repo {url}: authentication refused ({detail})",
            hint="check your git credentials or SSH key for this host",
        )
    if _NOT_A_REPO.search(stderr):
        return UserInputError(f"manifest repo {url} is not a git repository or does not exist ({detail})")
    if _UNREACHABLE.search(stderr):
        return DevmeshError(f"cannot reach manifest repo {url} ({detail})")
    return DevmeshError(f"manifest repo {url}: git failed: {detail}")
