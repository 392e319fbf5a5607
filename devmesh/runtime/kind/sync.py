"""Live sync on Kubernetes: ``ExecTransport`` over the cluster client's exec.

Each running pod of a service's Deployment in the environment is a target (found by the
devmesh labels, never by name). A change set is one exec in the service's container with the
tar stream on stdin (the guarded delete script, then ``tar -x``); a signal is ``kill -s SIG 1``
through exec, a command is an exec of it.

A container restart cannot serve as a reload here: the kubelet starts a fresh container from
the image, so the files synced into the old one are gone. ``reload: restart`` runs the
service's command again in the same container instead, under devmesh's supervisor (the pods
of a live-synced environment run it: ``devmesh.plan.supervisor``): the sidecar is asked how
many requests to the container are in flight, until none is (up to the grace period), then
the supervisor gets its reload signal. A pod without the supervisor (an image without
``/bin/sh``) cannot: ``check_reload`` refuses ``restart`` for it when live sync starts.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.plan.k8s import selector
from devmesh.plan.supervisor import RELOAD_SIGNAL, SHELL, SUPERVISED_LABEL, UNSUPERVISED_ANNOTATION
from devmesh.runtime.kind.errors import ClusterError, ClusterUnreachable
from devmesh.runtime.kind.protocol import ClusterClient, Obj
from devmesh.sync.reload import wait_drained
from devmesh.sync.transport import ExecResult, ExecTransport, Target, TargetGone, TransportError

if TYPE_CHECKING:
    from devmesh.config import ReloadAction

EXEC_TIMEOUT = 60.0


SIDECAR = "istio-proxy"
OLD_PODS = "its pods were made without devmesh's supervisor: 'devmesh up' makes them again"


def restart_refusal(service: str, why: str) -> str:
    """Why ``reload: restart`` cannot work for ``service``'s pods, and what to use."""
    return (f"{service}: 'reload: restart' cannot work here: {why}, and a container restart "
            "on Kubernetes starts a fresh container from the image, without the synced files")


RESTART_HINT = ("set the service's reload to {signal: HUP} (the app re-reads its code on SIGHUP), "
                "{command: [...]} (a command run in the container after each sync), or none "
                "(the app reloads by itself) — see docs/kind.md")

def _active_stat(port: int) -> str:
    """A regex of the name of the sidecar's count of requests in flight to the container's
    ``port``; Istio puts a tag separator in it: cluster.inbound|8000||;.upstream_rq_active."""
    return rf"cluster\.inbound\|{port}\|\|;?\.upstream_rq_active"


def active_requests(stats: str, port: int) -> int | None:
    """Requests in flight from the sidecar to the container's ``port``, from Envoy's stats."""
    found = re.search(rf"^{_active_stat(port)}: (\d+)$", stats, re.MULTILINE)
    return int(found[1]) if found else None


def _unsupervised(pod: Obj) -> str | None:
    """Why ``pod`` runs without the supervisor; None when it runs under it."""
    meta = pod.get("metadata") or {}
    if (meta.get("labels") or {}).get(SUPERVISED_LABEL):
        return None
    return str((meta.get("annotations") or {}).get(UNSUPERVISED_ANNOTATION) or OLD_PODS)


def _port(pod: Obj, service: str) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or ():
        if container.get("name") == service:
            for port in container.get("ports") or ():
                if isinstance(port.get("containerPort"), int):
                    return int(port["containerPort"])
    return None


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
                 timeout: float = EXEC_TIMEOUT, clock: Callable[[], float] = time.monotonic,
                 pause: Callable[[float], None] = time.sleep) -> None:
        self.cluster = cluster
        self.app = app
        self.namespace = namespace
        self.timeout = timeout
        self.clock = clock
        self.pause = pause
        self._unsupervised: dict[str, str] = {}  # pod → why it runs without the supervisor
        self._ports: dict[str, int] = {}  # pod → the container's port (for the sidecar's count)
        self._no_stats: set[str] = set()  # pods whose sidecar gave no count

    def targets(self, env: str, service: str) -> list[Target]:
        """Every pod of ``service`` in ``env``, running or not (sorted by name)."""
        try:
            pods = self.cluster.list("v1", "Pod", namespace=self.namespace,
                                     selector=selector(self.app, env, service))
        except ClusterUnreachable as exc:
            raise TransportError(str(exc)) from None
        for pod in pods:
            name = str(pod["metadata"]["name"])
            why = _unsupervised(pod)
            if why is None:
                self._unsupervised.pop(name, None)
            else:
                self._unsupervised[name] = why
            if (port := _port(pod, service)) is not None:
                self._ports[name] = port
        return [Target(p["metadata"]["name"], p["metadata"]["name"], service, env, pod_state(p, service))
                for p in sorted(pods, key=lambda p: str(p["metadata"]["name"]))]

    def unsupervised(self, env: str, service: str) -> str | None:
        """Why some pod of ``service`` in ``env`` runs without the supervisor, or None."""
        for target in self.targets(env, service):
            if target.id in self._unsupervised:
                return self._unsupervised[target.id]
        return None

    def exec(self, target: Target, argv: Sequence[str], stdin: IO[bytes] | None = None, *,
             container: str | None = None) -> ExecResult:
        data = stdin.read() if stdin is not None else None
        try:
            result = self.cluster.exec(self.namespace, target.id, list(argv),
                                       container=container or target.service,
                                       stdin=data, timeout=self.timeout)
        except ClusterUnreachable as exc:
            raise TransportError(str(exc)) from None
        except ClusterError as exc:
            if exc.status == 404:
                raise TargetGone(f"pod {target.name} is gone (Kubernetes removed or replaced it)") from None
            raise TransportError(f"the cluster refused the exec into pod {target.name}: {exc}") from None
        output = (result.stdout + result.stderr).decode(errors="replace")
        return ExecResult(result.exit_code, output)

    def restart_signal(self, target: Target) -> str:
        """The supervisor's reload signal, once the requests in flight to the pod's container
        are answered; refused where the pod runs without the supervisor."""
        if target.id in self._unsupervised:
            raise TransportError(restart_refusal(target.service, self._unsupervised[target.id])
                                 + "; " + RESTART_HINT)
        self._drain(target)
        return str(RELOAD_SIGNAL)

    def restart(self, target: Target) -> None:
        """Run the service's command again in the pod's container, under the supervisor."""
        signal = self.restart_signal(target)
        done = self.exec(target, [SHELL, "-c", f"kill -{signal} 1"])
        if done.exit_code != 0:
            raise TransportError(f"the reload signal did not reach pod {target.name}'s supervisor "
                                 f"(exit status {done.exit_code}): {done.output.strip()[-200:]}")

    def _drain(self, target: Target) -> None:
        """Before a reload: wait (up to the grace period) until the sidecar has an answer to
        every request it sent to the container, so that none is cut off by the reload."""
        port = self._ports.get(target.id)
        if port is None or target.id in self._no_stats:
            return
        last = wait_drained(lambda: self._active(target, port), interval=0.05,
                            clock=self.clock, pause=self.pause)
        if last is None:
            self._no_stats.add(target.id)  # no sidecar, or one that does not answer

    def _active(self, target: Target, port: int) -> int | None:
        query = f"stats?filter={urllib.parse.quote(f'^{_active_stat(port)}$', safe='')}"
        try:
            done = self.exec(target, ["pilot-agent", "request", "GET", query], container=SIDECAR)
        except (TransportError, TargetGone):
            return None
        return active_requests(done.output, port) if done.exit_code == 0 else None


class KubeTransport(ExecTransport):
    """The kind runtime's transport: everything through exec; a restart is the supervisor's."""

    name = "kube-exec"

    def check_reload(self, env: str, service: str, action: ReloadAction) -> None:
        """Refuse, before anything is synced, a reload this runtime cannot carry out: a
        restart where a pod runs without the supervisor."""
        if action.action != "restart" or not isinstance(self.channel, KubeExec):
            return
        why = self.channel.unsupervised(env, service)
        if why is not None:
            raise UserInputError(restart_refusal(service, why), hint=RESTART_HINT)
