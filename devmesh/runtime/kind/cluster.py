"""`devmesh cluster up | down`: the kind cluster, its local registry and Istio (``status`` is
``ClusterView``'s, in devmesh.runtime.kind.cluster_view).

Every step of ``up`` looks before it acts and reports what it did, so ``up`` is idempotent and
picks up where an interrupted run stopped. The local registry follows kind's documented
recipe: a registry container published on 127.0.0.1, containerd ``certs.d`` host entries on
each node that send pulls to the registry over the ``kind`` network, the
``local-registry-hosting`` ConfigMap. Istio is installed with ``istioctl`` at the pinned
version (``ISTIO_VERSION``), with an ingress gateway on the NodePort kind maps to
127.0.0.1:<gateway_port>.

With a context (``--context`` or ``cluster.context``) devmesh uses an existing cluster and
creates nothing cluster-wide, except Istio when asked to (``--install-istio``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from devmesh.dirs import state_dir
from devmesh.doctor.tools import istioctl_version
from devmesh.errors import DevmeshError, MissingDependency, UserInputError
from devmesh.events import Sink, Step, discard
from devmesh.plan.k8s import MANAGED_BY
from devmesh.runtime.kind.cluster_view import ClusterView
from devmesh.runtime.kind.diagnose import cgroup_v1_refusal, istio_install_failure, kind_create_failure
from devmesh.runtime.kind.errors import ClusterError, ClusterUnreachable, KubeconfigError
from devmesh.runtime.kind.kind_config import effective_kind_config
from devmesh.runtime.kind.layout import (
    DEFAULT_REGISTRY_IMAGE,
    DNS_NAME,
    DNS_NAMESPACE,
    GATEWAY_NODE_PORT,
    INGRESS_NAME,
    ISTIO_NAMESPACE,
    ISTIO_VERSION,
    KIND_NETWORK,
    LOCAL_REGISTRY_HOSTING,
    REGISTRY_CONTAINER_PORT,
    REGISTRY_IMAGE_ENV,
    release_line,
)
from devmesh.runtime.kind.protocol import last_log_lines, pods_of
from devmesh.runtime.kind.rollout import Rollout
from devmesh.runtime.kind.tools import INSTALL_HINTS, ToolFailed


def _bundled(name: str) -> Path:
    """A file of devmesh's own kind-config (next to the package, or inside it when installed)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[2] / "kind-config" / name, here.parents[1] / "_kind_config" / name):
        if candidate.is_file():
            return candidate
    raise DevmeshError(f"devmesh's kind-config/{name} is missing from this installation")


@dataclass(frozen=True)
class Awaited:
    """A Deployment ``up`` waits for: the container that must be ready, what people call it,
    and where to look when it is not."""

    namespace: str
    name: str
    container: str
    what: str
    look: str = "describe deployment {name}' shows its pods' events"


# kind's cluster DNS: the gateway and every sidecar find istiod by name, so a CoreDNS that
# cannot start (a Corefile it cannot parse) keeps Istio from ever being ready.
CLUSTER_DNS = Awaited(DNS_NAMESPACE, DNS_NAME, "coredns", "the cluster DNS",
                      "get configmap coredns -o yaml' shows its Corefile")
# Istio's Deployments and the container of each that must be ready.
ISTIO_PARTS = (Awaited(ISTIO_NAMESPACE, "istiod", "discovery", "Istio's control plane"),
               Awaited(ISTIO_NAMESPACE, INGRESS_NAME, "istio-proxy", "Istio's ingress gateway"))
# How long ``up`` waits for a restarted node's API server and for each awaited part.
READY_TIMEOUT = 300.0
LOG_LINES = 10


class ClusterSetup(ClusterView):
    """The cluster a project's kind runtime uses, brought up and down (see ``ClusterView``).

    ``ready_timeout``, ``pause`` and ``clock`` bound and pace the waits for a restarted node
    and for Istio's readiness (tests make them instant).
    """

    ready_timeout = READY_TIMEOUT
    pause: Callable[[float], None] = staticmethod(time.sleep)
    clock: Callable[[], float] = staticmethod(time.monotonic)

    def _registry_port(self) -> int:
        host, _, port = self.registry.rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit():
            raise UserInputError(
                f"cluster.registry {self.registry!r}: the kind cluster's local registry must be "
                "on 127.0.0.1:<port>",
                hint="use the default 127.0.0.1:5001, or --context for a cluster with its own registry")
        return int(port)

    # --- up ------------------------------------------------------------------------------

    def up(self, *, sink: Sink = discard, install_istio: bool = False) -> list[str]:
        """Bring every part to the desired state; the list of what was done."""
        actions: list[str] = []

        def did(message: str) -> None:
            actions.append(message)
            sink(Step(message))

        def already(message: str) -> None:
            sink(Step(message, changed=False))

        if self.uses_kind:
            port = self._registry_port()
            self._ensure_registry(port, did, already)
            self._ensure_kind_cluster(did, already, sink)
            nodes = self.kind_nodes()
            self._start_stopped_nodes(nodes, did, sink)
            for node in nodes:
                self._ensure_node_hosts(node, did, already)
            self._ensure_registry_network(did, already)
            self._ensure_registry_configmap(did, already)
            self._wait_ready((CLUSTER_DNS,), sink)
            self._ensure_istio(did, already, sink)
        else:
            version = self.client().server_version()
            already(f"context {self.context}: Kubernetes {version}")
            if install_istio:
                self._ensure_istio(did, already, sink)
            else:
                found = self.istio_version()
                if found is None:
                    raise DevmeshError(
                        f"Istio is not installed in context {self.context}; devmesh installs "
                        "nothing in a cluster it did not create unless asked",
                        hint=f"ask the cluster's owners, or run 'devmesh cluster up --context "
                             f"{self.context} --install-istio' (Istio {ISTIO_VERSION})")
                already(f"Istio {found} is installed")
            already(f"registry: images are pushed to {self.registry} (cluster.registry); "
                    "the cluster must be able to pull from it")
        return actions

    def _ensure_registry(self, port: int, did: Callable[[str], None],
                         already: Callable[[str], None]) -> None:
        found = self.inspect(self.registry_name)
        if found is not None and found.get("State", {}).get("Running"):
            already(f"registry {self.registry_name} is running on 127.0.0.1:{port}")
            return
        if found is not None:
            self.tools.run("docker", "start", self.registry_name)
            did(f"started registry {self.registry_name}")
            return
        image = self.tools.environ.get(REGISTRY_IMAGE_ENV) or DEFAULT_REGISTRY_IMAGE
        self.tools.run(
            "docker", "run", "-d", "--restart=always",
            "-p", f"127.0.0.1:{port}:{REGISTRY_CONTAINER_PORT}",
            "--network", "bridge", "--name", self.registry_name,
            "--label", f"{MANAGED_BY}=devmesh", image,
        )
        did(f"created registry {self.registry_name} on 127.0.0.1:{port} ({image})")

    def _config_source(self) -> tuple[str, str]:
        own = self.project.root / self.settings.config
        path = own if own.is_file() else _bundled("cluster.yaml")
        return path.read_text(encoding="utf-8"), str(path)

    def _ensure_kind_cluster(self, did: Callable[[str], None], already: Callable[[str], None],
                             sink: Sink) -> None:
        if self.name in self.kind_clusters():
            try:
                self.client()
            except KubeconfigError:
                # The cluster runs but this kubeconfig (another HOME or KUBECONFIG, a deleted
                # context) does not name it: kind writes its context again.
                self._client = None
                self.tools.run("kind", "export", "kubeconfig", "--name", self.name)
                did(f"kind cluster {self.name} exists; wrote its context {self.context} to the kubeconfig")
                return
            already(f"kind cluster {self.name} exists")
            return
        text, source = self._config_source()
        config = effective_kind_config(text, self.project.routing.gateway_port, source)
        self._refuse_cgroup_v1(config, source)
        folder = state_dir() / "kind"
        folder.mkdir(parents=True, exist_ok=True)
        written = folder / f"{self.name}.yaml"
        written.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        sink(Step(f"creating kind cluster {self.name} from {source} (about a minute)", changed=False))
        try:
            self.tools.run("kind", "create", "cluster", "--name", self.name, "--config", str(written))
        except ToolFailed as exc:
            known = kind_create_failure(exc.output, node=f"{self.name}-control-plane",
                                        gateway_port=self.project.routing.gateway_port, source=source)
            raise (known or exc) from None
        did(f"created kind cluster {self.name} (context {self.context}; gateway on "
            f"127.0.0.1:{self.project.routing.gateway_port})")

    def _start_stopped_nodes(self, nodes: list[str], did: Callable[[str], None], sink: Sink) -> None:
        """Nodes Docker stopped (a reboot, a Docker restart) are started, and their API server
        awaited: kind does not start them again by itself."""
        stopped = [n for n in nodes
                   if not ((self.inspect(n) or {}).get("State") or {}).get("Running")]
        if not stopped:
            return
        for node in stopped:
            self.tools.run("docker", "start", node)
            did(f"started node {node} (it was stopped)")
        sink(Step(f"waiting for the API server of {self.context} to answer", changed=False))
        deadline = self.clock() + self.ready_timeout
        while True:
            try:
                self.client().server_version()
                return
            except ClusterUnreachable as exc:
                if self.clock() > deadline:
                    raise ClusterUnreachable(
                        f"kind cluster {self.name}: the API server does not answer "
                        f"{self.ready_timeout:.0f} s after its node(s) started: {exc.why or exc}",
                        hint=f"'docker logs {stopped[0]}' shows why; 'devmesh cluster down' "
                             "then 'devmesh cluster up' makes the cluster afresh") from None
            self.pause(1.0)

    def _refuse_cgroup_v1(self, config: dict[str, Any], source: str) -> None:
        """A node image whose kubelet refuses the Docker host's cgroup v1 is refused here, before
        kind spends minutes on it."""
        cgroup = self.tools.run("docker", "info", "--format", "{{.CgroupVersion}}").stdout
        images = [node.get("image") for node in config.get("nodes") or ()]
        kind_version = "" if all(images) else self.tools.run("kind", "version").stdout
        refusal = cgroup_v1_refusal(cgroup_version=cgroup, images=images, kind_version=kind_version,
                                    source=source)
        if refusal is not None:
            raise refusal

    def _ensure_node_hosts(self, node: str, did: Callable[[str], None],
                           already: Callable[[str], None]) -> None:
        if self.node_has_hosts(node):
            already(f"node {node} pulls {self.registry} from {self.registry_name}")
            return
        folder, path = self.hosts_path()
        self.tools.run("docker", "exec", node, "mkdir", "-p", folder)
        self.tools.run("docker", "exec", "-i", node, "cp", "/dev/stdin", path, stdin=self.hosts_toml())
        did(f"node {node}: {self.registry} → http://{self.registry_name}:{REGISTRY_CONTAINER_PORT}")

    def _ensure_registry_network(self, did: Callable[[str], None],
                                 already: Callable[[str], None]) -> None:
        found = self.inspect(self.registry_name) or {}
        networks = (found.get("NetworkSettings") or {}).get("Networks") or {}
        if KIND_NETWORK in networks:
            already(f"registry {self.registry_name} is on the {KIND_NETWORK} network")
            return
        self.tools.run("docker", "network", "connect", KIND_NETWORK, self.registry_name)
        did(f"connected registry {self.registry_name} to the {KIND_NETWORK} network")

    def _ensure_registry_configmap(self, did: Callable[[str], None],
                                   already: Callable[[str], None]) -> None:
        wanted = self.registry_configmap()
        current = self.client().get("v1", "ConfigMap", LOCAL_REGISTRY_HOSTING, "kube-public")
        if current is not None and current.get("data") == wanted["data"]:
            already(f"ConfigMap kube-public/{LOCAL_REGISTRY_HOSTING} names {self.registry}")
            return
        self.client().apply(wanted)
        did(f"applied ConfigMap kube-public/{LOCAL_REGISTRY_HOSTING} ({self.registry})")

    def _istioctl_version(self) -> str:
        done = self.tools.run("istioctl", "version", "--remote=false")
        return istioctl_version(done.stdout) or istioctl_version(done.stderr) or "unknown"

    def _istio_config(self) -> Path:
        own = self.project.root / Path(self.settings.config).parent / "istio.yaml"
        return own if own.is_file() else _bundled("istio.yaml")

    def _ensure_istio(self, did: Callable[[str], None], already: Callable[[str], None],
                      sink: Sink) -> None:
        found = self.istio_version()
        problem = self.ingress_problem() if found is not None else None
        if found is not None and release_line(found) == ISTIO_VERSION and problem is None:
            already(f"Istio {found} is installed with its ingress gateway")
            self._wait_ready(ISTIO_PARTS, sink)
            return
        client_version = self._istioctl_version()
        if release_line(client_version) != ISTIO_VERSION:
            raise MissingDependency(
                f"istioctl {client_version} is on PATH; devmesh installs Istio {ISTIO_VERSION}.x "
                "and istioctl installs its own version",
                hint=f"get istioctl {ISTIO_VERSION}: {INSTALL_HINTS['istioctl']}")
        why = ("not installed" if found is None else
               f"{found} is installed, devmesh wants {ISTIO_VERSION}" if release_line(found) != ISTIO_VERSION
               else problem)
        config = self._istio_config()
        sink(Step(f"installing Istio {client_version} ({why}); this takes a minute or two",
                  changed=False))
        try:
            self.tools.run("istioctl", "install", "-y", "--context", self.context, "-f", str(config))
        except ToolFailed as exc:
            raise (istio_install_failure(exc.output, config=str(config)) or exc) from None
        did(f"installed Istio {client_version} with {config.name} (ingress gateway on NodePort "
            f"{GATEWAY_NODE_PORT})")
        self._wait_ready(ISTIO_PARTS, sink)

    def _wait_ready(self, parts: Sequence[Awaited], sink: Sink) -> None:
        """Wait until every part is rolled out (pods restart after a node restart; a gateway
        waits for istiod, and both for the cluster DNS); fail at once when a pod cannot start."""
        deadline = self.clock() + self.ready_timeout
        pending = list(parts)
        last: dict[Awaited, Rollout] = {}
        while True:
            for part in list(pending):
                rollout = self.client().rollout_status(part.namespace, part.name)
                if rollout.done:
                    pending.remove(part)
                    if part in last:
                        sink(Step(f"{part.namespace}/{part.name} is ready", changed=False))
                    continue
                if rollout.failed:
                    raise self._not_ready(part, rollout, "cannot start")
                if part not in last:
                    sink(Step(f"waiting for {part.namespace}/{part.name}: {rollout.describe()}",
                              changed=False))
                last[part] = rollout
            if not pending:
                return
            if self.clock() > deadline:
                raise self._not_ready(pending[0], last[pending[0]],
                                      f"is not ready after {self.ready_timeout:.0f} s")
            self.pause(1.0)

    def _pod_of(self, part: Awaited) -> str:
        """The name of one live pod of an awaited Deployment, or "" when it has none."""
        found = self.client().get("apps/v1", "Deployment", part.name, part.namespace) or {}
        pods = pods_of(self.client(), part.namespace, found)
        live = sorted(str(p["metadata"]["name"]) for p in pods if not p["metadata"].get("deletionTimestamp"))
        return live[0] if live else ""

    def _not_ready(self, part: Awaited, rollout: Rollout, what: str) -> ClusterError:
        pod = rollout.pod or self._pod_of(part)
        lines = last_log_lines(self.client(), part.namespace, pod, rollout.container or part.container,
                               LOG_LINES) if pod else []
        shown = "; last log lines:\n  " + "\n  ".join(lines) if lines else ""
        return ClusterError(
            f"{part.what} ({part.namespace}/{part.name}) {what}: {rollout.describe()}{shown}",
            hint=f"'kubectl --context {self.context} -n {part.namespace} "
                 f"{part.look.format(name=part.name)}; 'devmesh cluster status' shows each part")

    # --- down ----------------------------------------------------------------------------

    def down(self, *, sink: Sink = discard, keep_registry: bool = False) -> list[str]:
        """Delete the kind cluster and the registry container (if they exist)."""
        if not self.uses_kind:
            raise UserInputError(
                f"devmesh does not delete context {self.context}: it did not create that cluster",
                hint="'devmesh down --baseline' removes an app's environments from it")
        actions: list[str] = []
        if self.name in self.kind_clusters():
            self.tools.run("kind", "delete", "cluster", "--name", self.name)
            actions.append(f"deleted kind cluster {self.name}")
            sink(Step(actions[-1]))
        else:
            sink(Step(f"no kind cluster {self.name}", changed=False))
        if keep_registry:
            sink(Step(f"kept registry {self.registry_name}", changed=False))
        elif self.inspect(self.registry_name) is not None:
            self.tools.run("docker", "rm", "-f", self.registry_name)
            actions.append(f"removed registry {self.registry_name}")
            sink(Step(actions[-1]))
        else:
            sink(Step(f"no registry {self.registry_name}", changed=False))
        return actions
