"""Live sync on Kubernetes: ``ExecTransport`` over the cluster client's exec.

Each running pod of a service's Deployment in the environment is a target (found by the
devmesh labels, never by name). A change set is one exec in the service's container with the
tar stream on stdin (the guarded delete script, then ``tar -x``); a signal is ``kill -s SIG 1``
through exec, a command is an exec of it.

A container restart cannot serve as a reload here: the kubelet starts a fresh container from
the image, so the files synced into the old one are gone. Services synced on this runtime
reload with a signal, a command, or by themselves (``reload: none``); ``check_reload`` refuses
``restart`` when live sync starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.plan.k8s import selector
from devmesh.runtime.kind.errors import ClusterError, ClusterUnreachable
from devmesh.runtime.kind.protocol import ClusterClient, Obj
from devmesh.sync.transport import ExecResult, ExecTransport, Target, TargetGone, TransportError

if TYPE_CHECKING:
    from devmesh.config import ReloadAction

EXEC_TIMEOUT = 60.0


def restart_refusal(service: str) -> str:
    """Why ``reload: restart`` cannot work for ``service`` on Kubernetes, and what to use."""
    return (f"{service}: 'reload: restart' cannot work on the kind runtime: Kubernetes starts a "
            "fresh container from the image, so the synced files would be lost")


RESTART_HINT = ("set the service's reload to {signal: HUP} (the app re-reads its code on SIGHUP), "
                "{command: [...]} (a command run in the container after each sync), or none "
                "(the app reloads by itself) — see docs/kind.md")


def pod_state(pod: Obj, container: str) -> str:
    """``running`` when ``container`` runs in ``pod`` and the pod is not going away; else a few
    words saying what it is doing (shown when a sync cannot reach it)."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "terminating"
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or ():
        if cs.get("name") != container:
            continue
        state = cs.get("state") or {}
        if "running" in state:
            return "running"
        for what in ("waiting", "terminated"):
            if what in state:
                reason = (state[what] or {}).get("reason")
                return f"{what} ({reason})" if reason else what
    return str(status.get("phase") or "pending").lower()


class KubeExec:
    """``ExecChannel`` over a ``ClusterClient``: targets are pods, exec is the pod exec API."""

    def __init__(self, cluster: ClusterClient, app: str, namespace: str, *,
                 timeout: float = EXEC_TIMEOUT) -> None:
        self.cluster = cluster
        self.app = app
        self.namespace = namespace
        self.timeout = timeout

    def targets(self, env: str, service: str) -> list[Target]:
        """Every pod of ``service`` in ``env``, running or not (sorted by name)."""
        try:
            pods = self.cluster.list("v1", "Pod", namespace=self.namespace,
                                     selector=selector(self.app, env, service))
        except ClusterUnreachable as exc:
            raise TransportError(str(exc)) from None
        return [Target(p["metadata"]["name"], p["metadata"]["name"], service, env, pod_state(p, service))
                for p in sorted(pods, key=lambda p: str(p["metadata"]["name"]))]

    def exec(self, target: Target, argv: Sequence[str], stdin: IO[bytes] | None = None) -> ExecResult:
        data = stdin.read() if stdin is not None else None
        try:
            result = self.cluster.exec(self.namespace, target.id, list(argv), container=target.service,
                                       stdin=data, timeout=self.timeout)
        except ClusterUnreachable as exc:
            raise TransportError(str(exc)) from None
        except ClusterError as exc:
            if exc.status == 404:
                raise TargetGone(f"pod {target.name} is gone (Kubernetes removed or replaced it)") from None
            raise TransportError(f"the cluster refused the exec into pod {target.name}: {exc}") from None
        output = (result.stdout + result.stderr).decode(errors="replace")
        return ExecResult(result.exit_code, output)

    def restart(self, target: Target) -> None:
        raise TransportError(restart_refusal(target.service) + "; " + RESTART_HINT)


class KubeTransport(ExecTransport):
    """The kind runtime's transport: everything through exec; no container restarts."""

    name = "kube-exec"

    def check_reload(self, service: str, action: ReloadAction) -> None:
        """Refuse, before anything is synced, a reload this runtime cannot carry out."""
        if action.action == "restart":
            raise UserInputError(restart_refusal(service), hint=RESTART_HINT)
