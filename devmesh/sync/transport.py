"""How a sync reaches a service's containers: the ``Transport`` protocol and the exec form.

A transport finds the running copies of a service (``targets``), applies one plan to a copy
(``apply``: deletions first, then one tar stream), and carries out reload actions. Two ways to
apply exist:

- the docker runtime's (``devmesh.runtime.docker.sync``): the tar goes through the engine's
  archive API (``put_archive`` at ``/``), which needs nothing inside the container; deletions
  run the guarded delete script through exec, which needs ``sh`` and ``rm`` there.
- ``ExecTransport``: one exec with stdin — the delete script, then ``tar -x`` reading the
  stream — for runtimes that only offer exec (Kubernetes). It is built on ``ExecChannel``, the
  small interface a runtime implements (the docker runtime has one too, which the benchmark
  uses to compare both ways on the same engine).

Every runtime hands out its transport: ``Runtime.sync_transport()`` (devmesh.runtime.base).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Protocol, runtime_checkable

from devmesh.errors import DevmeshError
from devmesh.sync.archive import Archive
from devmesh.sync.changes import Deletion

if TYPE_CHECKING:
    from devmesh.config import ReloadAction


class TransportError(DevmeshError):
    """A sync could not be applied to a container; the message says why."""


class TargetGone(TransportError):
    """The container was removed, or is not running."""


@dataclass(frozen=True)
class Target:
    """One running copy of a service."""

    id: str
    name: str
    service: str
    env: str
    state: str = "running"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


class Transport(Protocol):
    """Applies sync plans to a runtime's containers and reloads them."""

    name: str

    def targets(self, env: str, service: str) -> list[Target]:
        """The containers of ``service`` in ``env``, in any state."""
        ...

    def apply(self, target: Target, archive: Archive | None, deletions: Sequence[Deletion]) -> None:
        """Delete, then extract ``archive`` at ``/``; TargetGone or TransportError on failure."""
        ...

    def restart(self, target: Target) -> None: ...

    def signal(self, target: Target, signal: str) -> None: ...

    def run(self, target: Target, argv: Sequence[str]) -> None:
        """Run ``argv`` in the container; TransportError with its output when it fails."""
        ...


@runtime_checkable
class ReloadWithApply(Protocol):
    """A transport that can reload in the same call that applies a change set (one exec into
    the container instead of two): ``apply_and_reload`` says whether it did both."""

    def apply_and_reload(self, target: Target, archive: Archive | None, deletions: Sequence[Deletion],
                         action: ReloadAction) -> bool:
        """Apply, then carry out ``action`` when the change set applied; False (and nothing
        done) when ``action`` is not one it can carry out this way."""
        ...


@runtime_checkable
class ReloadCheck(Protocol):
    """A transport that cannot carry out every reload action says so before a sync starts."""

    def check_reload(self, env: str, service: str, action: ReloadAction) -> None:
        """Raise UserInputError when ``action`` cannot work for ``service`` in ``env`` here."""
        ...


class ExecChannel(Protocol):
    """What a runtime must offer for ``ExecTransport``: exec with stdin, and a restart."""

    def targets(self, env: str, service: str) -> list[Target]: ...

    def exec(self, target: Target, argv: Sequence[str], stdin: IO[bytes] | None = None) -> ExecResult:
        """Run ``argv`` in the container, feeding ``stdin`` to it when given, to completion."""
        ...

    def restart(self, target: Target) -> None: ...


@runtime_checkable
class SignalRestart(Protocol):
    """An ``ExecChannel`` whose restart is a signal to the container's main process (devmesh's
    supervisor): ``restart_signal`` does what must come first (waiting for the requests in
    flight) and names the signal, so that it can go in the exec that applies the files."""

    def restart_signal(self, target: Target) -> str: ...


# --- the script run in the container --------------------------------------------------------

# Deletes each (dest, path) pair given as arguments after the first, but only when no folder
# between dest and path is a symbolic link: ``rm`` would follow it and delete elsewhere. With
# "tar" as the first argument it then extracts the tar on stdin at /; with a signal as the
# second (not "-"), it sends it to the container's main process when all of that worked
# (status 4 when that fails: the files arrived, the reload did not). POSIX sh (busybox too).
DELETE_SCRIPT = r"""
mode=$1; after=$2; shift 2; status=0
while [ $# -ge 2 ]; do
  dest=$1; path=$2; shift 2
  case $path in "$dest"/?*) ;; *) echo "not removing $path: outside $dest" >&2; status=3; continue;; esac
  rest=${path#"$dest"/}; at=$dest; safe=1
  while :; do
    case $rest in
      */*) at=$at/${rest%%/*}; rest=${rest#*/}
           if [ -L "$at" ]; then safe=0; break; fi ;;
      *) break ;;
    esac
  done
  if [ $safe = 1 ]; then rm -rf -- "$path" || status=1
  else echo "not removing $path: $at is a symbolic link in the container" >&2; status=3; fi
done
if [ "$mode" = tar ]; then tar -x -f - -C / || status=1; fi
if [ $status = 0 ] && [ "$after" != - ]; then kill -"$after" 1 || exit 4; fi
exit $status
"""
# The script's status when the change set applied and the signal after it failed.
SIGNAL_FAILED = 4


def script_argv(deletions: Sequence[Deletion], with_tar: bool, signal: str | None = None) -> list[str]:
    """The argument vector running DELETE_SCRIPT, then ``signal`` (``HUP``, ``37``) to the
    main process when given (no shell parses the paths: they are positional arguments)."""
    argv = ["sh", "-c", DELETE_SCRIPT, "devmesh-sync", "tar" if with_tar else "-", signal or "-"]
    for d in deletions:
        argv += [str(d.dest), str(d.path)]
    return argv


class NotWritable(TransportError):
    """The container's user (or its file system) does not let the sync write a path."""

    def __init__(self, message: str, *, path: str, why: str) -> None:
        super().__init__(message)
        self.path = path
        self.why = why


# What GNU tar, busybox tar and rm say when the container's user cannot write a path (or the
# file system is read-only): the path and the reason.
_REFUSED = re.compile(
    r"(?:tar: (?P<gnu>[^\n]+?): Cannot [a-z]+(?: [a-z]+)?"
    r"|tar: can't [a-z]+(?: [a-z]+)? '(?P<box>[^']+)'"
    r"|rm: (?:cannot remove|can't remove) '(?P<rm>[^']+)')"
    r": (?P<why>Permission denied|Read-only file system|Operation not permitted)")


def _not_writable(target: Target, output: str) -> NotWritable | None:
    found = _REFUSED.search(output)
    if found is None:
        return None
    path = "/" + (found["gnu"] or found["box"] or found["rm"]).strip("/")
    why = found["why"]
    if why == "Read-only file system":
        what = (f"{target.name}'s file system is read-only at {path}: a sync target must be "
                "writable (a read-only root file system needs a writable volume there)")
    else:
        what = (f"the user {target.name} runs as cannot write {path} ({why}): the synced folder "
                "must belong to that user")
    return NotWritable(what, path=path, why=why)


def _failure(what: str, target: Target, result: ExecResult) -> TransportError:
    output = result.output.strip()
    refused = _not_writable(target, output)
    if refused is not None:
        return refused
    if result.exit_code in (126, 127) or "not found" in output and "exec" in output:
        hint = " (the container lacks a shell or the program)"
    else:
        hint = ""
    detail = f": {output.splitlines()[-1]}" if output else ""
    return TransportError(f"{what} in {target.name} failed with status {result.exit_code}{hint}{detail}")


class ExecTransport:
    """Every operation through exec: the delete script and ``tar -x`` in one call."""

    name = "exec"

    def __init__(self, channel: ExecChannel) -> None:
        self.channel = channel

    def targets(self, env: str, service: str) -> list[Target]:
        return self.channel.targets(env, service)

    def apply(self, target: Target, archive: Archive | None, deletions: Sequence[Deletion]) -> None:
        if archive is None and not deletions:
            return
        self._apply(target, archive, deletions, None)

    def apply_and_reload(self, target: Target, archive: Archive | None, deletions: Sequence[Deletion],
                         action: ReloadAction) -> bool:
        """A signal, or a restart that is a signal to the supervisor, goes in the exec that
        applies the change set: one round trip to the container instead of two."""
        if action.action == "signal":
            signal = action.signal.removeprefix("SIG")
        elif action.action == "restart" and isinstance(self.channel, SignalRestart):
            signal = self.channel.restart_signal(target)
        else:
            return False
        self._apply(target, archive, deletions, signal)
        return True

    def _apply(self, target: Target, archive: Archive | None, deletions: Sequence[Deletion],
               signal: str | None) -> None:
        if archive is not None:
            archive.data.seek(0)
        result = self.channel.exec(target, script_argv(deletions, archive is not None, signal),
                                   archive.data if archive is not None else None)
        if result.exit_code == SIGNAL_FAILED and signal is not None:
            raise TransportError(f"the change set reached {target.name}, but signal {signal} did not reach "
                                 f"its main process: {result.output.strip()[-200:] or 'kill failed'}")
        if result.exit_code != 0:
            raise _failure("applying the change set", target, result)

    def restart(self, target: Target) -> None:
        self.channel.restart(target)

    def signal(self, target: Target, signal: str) -> None:
        self.run(target, ["kill", "-s", signal.removeprefix("SIG"), "1"])

    def run(self, target: Target, argv: Sequence[str]) -> None:
        result = self.channel.exec(target, list(argv))
        if result.exit_code != 0:
            raise _failure(f"'{' '.join(argv)}'", target, result)
