"""The supervisor devmesh places in a service's container so that a reload runs the service's
command again in the same container: its network, its place in the mesh, its mounts and the
files synced into it stay; nothing is restarted but the process.

It is a POSIX shell script (dash, bash and busybox run it), started as the container's
command with the image's own command as its arguments:

- it runs the command as its child and waits;
- a reload (signal 37, a real-time signal apps leave alone): the child gets ``SIGTERM`` and up
  to ``DEVMESH_RELOAD_GRACE`` seconds (default 5) to exit, then ``SIGKILL``; the command is
  started again; several reloads while one is under way make one;
- ``SIGHUP``, ``SIGUSR1``, ``SIGUSR2``, ``SIGQUIT`` and ``SIGWINCH`` go to the child
  (``reload: {signal: …}`` keeps working for apps that reload themselves);
- ``SIGTERM``/``SIGINT`` (the container is stopped): the same stop, then the supervisor exits;
- the first run exiting by itself ends the container with its status (so a service that
  cannot start is reported as one); a run after a reload that exits is reported on the
  container's output and the container stays, waiting for the next reload — a sync that fixes
  the code brings it back.

The child's standard input is /dev/null (POSIX: an asynchronous command's, without job
control).

Images without ``/bin/sh`` run their command directly: the docker runtime restarts them on a
reload; the kind runtime cannot (the kubelet starts a fresh container, without the synced
files), so ``reload: restart`` is refused for them there.

On Kubernetes the script comes from the ConfigMap ``devmesh-supervisor``, mounted read-only at
``/.devmesh`` in the pods of the environments devmesh live-syncs (``devmesh.plan.k8s``).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass

SUPERVISOR_DIR = "/.devmesh"
SUPERVISOR_PATH = f"{SUPERVISOR_DIR}/supervise"
SHELL = "/bin/sh"
# A real-time signal (SIGRTMIN+3 under glibc), by number: dash, bash and busybox trap it.
RELOAD_SIGNAL = 37
# Seconds a reload waits for requests in flight to be answered (docker runtime: Envoy's count
# for the container), and then for the old process to exit after SIGTERM.
RELOAD_GRACE = 5.0
SUPERVISED_LABEL = "devmesh.dev/supervised"
# Kubernetes: the ConfigMap holding the script, and the pod annotation carrying its digest (a
# new script rolls the pods) or saying why a pod runs without it.
SUPERVISOR_CONFIGMAP = "devmesh-supervisor"
SUPERVISOR_KEY = "supervise"
SUPERVISOR_ANNOTATION = "devmesh.dev/supervisor"
UNSUPERVISED_ANNOTATION = "devmesh.dev/unsupervised"

SCRIPT = r"""# devmesh supervisor: see devmesh/plan/supervisor.py in devmesh
grace=${DEVMESH_RELOAD_GRACE:-5}
reload=
stop=
runs=0
child=
# Signal 37 (a real-time signal, which apps leave alone) is devmesh's reload; SIGHUP and the
# other signals an app may handle itself go to the child.
trap 'reload=1' 37
trap '[ -n "$child" ] && kill -HUP "$child" 2>/dev/null' HUP
trap '[ -n "$child" ] && kill -USR1 "$child" 2>/dev/null' USR1
trap '[ -n "$child" ] && kill -USR2 "$child" 2>/dev/null' USR2
trap '[ -n "$child" ] && kill -QUIT "$child" 2>/dev/null' QUIT
trap '[ -n "$child" ] && kill -WINCH "$child" 2>/dev/null' WINCH
trap 'stop=143' TERM
trap 'stop=130' INT

start() {
  "$@" &
  child=$!
  runs=$((runs + 1))
}

# The child gets SIGTERM, then SIGKILL after the grace period; wait until it is gone (a
# trapped signal interrupts wait: wait again).
halt() {
  kill -TERM "$child" 2>/dev/null
  (sleep "$grace"; kill -KILL "$child" 2>/dev/null) &
  timer=$!
  while :; do
    wait "$child"
    kill -0 "$child" 2>/dev/null || break
  done
  kill "$timer" 2>/dev/null
}

start "$@"
# The flags are looked at between pauses that any trapped signal cuts short, so a signal is
# never missed, however it falls.
while :; do
  if [ -n "$stop" ]; then
    halt
    exit "$stop"
  fi
  if [ -n "$reload" ]; then
    reload=
    [ -n "$child" ] && halt
    start "$@"
    continue
  fi
  if [ -n "$child" ] && ! kill -0 "$child" 2>/dev/null; then
    wait "$child"
    status=$?
    child=
    [ "$runs" -eq 1 ] && exit "$status"
    echo "devmesh: $1 exited with status $status; waiting for the next sync to run it again" >&2
  fi
  sleep 1 &
  wait $!
done
"""


@dataclass(frozen=True)
class Launch:
    """How a live-synced backend's container starts: under the supervisor, running
    ``command`` (the image's ENTRYPOINT then CMD), or as its image says, for the reason ``why``."""

    command: tuple[str, ...] = ()
    why: str = ""

    @property
    def supervised(self) -> bool:
        return bool(self.command)


def script_digest() -> str:
    """A short digest of the script: a container made with another one is made again."""
    return hashlib.sha256(SCRIPT.encode()).hexdigest()[:12]


def supervisor_archive() -> bytes:
    """A tar holding the supervisor at SUPERVISOR_PATH (mode 0755, owned by root), for the
    engine's archive API at ``/``."""
    data = SCRIPT.encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        folder = tarfile.TarInfo(SUPERVISOR_DIR.lstrip("/"))
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        script = tarfile.TarInfo(SUPERVISOR_PATH.lstrip("/"))
        script.size, script.mode = len(data), 0o755
        tar.addfile(script, io.BytesIO(data))
    return out.getvalue()


def supervised_command(command: list[str]) -> tuple[list[str], list[str]]:
    """The entrypoint and command that run ``command`` (the image's ENTRYPOINT + CMD) under
    the supervisor."""
    return [SHELL, SUPERVISOR_PATH], list(command)
