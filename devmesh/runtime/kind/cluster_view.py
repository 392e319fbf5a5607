"""What the cluster a project's kind runtime uses looks like: ``ClusterView`` reads the kind
cluster, its nodes, the registry container, the API server and Istio, and ``status`` reports
each part and its health (``Part``) without ever raising for an unhealthy one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devmesh.errors import MissingDependency
from devmesh.plan.k8s import MANAGED_BY
from devmesh.runtime.kind.errors import ClusterError
from devmesh.runtime.kind.kubeconfig import open_client
from devmesh.runtime.kind.layout import (
    CERTS_DIR,
    DNS_NAME,
    DNS_NAMESPACE,
    GATEWAY_NODE_PORT,
    INGRESS_NAME,
    ISTIO_NAMESPACE,
    ISTIO_VERSION,
    KIND_NETWORK,
    LOCAL_REGISTRY_HELP,
    LOCAL_REGISTRY_HOSTING,
    REGISTRY_CONTAINER_PORT,
    kind_context,
    registry_container,
    release_line,
)
from devmesh.runtime.kind.protocol import ClusterClient
from devmesh.runtime.kind.tools import ToolFailed, Tools

if TYPE_CHECKING:
    from devmesh.config import Project


@dataclass(frozen=True)
class Part:
    """One part of the cluster set-up and its health."""

    name: str
    healthy: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "healthy": self.healthy, "detail": self.detail}


ClientFactory = Callable[[str], ClusterClient]
RegistryProbe = Callable[[str], bool]


def probe_registry(address: str) -> bool:
    """Whether a registry answers ``/v2/`` at ``address`` (200, or 401 when it wants a login)."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=3) as resp:
            return bool(resp.status == 200)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False


class ClusterView:
    """The cluster a project's kind runtime uses (a kind cluster, or an existing context), looked at."""

    def __init__(self, project: Project, *, context: str | None = None, tools: Tools | None = None,
                 client_factory: ClientFactory | None = None,
                 registry_probe: RegistryProbe | None = None) -> None:
        self.project = project
        self.settings = project.cluster
        self.existing_context = context or self.settings.context
        self.name = self.settings.name
        self.context = self.existing_context or kind_context(self.name)
        self.tools = tools or Tools()
        self.client_factory: ClientFactory = client_factory or (lambda ctx: open_client(ctx))
        self.registry_probe = registry_probe or probe_registry
        self.registry = self.settings.registry
        self.registry_name = registry_container(self.name)
        self._client: ClusterClient | None = None

    @property
    def uses_kind(self) -> bool:
        return self.existing_context is None

    def client(self) -> ClusterClient:
        if self._client is None:
            self._client = self.client_factory(self.context)
        return self._client

    # --- look ----------------------------------------------------------------------------

    def kind_clusters(self) -> list[str]:
        done = self.tools.run("kind", "get", "clusters")
        return [line.strip() for line in done.stdout.splitlines() if line.strip()]

    def kind_nodes(self) -> list[str]:
        done = self.tools.run("kind", "get", "nodes", "--name", self.name)
        return sorted(line.strip() for line in done.stdout.splitlines() if line.strip())

    def inspect(self, container: str) -> dict[str, Any] | None:
        done = self.tools.run("docker", "inspect", "--type", "container", container, check=False)
        if done.returncode != 0:
            if "no such" in done.stderr.lower():
                return None
            raise ToolFailed(f"'docker inspect {container}' failed: {done.stderr.strip()}")
        found = json.loads(done.stdout or "[]")
        return found[0] if found else None

    def hosts_toml(self) -> str:
        return f'[host."http://{self.registry_name}:{REGISTRY_CONTAINER_PORT}"]\n'

    def hosts_path(self) -> tuple[str, str]:
        folder = f"{CERTS_DIR}/{self.registry}"
        return folder, f"{folder}/hosts.toml"

    def node_has_hosts(self, node: str) -> bool:
        _, path = self.hosts_path()
        done = self.tools.run("docker", "exec", node, "cat", path, check=False)
        return done.returncode == 0 and done.stdout == self.hosts_toml()

    def registry_configmap(self) -> dict[str, Any]:
        hosting = f'host: "{self.registry}"\nhelp: "{LOCAL_REGISTRY_HELP}"\n'
        return {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": LOCAL_REGISTRY_HOSTING, "namespace": "kube-public",
                         "labels": {MANAGED_BY: "devmesh"}},
            "data": {"localRegistryHosting.v1": hosting},
        }

    def istio_version(self) -> str | None:
        """The running istiod's version (from its image tag), or None without Istio."""
        istiod = self.client().get("apps/v1", "Deployment", "istiod", ISTIO_NAMESPACE)
        if istiod is None:
            return None
        containers = istiod.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
        image = str(containers[0].get("image", "")) if containers else ""
        return image.rpartition(":")[2] or "unknown"

    def ingress_problem(self) -> str | None:
        svc = self.client().get("v1", "Service", INGRESS_NAME, ISTIO_NAMESPACE)
        if svc is None:
            return f"no {INGRESS_NAME} Service in {ISTIO_NAMESPACE}"
        spec = svc.get("spec") or {}
        ports = {p.get("port"): p.get("nodePort") for p in spec.get("ports") or ()}
        if self.uses_kind and (spec.get("type") != "NodePort" or ports.get(80) != GATEWAY_NODE_PORT):
            return (f"{INGRESS_NAME} does not expose port 80 on NodePort {GATEWAY_NODE_PORT}, "
                    "which kind maps to the gateway port")
        return None

    # --- status --------------------------------------------------------------------------

    def status(self) -> list[Part]:
        """Each part and its health; never raises for an unhealthy part."""
        parts: list[Part] = []
        if self.uses_kind:
            parts += self._kind_parts()
            if not parts[0].healthy:
                return parts
        api = self._api_part()
        parts.append(api)
        if not api.healthy:
            return parts
        if self.uses_kind:
            parts.append(self._dns_part())
        parts += self._istio_parts()
        if self.uses_kind:
            parts.append(self._configmap_part())
        else:
            parts.append(Part("registry", True, f"{self.registry} (cluster.registry; not checked)"))
        return parts

    def _kind_parts(self) -> list[Part]:
        parts: list[Part] = []
        try:
            exists = self.name in self.kind_clusters()
        except (MissingDependency, ToolFailed) as exc:
            return [Part("kind cluster", False, str(exc))]
        if not exists:
            return [Part("kind cluster", False, f"no kind cluster {self.name} ('devmesh cluster up' creates it)")]
        nodes = self.kind_nodes()
        running = [n for n in nodes if ((self.inspect(n) or {}).get("State") or {}).get("Running")]
        parts.append(Part("kind cluster", len(running) == len(nodes) and bool(nodes),
                          f"{self.name}: {len(running)}/{len(nodes)} node(s) running"))
        parts.append(self._gateway_part(nodes))
        registry = self.inspect(self.registry_name)
        if registry is None:
            parts.append(Part("registry", False, f"no container {self.registry_name}"))
        else:
            running_reg = bool((registry.get("State") or {}).get("Running"))
            networks = (registry.get("NetworkSettings") or {}).get("Networks") or {}
            answers = running_reg and self.registry_probe(self.registry)
            problems = [] if running_reg else ["not running"]
            if KIND_NETWORK not in networks:
                problems.append(f"not on the {KIND_NETWORK} network")
            if running_reg and not answers:
                problems.append(f"no answer at http://{self.registry}/v2/")
            parts.append(Part("registry", not problems,
                              f"{self.registry_name} at {self.registry}"
                              + (f": {', '.join(problems)}" if problems else "")))
        missing = [n for n in running if not self.node_has_hosts(n)]
        parts.append(Part("node registry config", not missing,
                          "every node pulls from the local registry" if not missing
                          else f"missing on {', '.join(missing)}"))
        return parts

    def _gateway_part(self, nodes: Sequence[str]) -> Part:
        wanted = self.project.routing.gateway_port
        for node in nodes:
            info = self.inspect(node) or {}
            bindings = ((info.get("HostConfig") or {}).get("PortBindings") or {}).get(f"{GATEWAY_NODE_PORT}/tcp")
            for b in bindings or ():
                port, address = str(b.get("HostPort", "")), str(b.get("HostIp", ""))
                ok = address == "127.0.0.1" and port == str(wanted)
                detail = f"{address or '0.0.0.0'}:{port} → NodePort {GATEWAY_NODE_PORT} on {node}"
                if not ok:
                    detail += f" (the project wants 127.0.0.1:{wanted}; recreate the cluster to change it)"
                return Part("gateway port", ok, detail)
        return Part("gateway port", False, f"no node maps NodePort {GATEWAY_NODE_PORT} to the host")

    def _api_part(self) -> Part:
        try:
            version = self.client().server_version()
        except ClusterError as exc:
            return Part("API server", False, f"context {self.context}: {exc}")
        return Part("API server", True, f"context {self.context}: Kubernetes {version}")

    def _dns_part(self) -> Part:
        rollout = self.client().rollout_status(DNS_NAMESPACE, DNS_NAME)
        return Part("cluster DNS", rollout.done, f"{DNS_NAMESPACE}/{DNS_NAME}: {rollout.describe()}")

    def _istio_parts(self) -> list[Part]:
        found = self.istio_version()
        if found is None:
            return [Part("Istio", False, f"not installed ({ISTIO_VERSION} wanted)")]
        client = self.client()
        parts = []
        for name, label in (("istiod", "Istio"), (INGRESS_NAME, "ingress gateway")):
            rollout = client.rollout_status(ISTIO_NAMESPACE, name)
            ok = rollout.done and (label != "Istio" or release_line(found) == ISTIO_VERSION)
            detail = f"{name} {found}: {rollout.describe()}" if label == "Istio" else f"{name}: {rollout.describe()}"
            if label == "Istio" and release_line(found) != ISTIO_VERSION:
                detail += f" (devmesh wants {ISTIO_VERSION})"
            if label != "Istio" and (problem := self.ingress_problem()):
                ok, detail = False, problem
            parts.append(Part(label, ok, detail))
        return parts

    def _configmap_part(self) -> Part:
        current = self.client().get("v1", "ConfigMap", LOCAL_REGISTRY_HOSTING, "kube-public")
        ok = current is not None and current.get("data") == self.registry_configmap()["data"]
        return Part("registry ConfigMap", ok, f"kube-public/{LOCAL_REGISTRY_HOSTING}"
                    + ("" if ok else (" is missing" if current is None else " names another registry")))
