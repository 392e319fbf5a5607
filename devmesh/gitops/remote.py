"""Running git against the manifest repo: never prompting, never hanging, failing in one line.

Every git that talks to the remote has a bounded time. ``DEVMESH_GIT_TIMEOUT`` (seconds,
default 30) is how long the remote may stay silent: HTTP transfers are aborted by git itself
below 1 byte/s for that long, SSH gives up connecting and drops a connection whose server
stops answering keep-alives. As the backstop for everything else (``git://``, a custom SSH
command, a connect that never completes) the whole git process group is killed after ten
times that.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devmesh.errors import DevmeshError, UserInputError
from devmesh.gitops.settings import is_local_repo

TIMEOUT_VAR = "DEVMESH_GIT_TIMEOUT"
DEFAULT_TIMEOUT = 30.0
BACKSTOP_FACTOR = 10

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
_TOO_SLOW = re.compile(r"operation too slow|timed out|timeout", re.IGNORECASE)
_NOT_A_REPO = re.compile(
    r"does not appear to be a git repository|not a git repository|repository .* not found|"
    r"\b404\b",
    re.IGNORECASE,
)
# GitPython's GitCommandError.stderr is git's text wrapped as "\n  stderr: '<text>'".
_GITPYTHON_WRAPPER = re.compile(r"^\s*stderr: '(?P<text>.*)'\s*$", re.DOTALL)
_GITPYTHON_IN_STR = re.compile(r"\n\s*stderr: '(?P<text>.*)'\s*$", re.DOTALL)
# Sideband lines end with an "erase to end of line" sequence and padding.
_TERMINAL_NOISE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


def network_timeout(environ: Mapping[str, str] | None = None) -> float:
    """Seconds the remote may stay silent: ``DEVMESH_GIT_TIMEOUT``, else 30."""
    env = os.environ if environ is None else environ
    text = env.get(TIMEOUT_VAR, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise UserInputError(f"{TIMEOUT_VAR}: expected a number of seconds above 0, got {text!r}")
    return value


def git_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables that make git fail instead of waiting for a password, or for a silent remote."""
    env = os.environ if environ is None else environ
    seconds = max(1, round(network_timeout(env)))
    out = {
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "LC_ALL": "C",
        "LANGUAGE": "C",
        "GIT_HTTP_LOW_SPEED_LIMIT": env.get("GIT_HTTP_LOW_SPEED_LIMIT", "1"),
        "GIT_HTTP_LOW_SPEED_TIME": env.get("GIT_HTTP_LOW_SPEED_TIME", str(seconds)),
    }
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        alive = max(1, seconds // 3)
        out["GIT_SSH_COMMAND"] = (
            f"ssh -o BatchMode=yes -o ConnectTimeout={seconds} "
            f"-o ServerAliveInterval={alive} -o ServerAliveCountMax=3"
        )
    return out


def unwrap_stderr(text: str) -> str:
    """Git's own text from GitPython's ``stderr: '…'`` wrapper (or from the whole exception)."""
    for pattern in (_GITPYTHON_WRAPPER, _GITPYTHON_IN_STR):
        match = pattern.search(text)
        if match:
            return match.group("text")
    return text


def first_line(stderr: str) -> str:
    """The most telling line of git's error output, as git wrote it (prefix aside)."""
    text = _TERMINAL_NOISE.sub("", unwrap_stderr(stderr))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for prefix in ("fatal:", "error:", "remote: error:", "remote:"):
        for line in lines:
            if line.startswith(prefix):
                return line.removeprefix(prefix).strip()
    return lines[-1] if lines else "git failed without saying why"


def remote_messages(stderr: str) -> list[str]:
    """What the remote (a hook, a server policy) said: the text of the ``remote:`` lines."""
    text = _TERMINAL_NOISE.sub("", unwrap_stderr(stderr))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("remote:"):
            said = line.removeprefix("remote:").strip()
            if said:
                out.append(said)
    return out


def timeout_error(url: str, seconds: float, detail: str | None = None) -> DevmeshError:
    """The remote stayed silent (or a git talking to it ran past the backstop)."""
    why = f" ({detail})" if detail else ""
    return DevmeshError(
        f"manifest repo {url} did not answer within {seconds:g}s{why}; nothing was changed",
        hint=f"check the network or the URL; {TIMEOUT_VAR}=SECONDS waits longer",
    )


def remote_error(url: str, stderr: str) -> DevmeshError:
    """Turn git's complaint about ``url`` into an error a person can act on."""
    stderr = unwrap_stderr(stderr)
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
    if _TOO_SLOW.search(stderr):
        return timeout_error(url, network_timeout(), detail)
    if _UNREACHABLE.search(stderr):
        return DevmeshError(f"cannot reach manifest repo {url} ({detail})")
    return DevmeshError(f"manifest repo {url}: git failed: {detail}")


@dataclass(frozen=True)
class GitRun:
    """What one git command did."""

    status: int
    stdout: str
    stderr: str


def run_git(cwd: Path, args: Sequence[str], *, url: str | None = None, env: Mapping[str, str] | None = None) -> GitRun:
    """Run git in ``cwd`` and return what it did, whatever its status.

    With ``url`` the command talks to that remote: it runs in its own process group, which
    is killed (git, its remote helper and ssh alike) when the backstop time runs out or
    the caller is interrupted; the timeout is then an error naming the repo.
    """
    full_env = {**os.environ, **git_environment(), **(env or {})}
    limit = network_timeout() * BACKSTOP_FACTOR if url is not None else None
    proc = subprocess.Popen(
        ["git", *args],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        start_new_session=url is not None,
    )
    try:
        stdout, stderr = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        assert url is not None and limit is not None
        raise DevmeshError(
            f"manifest repo {url}: git {args[0]} did not finish within {limit:g}s "
            f"({BACKSTOP_FACTOR} x {TIMEOUT_VAR}={network_timeout():g}s) and was stopped; nothing was changed",
            hint=f"check the network or the URL; {TIMEOUT_VAR}=SECONDS waits longer",
        ) from None
    except BaseException:
        _kill_group(proc)
        raise
    return GitRun(proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Kill the process group git leads (its remote helper and ssh too), then reap git."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.communicate()
