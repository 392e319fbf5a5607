"""A service's reload action: what runs in its containers after files were synced into them
(``restart``, ``none``, ``{signal: HUP}`` or ``{command: [kill, -HUP, "1"]}``)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from devmesh.config.diagnostics import describe
from devmesh.config.fields import StrictModel

# The signals of Linux, where the containers run (the host's own ``signal`` module would judge
# by macOS's set there). ``kill -s NAME`` and the Docker API take these names.
LINUX_SIGNALS = frozenset({
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGIOT", "SIGBUS", "SIGFPE",
    "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT",
    "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
    "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPOLL", "SIGPWR", "SIGSYS",
})
_RELOAD_EXPECTED = "restart, none, {signal: NAME} or {command: [PROGRAM, ARG…]}"


class ReloadAction(StrictModel):
    """What runs in a service's containers after files were synced into them: ``restart`` the
    container, send it a ``signal``, run a ``command`` in it, or nothing (``none``)."""

    action: Literal["restart", "signal", "command", "none"]
    signal: str = ""
    command: tuple[str, ...] = ()


def _reload_action(value: Any) -> Any:
    """``restart`` | ``none`` | ``{signal: HUP}`` | ``{command: [kill, -HUP, "1"]}`` (a command
    given as one string is split like a shell would, without running one)."""
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


Reload = Annotated[ReloadAction | None, BeforeValidator(_reload_action)]
