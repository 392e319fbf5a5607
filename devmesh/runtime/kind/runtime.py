"""The kind runtime: environments as Kubernetes objects in one namespace per app, routed by Istio.

``up`` applies exactly what ``devmesh render`` prints (server-side apply, field manager
``devmesh``), with the images pushed to the registry and pinned by digest. The RoutePlan is
computed from every environment that has Deployments in the cluster, so one branch's ``up``
keeps every other branch's routes. Everything is found by labels, never by name patterns.

Release strategies (canary, mirror, switch) are kept in the app's ``strategies.json`` (see
``devmesh.routes_state``) and are part of every plan this runtime applies; ``apply_routes``
server-side applies only the VirtualServices and DestinationRules, so a strategy takes effect
without touching a Deployment. Live sync goes through exec into the pods
(``devmesh.runtime.kind.sync``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from devmesh.build import docker_client
from devmesh.errors import DevmeshError, UserInputError
from devmesh.events import Sink, Step, Warning, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.k8s import (
    ENV_LABEL,
    ISTIO_ROOT_NAMESPACE,
    SERVICE_LABEL,
    deployment_name,
    render_objects,
    selector,
)
from devmesh.plan.routing import Backend, Environment, RoutePlan
from devmesh.runtime.base import Health, UpResult
from devmesh.runtime.kind.app import (
    APPLIED_ANNOTATION,
    BRANCH_ANNOTATION,
    COMMIT_ANNOTATION,
    LOG_LINES_ON_CRASH,
    ROUTE_KINDS,
    KindApp,
    RolloutFailed,
    annotation_of,
    describe_obj,
    fingerprint_of,
    image_of,
    label_of,
    rollout_timeout,
)
from devmesh.runtime.kind.cluster import ClusterSetup
from devmesh.runtime.kind.errors import ClusterError, ClusterUnreachable
from devmesh.runtime.kind.launch import ImageLaunches
from devmesh.runtime.kind.layout import kind_context
from devmesh.runtime.kind.progress import UpProgress
from devmesh.runtime.kind.protocol import ClusterClient, Obj, last_log_lines
from devmesh.runtime.kind.publish import DockerPublisher, ImagePublisher
from devmesh.runtime.kind.rollout import Rollout
from devmesh.runtime.kind.sync import KubeExec, KubeTransport
from devmesh.runtime.shared import ProjectRuntime

if TYPE_CHECKING:
    import docker

    from devmesh.config import Project

__all__ = ["KindApp", "KindRuntime", "RolloutFailed"]

_FILTER = ("networking.istio.io/v1alpha3", "EnvoyFilter")  # a rate limit (devmesh.plan.k8s)


class KindRuntime(KindApp, ProjectRuntime[Obj]):
    """Runs a project's environments on a Kubernetes cluster with Istio (kind, or ``--context``);
    a ``devmesh.runtime.base.Runtime``."""

    def __init__(self, project: Project, *, context: str | None = None,
                 cluster: ClusterClient | None = None, engine: docker.DockerClient | None = None,
                 publisher: ImagePublisher | None = None, timeout: float | None = None) -> None:
        super().__init__(project.app, cluster=cluster,
                         context=context or project.cluster.context or kind_context(project.cluster.name))
        self.project = project
        # Given a context (or a cluster client), the cluster exists: devmesh installs nothing.
        self.existing_cluster = bool(context or project.cluster.context or cluster is not None)
        self._docker = engine
        self._publisher = publisher
        self.timeout = rollout_timeout() if timeout is None else timeout

    # --- collaborators, opened on first use ---------------------------------------------

    @property
    def image_engine(self) -> docker.DockerClient:
        """The Docker engine that builds images (and pushes them, by default)."""
        if self._docker is None:
            self._docker = docker_client()
        return self._docker

    @property
    def publisher(self) -> ImagePublisher:
        if self._publisher is None:
            self._publisher = DockerPublisher(self.image_engine, self.project.cluster.registry)
        return self._publisher

    def prepare(self, *, sink: Sink = discard) -> None:
        """Create the kind cluster, the registry and Istio where missing, as ``devmesh cluster
        up`` does — unless the cluster was given (``--context``, ``cluster.context``)."""
        if not self.existing_cluster:
            ClusterSetup(self.project).up(sink=sink)

    def preflight(self) -> None:
        """Refuse early when the cluster's API server does not answer (ClusterUnreachable
        says which context and what to do)."""
        self.cluster.server_version()

    def health(self) -> Health:
        try:
            version = self.cluster.server_version()
        except ClusterError as exc:
            return Health(False, f"cluster not answering: {str(exc).splitlines()[0][:80]}")
        return Health(True, f"cluster {self.context}, Kubernetes {version}")

    # --- up ------------------------------------------------------------------------------

    def up(self, environment: Environment, *, images: Mapping[Backend, str], baseline_commit: str = "",
           sink: Sink = discard) -> UpResult:
        """Push the images, apply the baseline, the environment's forks and every route, and
        wait for the rollout. ``images`` maps each backend to a locally built image."""
        actions: list[str] = []

        def act(message: str, **kw: Any) -> None:
            actions.append(message)
            sink(Step(message, **kw))

        self._wait_namespace_gone(sink)
        plan, wanted = self._up_plan(environment, images)
        pinned = {b: self.publisher.publish(images[b], sink=sink) for b in wanted}
        live_images = {(label_of(d, SERVICE_LABEL), label_of(d, ENV_LABEL)): image_of(d)
                       for d in self._deployments()}

        def image_for(b: Backend) -> str:
            return pinned.get(b) or live_images.get((b.service, b.env), "")

        launches = ImageLaunches(self.project, self.publisher, {b: images[b] for b in wanted})
        objects = []
        for obj in render_objects(self.project, plan, image_for, launches):
            if obj["kind"] == "Deployment" and label_of(obj, ENV_LABEL) not in (BASELINE_ENV, environment.name):
                continue  # another environment's versions are that environment's business
            if obj["kind"] == "Deployment":
                env = label_of(obj, ENV_LABEL)
                notes = {COMMIT_ANNOTATION: baseline_commit} if env == BASELINE_ENV and baseline_commit \
                    else {BRANCH_ANNOTATION: environment.branch} if env != BASELINE_ENV and environment.branch \
                    else {}
                if notes:
                    obj["metadata"]["annotations"] = notes
            objects.append(obj)
        objects = self._without_gateway_log_if_no_istio(objects, sink)
        # From the first write on, an API server that goes away leaves part of the objects
        # applied: the error says which, and that the next `up` finishes (it skips what holds
        # its fingerprint already).
        progress = UpProgress([describe_obj(o) for o in objects])
        try:
            for obj in objects:
                progress.applied(self._apply(obj, act))
            # A rate limit the presets no longer set goes with its EnvoyFilter.
            progress.phase = "while looking for rate limits no longer set"
            for name in self._unwanted_filters(objects):
                progress.phase = f"while removing EnvoyFilter {name}"
                self.cluster.delete(*_FILTER, name, self.namespace)
                progress.removed.append(f"EnvoyFilter {name}")
                act(f"removed EnvoyFilter {name}: its service has no rate limit now")
            # Services this environment no longer forks (the branch reverted them) go away.
            if not environment.is_baseline:
                progress.phase = "while looking for Deployments the branch no longer needs"
                for d in self._deployments(environment.name):
                    if label_of(d, SERVICE_LABEL) not in environment.forks:
                        progress.phase = f"while removing Deployment {d['metadata']['name']}"
                        self.cluster.delete("apps/v1", "Deployment", d["metadata"]["name"], self.namespace)
                        progress.removed.append(f"Deployment {d['metadata']['name']}")
                        act(f"removed Deployment {d['metadata']['name']}: the branch no longer changes "
                            f"{label_of(d, SERVICE_LABEL)}")
            progress.phase = "while waiting for the rollout"
            self._wait_rollout(wanted, sink, progress)
            progress.phase = "while reading the environment's state once it was ready"
            state = self.environment_state(environment.name, plan)
        except ClusterUnreachable as exc:
            raise progress.interrupted(exc, self.cluster.context) from None
        return UpResult(state, bool(actions), tuple(actions))

    def _without_gateway_log_if_no_istio(self, objects: list[Obj], sink: Sink) -> list[Obj]:
        """The gateway's access log goes to Istio's root namespace; a cluster without it (Istio
        installed with another root, or not at all) gets the rest, and a warning."""
        if not any(o["metadata"].get("namespace") == ISTIO_ROOT_NAMESPACE for o in objects):
            return objects
        if self.cluster.get("v1", "Namespace", ISTIO_ROOT_NAMESPACE) is not None:
            return objects
        sink(Warning(f"no namespace {ISTIO_ROOT_NAMESPACE} in context {self.context}: the ingress "
                     "gateway's requests are not recorded ('devmesh traffic' shows the hops between "
                     "services only)"))
        return [o for o in objects if o["metadata"].get("namespace") != ISTIO_ROOT_NAMESPACE]

    def _unwanted_filters(self, objects: Sequence[Obj]) -> list[str]:
        wanted = {o["metadata"]["name"] for o in objects if o["kind"] == _FILTER[1]}
        return sorted(name for f in self.cluster.list(*_FILTER, namespace=self.namespace,
                                                      selector=selector(self.app))
                      if (name := f["metadata"]["name"]) not in wanted)

    def _apply(self, obj: Obj, act: Any) -> str | None:
        """Apply unless the cluster already holds exactly this: ``created``, ``updated``, or
        None when it was left alone."""
        fingerprint = fingerprint_of(obj)
        meta = obj["metadata"]
        current = self.cluster.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        if current is not None and annotation_of(current, APPLIED_ANNOTATION) == fingerprint:
            return None
        meta.setdefault("annotations", {})[APPLIED_ANNOTATION] = fingerprint
        self.cluster.apply(obj, force=True)
        verb = "created" if current is None else "updated"
        act(f"{verb} {describe_obj(obj)}", service=label_of(obj, SERVICE_LABEL) or None,
            env=label_of(obj, ENV_LABEL) or None)
        return verb

    def _wait_namespace_gone(self, sink: Sink) -> None:
        """After ``down`` deleted the namespace, wait until Kubernetes has finished deleting it."""
        deadline = time.monotonic() + self.timeout
        announced = False
        while True:
            ns = self.cluster.get("v1", "Namespace", self.namespace)
            if ns is None or not (ns.get("metadata") or {}).get("deletionTimestamp"):
                return
            if not announced:
                sink(Step(f"waiting for namespace {self.namespace} to finish terminating", changed=False))
                announced = True
            if time.monotonic() > deadline:
                raise DevmeshError(f"namespace {self.namespace} is still terminating after "
                                   f"{self.timeout:.0f} s", hint="try again in a minute")
            time.sleep(1)

    def _wait_rollout(self, backends: Sequence[Backend], sink: Sink, progress: UpProgress | None = None) -> None:
        """Wait until every backend's Deployment is ready; ``progress`` learns which are."""
        deadline = time.monotonic() + self.timeout
        pending = {deployment_name(b): b for b in backends}
        if progress is not None:
            progress.waiting = [f"{b.service} ({b.env})" for b in pending.values()]
        last: dict[str, Rollout] = {}
        while True:
            for name, b in list(pending.items()):
                rollout = self.cluster.rollout_status(self.namespace, name)
                last[name] = rollout
                if rollout.done:
                    del pending[name]
                    if progress is not None:
                        progress.rolled_out(f"{b.service} ({b.env})")
                    sink(Step(f"{b.service} ({b.env}) is ready", service=b.service, env=b.env,
                              changed=False))
                elif rollout.failed:
                    raise self._failure(b, rollout)
            if not pending:
                return
            if time.monotonic() > deadline:
                waiting = "; ".join(f"{n}: {last[n].describe()}" for n in sorted(pending))
                raise RolloutFailed(f"not ready after {self.timeout:.0f} s: {waiting}",
                                    hint="see 'devmesh logs'; DEVMESH_ROLLOUT_TIMEOUT sets the wait")
            time.sleep(0.5)

    def _failure(self, backend: Backend, rollout: Rollout) -> RolloutFailed:
        what = f"{backend.service} ({backend.env})"
        if rollout.reason == "CrashLoopBackOff" and rollout.pod:
            lines = self._last_lines(rollout.pod, rollout.container or backend.service)
            last = "\n  ".join(lines) or "(no output)"
            code = f" with status {rollout.exit_code}" if rollout.exit_code is not None else ""
            return RolloutFailed(f"{what} keeps exiting{code} while starting (CrashLoopBackOff); "
                                 f"last log lines:\n  {last}")
        hints = {
            "ImagePullBackOff": "is the registry running and reachable from the cluster? "
                                "'devmesh cluster status' checks it",
            "Unschedulable": "no node has room: free memory/CPU in Docker, or remove other "
                             "environments ('devmesh ls', 'devmesh down --env ENV')",
        }
        return RolloutFailed(f"{what} cannot start: {rollout.describe()}", hint=hints.get(rollout.reason))

    def _last_lines(self, pod: str, container: str) -> list[str]:
        return last_log_lines(self.cluster, self.namespace, pod, container, LOG_LINES_ON_CRASH)

    # --- release strategies ----------------------------------------------------------------

    def apply_routes(self, sink: Sink = discard) -> RoutePlan:
        """Server-side apply the VirtualServices and DestinationRules for what runs now and
        the stored strategies; no Deployment is touched, so nothing restarts."""
        if not self._deployments(BASELINE_ENV):
            raise UserInputError(f"app {self.app!r} is not running on the kind runtime (no baseline "
                                 f"in namespace {self.namespace} of context {self.context})",
                                 hint="'devmesh up' starts it")
        plan = self._plan_to_apply(self.live_environments())
        for obj in render_objects(self.project, plan):
            if obj["kind"] in ROUTE_KINDS:
                self._apply(obj, lambda m, **kw: sink(Step(m, **kw)))
        return plan

    # --- live sync -------------------------------------------------------------------------

    def sync_transport(self) -> KubeTransport:
        """Live sync into this app's pods through exec (see devmesh.runtime.kind.sync)."""
        return KubeTransport(KubeExec(self.cluster, self.app, self.namespace))

    def _reroute(self, remaining: Sequence[Environment], sink: Sink) -> None:
        # The routes of the environments that stay, without the one that went (and without
        # its strategies, which the plan drops from the store).
        plan = self._plan_to_apply(remaining)
        for obj in self._without_gateway_log_if_no_istio(render_objects(self.project, plan), sink):
            if obj["kind"] not in ("Deployment", "Namespace"):
                self._apply(obj, lambda m, **kw: sink(Step(m)))
