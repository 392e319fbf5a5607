"""The kind runtime's objects of an app in its namespace, found by their labels alone (``KindApp``:
what ``down``, ``ls`` and ``logs`` need without the project). Everything is found by labels,
never by name patterns."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence

from devmesh.dirs import state_dir
from devmesh.errors import DevmeshError, UserInputError
from devmesh.events import Sink, Step
from devmesh.naming import BASELINE_ENV
from devmesh.plan.k8s import (
    ENV_LABEL,
    GATEWAY_SELECTOR,
    ISTIO_ROOT_NAMESPACE,
    SERVICE_LABEL,
    gateway_access_log_name,
    namespace_for,
    selector,
)
from devmesh.routes_state import StrategyStore
from devmesh.runtime.base import ServiceState
from devmesh.runtime.kind.errors import ClusterError
from devmesh.runtime.kind.kubeconfig import open_client
from devmesh.runtime.kind.protocol import ClusterClient, Obj
from devmesh.runtime.logmerge import LogSource, Reader, merge_logs
from devmesh.runtime.shared import Describe, LabelledApp
from devmesh.traffic.records import istio_upstream

BRANCH_ANNOTATION = "devmesh.dev/branch"
COMMIT_ANNOTATION = "devmesh.dev/commit"
APPLIED_ANNOTATION = "devmesh.dev/applied"
PROXY_CONTAINER = "istio-proxy"  # the sidecar's and the gateway's container
ROLLOUT_TIMEOUT = 180.0
LOG_LINES_ON_CRASH = 15

# What a strategy changes: the routes, never the Deployments.
ROUTE_KINDS = ("VirtualService", "DestinationRule")

# Every kind devmesh creates for an app, in delete order (routes before what they route to).
KINDS: tuple[tuple[str, str], ...] = (
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
)


class RolloutFailed(DevmeshError):
    """A Deployment did not become ready: the reason Kubernetes gives, and the last log lines."""


def rollout_timeout() -> float:
    value = os.environ.get("DEVMESH_ROLLOUT_TIMEOUT")
    try:
        return float(value) if value else ROLLOUT_TIMEOUT
    except ValueError:
        raise UserInputError(f"DEVMESH_ROLLOUT_TIMEOUT: expected seconds, got {value!r}") from None


def fingerprint_of(obj: Obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def label_of(obj: Obj, key: str) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(key, ""))


def annotation_of(obj: Obj, key: str) -> str:
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(key, ""))


def describe_obj(obj: Obj) -> str:
    return f"{obj['kind']} {obj['metadata']['name']}"


def image_of(deployment: Obj) -> str:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return str(containers[0].get("image", "")) if containers else ""


class KindApp(LabelledApp[Obj]):
    """An app's objects in its namespace of a cluster, found by their labels alone.

    This is all that ``down``, ``ls`` and ``logs`` need, so they still work when devmesh.yaml
    cannot be loaded; ``KindRuntime`` adds what the project's configuration is needed for.
    """

    name = "kind"
    routes_name = "the VirtualServices"

    def __init__(self, app: str, *, context: str, cluster: ClusterClient | None = None) -> None:
        self.app = app
        self.namespace = namespace_for(self.app)
        self.context = context
        self._cluster = cluster
        # Release strategies applied to the running environments (see devmesh.routes_state),
        # in the same per-app state directory as the docker runtime's.
        self.strategies = StrategyStore(state_dir() / self.app)

    @property
    def cluster(self) -> ClusterClient:
        if self._cluster is None:
            self._cluster = open_client(self.context)
        return self._cluster

    # --- lookups -------------------------------------------------------------------------

    def _deployments(self, env: str | None = None) -> list[Obj]:
        return self.cluster.list("apps/v1", "Deployment", namespace=self.namespace,
                                 selector=selector(self.app, env))

    # --- what the shared half needs (devmesh.runtime.shared) -----------------------------

    def _found(self) -> list[tuple[str, str, Obj]]:
        return [(label_of(d, ENV_LABEL), label_of(d, SERVICE_LABEL), d) for d in self._deployments()]

    def _branch_of(self, obj: Obj) -> str | None:
        return annotation_of(obj, BRANCH_ANNOTATION) or None

    def _label_describer(self) -> Describe[Obj]:
        def describe(service: str, env: str, d: Obj) -> tuple[ServiceState, str | None]:
            rollout = self.cluster.rollout_status(self.namespace, d["metadata"]["name"])
            state = "running" if rollout.done else "failed" if rollout.failed else "starting"
            return (ServiceState(service, env, state, image_of(d), rollout.done,
                                 "" if rollout.done else rollout.describe()), self._branch_of(d))

        return describe

    log_errors = (ClusterError,)  # the pod went away while streaming

    def _log_found(self) -> list[tuple[str, str, Obj]]:
        """The app's pods (logs come from pods, not Deployments), but those being deleted."""
        pods = self.cluster.list("v1", "Pod", namespace=self.namespace, selector=selector(self.app))
        return sorted(((label_of(p, ENV_LABEL), label_of(p, SERVICE_LABEL), p) for p in pods
                       if not (p.get("metadata") or {}).get("deletionTimestamp")),
                      key=lambda found: str(found[2]["metadata"]["name"]))

    def _log_sources(self, chosen: Sequence[tuple[str, str, Obj]]) -> list[LogSource]:
        def reader(pod: str, service: str) -> Reader:
            def read(follow: bool, tail: int | None, since: float | None) -> Iterable[str]:
                del since  # pods are not resumed: a new pod is a new source
                return self.cluster.pod_logs(self.namespace, pod, container=service, follow=follow,
                                             tail=tail, timestamps=True)

            return read

        return [LogSource(p["metadata"]["name"], service, env, reader(p["metadata"]["name"], service))
                for env, service, p in chosen]

    # --- the mesh's request records ------------------------------------------------------

    def _proxy_pods(self) -> list[tuple[str, str, Obj]]:
        """(namespace, env, pod) of every proxy that writes the app's records: its pods'
        sidecars and the ingress gateway's pods."""
        gateway_selector = ",".join(f"{k}={v}" for k, v in GATEWAY_SELECTOR.items())
        found = [(self.namespace, env, p) for env, _, p in self._log_found()]
        found += [(ISTIO_ROOT_NAMESPACE, BASELINE_ENV, p)
                  for p in self.cluster.list("v1", "Pod", namespace=ISTIO_ROOT_NAMESPACE, selector=gateway_selector)
                  if not (p.get("metadata") or {}).get("deletionTimestamp")]
        return found

    def mesh_log(self, *, follow: bool, tail: int | None = None,
                 stop: threading.Event | None = None) -> Iterator[str]:
        """The request records of the app's sidecars and of the ingress gateway (the JSON lines
        of their ``istio-proxy`` containers' logs); while following, a new pod's log joins,
        until ``stop`` is set."""
        def reader(namespace: str, pod: str) -> Reader:
            def read(follow: bool, tail: int | None, since: float | None) -> Iterable[str]:
                del since  # a pod is not resumed: a new pod is a new source
                return self.cluster.pod_logs(namespace, pod, container=PROXY_CONTAINER, follow=follow,
                                             tail=tail, timestamps=True)

            return read

        def sources() -> list[LogSource]:
            return [LogSource(f"{ns}/{p['metadata']['name']}", PROXY_CONTAINER, env,
                              reader(ns, p["metadata"]["name"]))
                    for ns, env, p in self._proxy_pods()
                    if ((p.get("status") or {}).get("phase")) == "Running"]

        if not follow and not self._deployments():
            raise UserInputError(f"app {self.app!r} is not running on the kind runtime (nothing in "
                                 f"namespace {self.namespace} of context {self.context})",
                                 hint="'devmesh up' starts it")
        for line in merge_logs(sources, follow=follow, tail=tail, stop=stop, gone=self.log_errors):
            # Istio's agent shares the container's log (its config at start, in YAML; its own
            # messages): only a JSON object can be a record
            if line.text.lstrip().startswith("{"):
                yield line.text

    def mesh_callers(self) -> dict[str, str]:
        """The pod address of each version of the app's services → ``service@env``."""
        return {str(p["status"]["podIP"]): f"{service}@{env}" for env, service, p in self._log_found()
                if (p.get("status") or {}).get("podIP")}

    def upstream_of(self, cluster: str) -> tuple[str, str] | None:
        return istio_upstream(self.namespace)(cluster)

    def _remove_matching(self, sel: str, sink: Sink) -> list[str]:
        removed = []
        for api_version, kind in KINDS:
            for obj in self.cluster.list(api_version, kind, namespace=self.namespace, selector=sel):
                if self.cluster.delete(api_version, kind, obj["metadata"]["name"], self.namespace):
                    removed.append(f"{kind} {obj['metadata']['name']}")
                    sink(Step(f"removed {removed[-1]}"))
        return removed

    def _remove_env(self, env: str, sink: Sink) -> list[str]:
        return self._remove_matching(selector(self.app, env), sink)

    def _remove_app(self, sink: Sink) -> list[str]:
        removed = self._remove_matching(selector(self.app), sink)
        # the gateway's access log for the app lives beside the gateway, outside the namespace
        name = gateway_access_log_name(self.app)
        if self.cluster.delete("networking.istio.io/v1alpha3", "EnvoyFilter", name, ISTIO_ROOT_NAMESPACE):
            removed.append(f"EnvoyFilter {name}")
            sink(Step(f"removed EnvoyFilter {ISTIO_ROOT_NAMESPACE}/{name}"))
        if self.cluster.get("v1", "Namespace", self.namespace) is not None:
            self.cluster.delete("v1", "Namespace", self.namespace)
            removed.append(f"Namespace {self.namespace}")
            sink(Step(f"removed Namespace {self.namespace}"))
        return removed
