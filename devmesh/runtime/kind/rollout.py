"""How far a Deployment's rollout has come, and why it is stuck. Pure: reads objects only.

Kubernetes says a rollout is stuck only after ``progressDeadlineSeconds`` (10 minutes by
default); a developer wants to know at once that an image cannot be pulled, that the process
exits, or that no node has room. This reads the same facts ``kubectl describe`` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Obj = dict[str, Any]
RolloutState = Literal["done", "progressing", "failed"]

# Waiting reasons that will not go away by waiting (ErrImagePull becomes ImagePullBackOff).
_HOPELESS = {
    "ImagePullBackOff": "the image cannot be pulled",
    "InvalidImageName": "the image name is invalid",
    "CreateContainerConfigError": "the container's configuration is invalid",
    "CrashLoopBackOff": "the container keeps exiting",
}


@dataclass(frozen=True)
class Rollout:
    """A Deployment's rollout: ``done``, still ``progressing``, or ``failed`` with a reason."""

    state: RolloutState
    reason: str = ""
    message: str = ""
    pod: str = ""
    container: str = ""
    exit_code: int | None = None

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    def describe(self) -> str:
        """One line for people: the reason and Kubernetes' own message."""
        if self.state == "done":
            return "ready"
        text = self.reason or self.state
        if self.reason in _HOPELESS:
            text = f"{self.reason}: {_HOPELESS[self.reason]}"
        if self.exit_code is not None:
            text += f" (last exit status {self.exit_code})"
        if self.message:
            text += f" — {self.message}"
        return text


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _pod_problem(pod: Obj) -> Rollout | None:
    name = pod.get("metadata", {}).get("name", "")
    status = pod.get("status") or {}
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" \
                and cond.get("reason") == "Unschedulable":
            return Rollout("failed", "Unschedulable", str(cond.get("message", "")), pod=name)
    for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = str(waiting.get("reason") or "")
        if reason in _HOPELESS:
            last = ((cs.get("lastState") or {}).get("terminated") or {}).get("exitCode")
            return Rollout("failed", reason, str(waiting.get("message") or ""), pod=name,
                           container=str(cs.get("name", "")),
                           exit_code=last if isinstance(last, int) else None)
    return None


def _restarts(cs: Obj) -> str:
    """`` (restarted 3 times; last exit status 137, OOMKilled)``, or nothing for a first run."""
    count = _int(cs.get("restartCount"))
    if not count:
        return ""
    last = (cs.get("lastState") or {}).get("terminated") or {}
    text = f" (restarted {count} time{'s' if count > 1 else ''}"
    if isinstance(last.get("exitCode"), int):
        text += f"; last exit status {last['exitCode']}"
        if last.get("reason"):
            text += f", {last['reason']}"
    return text + ")"


def _ready(pod: Obj) -> bool:
    """Whether the kubelet says the pod is Ready (its readiness probes pass)."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _pod_progress(pod: Obj) -> str:
    name = pod.get("metadata", {}).get("name", "")
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or ():
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"pod {name}: {cs.get('name')} {waiting['reason']}{_restarts(cs)}"
        if not cs.get("ready"):
            return f"pod {name}: {cs.get('name')} not ready yet{_restarts(cs)}"
    return f"pod {name}: {status.get('phase', 'Pending')}"


def assess(deployment: Obj, pods: list[Obj]) -> Rollout:
    """The rollout of ``deployment`` given the pods its selector matches."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = _int(spec.get("replicas", 1)) if "replicas" in spec else 1
    if _int(status.get("observedGeneration")) < _int(meta.get("generation")):
        return Rollout("progressing", "Pending", "waiting for the deployment controller")
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Rollout("failed", "ProgressDeadlineExceeded", str(cond.get("message", "")))
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    for pod in live:
        problem = _pod_problem(pod)
        if problem is not None:
            return problem
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    total = _int(status.get("replicas"))
    # The Deployment's counts lag behind its pods: after a node restart they still say
    # available while the kubelet already reports the pods not ready, so both must agree.
    ready = sum(1 for pod in live if _ready(pod))
    if updated >= wanted and available >= wanted and total <= updated and ready >= wanted:
        return Rollout("done")
    detail = f"{min(available, ready)}/{wanted} available"
    waiting = [_pod_progress(p) for p in live]
    if waiting:
        detail += "; " + "; ".join(waiting)
    return Rollout("progressing", "Progressing", detail)
