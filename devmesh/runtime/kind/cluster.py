"""`devmesh cluster up | down | status`: the kind cluster, its local registry and Istio.

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

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devmesh.doctor.tools import istioctl_version
from devmesh.errors import DevmeshError, MissingDependency, UserInputError
from devmesh.events import Sink, Step, discard
from devmesh.plan.k8s import MANAGED_BY
from devmesh.runtime.kind.client import ClusterClient, ClusterError, open_client

if TYPE_CHECKING:
    from devmesh.config import Project

# Istio's release line devmesh installs and tests: istioctl installs its own version, so the
# istioctl on PATH must be of this line. 1.28 supports Kubernetes 1.31–1.34.
ISTIO_VERSION = "1.28"
ISTIO_NAMESPACE = "istio-system"
INGRESS_NAME = "istio-ingressgateway"
GATEWAY_NODE_PORT = 30080
REGISTRY_CONTAINER_PORT = 5000
KIND_NETWORK = "kind"
CERTS_DIR = "/etc/containerd/certs.d"
REGISTRY_IMAGE_ENV = "DEVMESH_REGISTRY_IMAGE"
DEFAULT_REGISTRY_IMAGE = "registry:2"
LOCAL_REGISTRY_HOSTING = "local-registry-hosting"
LOCAL_REGISTRY_HELP = "https://kind.sigs.k8s.io/docs/user/local-registry/"

INSTALL_HINTS = {
    "kind": "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "docker": "apt-get install docker.io",
    "istioctl": f"curl -L https://istio.io/downloadIstio | ISTIO_VERSION={ISTIO_VERSION}.0 sh -",
}


class ToolFailed(DevmeshError):
    """kind, docker or istioctl exited with an error."""


def kind_context(cluster_name: str) -> str:
    """The kubeconfig context kind writes for a cluster."""
    return f"kind-{cluster_name}"


def registry_container(cluster_name: str) -> str:
    return f"{cluster_name}-registry"


def _bundled(name: str) -> Path:
    """A file of devmesh's own kind-config (next to the package, or inside it when installed)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[2] / "kind-config" / name, here.parents[1] / "_kind_config" / name):
        if candidate.is_file():
            return candidate
    raise DevmeshError(f"devmesh's kind-config/{name} is missing from this installation")


@dataclass(frozen=True)
class Part:
    """One part of the cluster set-up and its health."""

    name: str
    healthy: bool
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "healthy": self.healthy, "detail": self.detail}


class Tools:
    """Runs kind, docker and istioctl with argument lists (never a shell)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)

    def path_of(self, tool: str) -> str | None:
        return shutil.which(tool, path=self.environ.get("PATH", os.defpath))

    def run(self, tool: str, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
        path = self.path_of(tool)
        if path is None:
            raise MissingDependency(f"{tool} is not on PATH; the kind runtime needs it",
                                    hint=f"install it: {INSTALL_HINTS.get(tool, tool)}")
        try:
            done = subprocess.run([path, *args], input=stdin, capture_output=True, text=True,
                                  env=self.environ, timeout=timeout,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ToolFailed(f"'{tool} {' '.join(args)}' did not finish within {timeout:g} s") from None
        if check and done.returncode != 0:
            tail = "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise ToolFailed(f"'{tool} {' '.join(args)}' failed with status {done.returncode}:\n  {tail}")
        return done


def effective_kind_config(text: str, gateway_port: int, source: str) -> dict[str, Any]:
    """The kind configuration to create the cluster with: every port mapping on 127.0.0.1,
    the gateway's NodePort mapped to ``gateway_port``, containerd reading ``certs.d``."""
    import yaml

    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserInputError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(config, dict) or config.get("kind") != "Cluster":
        raise UserInputError(f"{source}: expected a kind Cluster configuration ('kind: Cluster')")
    nodes = config.setdefault("nodes", [{"role": "control-plane"}])
    if not isinstance(nodes, list) or not nodes:
        raise UserInputError(f"{source}: nodes: expected a list of nodes")
    mapped = False
    for i, node in enumerate(nodes):
        for j, mapping in enumerate(node.get("extraPortMappings") or ()):
            where = f"{source}: nodes[{i}].extraPortMappings[{j}]"
            address = mapping.setdefault("listenAddress", "127.0.0.1")
            if address not in ("127.0.0.1", "::1"):
                raise UserInputError(
                    f"{where}: listenAddress {address!r} would publish the port beyond this "
                    "machine; devmesh binds port mappings to 127.0.0.1 only",
                    hint="remove listenAddress or set it to 127.0.0.1")
            if mapping.get("containerPort") == GATEWAY_NODE_PORT:
                mapping["hostPort"] = gateway_port
                mapped = True
    if not mapped:
        first = next((n for n in nodes if n.get("role", "control-plane") == "control-plane"), nodes[0])
        first.setdefault("extraPortMappings", []).append(
            {"containerPort": GATEWAY_NODE_PORT, "hostPort": gateway_port,
             "listenAddress": "127.0.0.1", "protocol": "TCP"})
    patches = config.setdefault("containerdConfigPatches", [])
    if not any(CERTS_DIR in str(p) for p in patches):
        patches.append(f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{CERTS_DIR}"')
    return config


def _state_dir() -> Path:
    from devmesh.dirs import state_dir

    return state_dir()


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


class ClusterSetup:
    """The cluster a project's kind runtime uses: a kind cluster, or an existing context."""

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

    def _kind_clusters(self) -> list[str]:
        done = self.tools.run("kind", "get", "clusters")
        return [line.strip() for line in done.stdout.splitlines() if line.strip()]

    def _kind_nodes(self) -> list[str]:
        done = self.tools.run("kind", "get", "nodes", "--name", self.name)
        return sorted(line.strip() for line in done.stdout.splitlines() if line.strip())

    def _inspect(self, container: str) -> dict[str, Any] | None:
        done = self.tools.run("docker", "inspect", "--type", "container", container, check=False)
        if done.returncode != 0:
            if "no such" in done.stderr.lower():
                return None
            raise ToolFailed(f"'docker inspect {container}' failed: {done.stderr.strip()}")
        found = json.loads(done.stdout or "[]")
        return found[0] if found else None

    def _registry_port(self) -> int:
        host, _, port = self.registry.rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit():
            raise UserInputError(
                f"cluster.registry {self.registry!r}: the kind cluster's local registry must be "
                "on 127.0.0.1:<port>",
                hint="use the default 127.0.0.1:5001, or --context for a cluster with its own registry")
        return int(port)

    def _hosts_toml(self) -> str:
        return f'[host."http://{self.registry_name}:{REGISTRY_CONTAINER_PORT}"]\n'

    def _hosts_path(self) -> tuple[str, str]:
        folder = f"{CERTS_DIR}/{self.registry}"
        return folder, f"{folder}/hosts.toml"

    def _node_has_hosts(self, node: str) -> bool:
        _, path = self._hosts_path()
        done = self.tools.run("docker", "exec", node, "cat", path, check=False)
        return done.returncode == 0 and done.stdout == self._hosts_toml()

    def _registry_configmap(self) -> dict[str, Any]:
        hosting = f'host: "{self.registry}"\nhelp: "{LOCAL_REGISTRY_HELP}"\n'
        return {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": LOCAL_REGISTRY_HOSTING, "namespace": "kube-public",
                         "labels": {MANAGED_BY: "devmesh"}},
            "data": {"localRegistryHosting.v1": hosting},
        }

    def _istio_version(self) -> str | None:
        """The running istiod's version (from its image tag), or None without Istio."""
        istiod = self.client().get("apps/v1", "Deployment", "istiod", ISTIO_NAMESPACE)
        if istiod is None:
            return None
        containers = istiod.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
        image = str(containers[0].get("image", "")) if containers else ""
        return image.rpartition(":")[2] or "unknown"

    def _ingress_problem(self) -> str | None:
        svc = self.client().get("v1", "Service", INGRESS_NAME, ISTIO_NAMESPACE)
        if svc is None:
            return f"no {INGRESS_NAME} Service in {ISTIO_NAMESPACE}"
        spec = svc.get("spec") or {}
        ports = {p.get("port"): p.get("nodePort") for p in spec.get("ports") or ()}
        if self.uses_kind and (spec.get("type") != "NodePort" or ports.get(80) != GATEWAY_NODE_PORT):
            return (f"{INGRESS_NAME} does not expose port 80 on NodePort {GATEWAY_NODE_PORT}, "
                    "which kind maps to the gateway port")
        return None

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
            for node in self._kind_nodes():
                self._ensure_node_hosts(node, did, already)
            self._ensure_registry_network(did, already)
            self._ensure_registry_configmap(did, already)
            self._ensure_istio(did, already, sink)
        else:
            version = self.client().server_version()
            already(f"context {self.context}: Kubernetes {version}")
            if install_istio:
                self._ensure_istio(did, already, sink)
            else:
                found = self._istio_version()
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
        found = self._inspect(self.registry_name)
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
        if self.name in self._kind_clusters():
            already(f"kind cluster {self.name} exists")
            return
        import yaml

        text, source = self._config_source()
        config = effective_kind_config(text, self.project.routing.gateway_port, source)
        folder = _state_dir() / "kind"
        folder.mkdir(parents=True, exist_ok=True)
        written = folder / f"{self.name}.yaml"
        written.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        sink(Step(f"creating kind cluster {self.name} from {source} (about a minute)", changed=False))
        self.tools.run("kind", "create", "cluster", "--name", self.name, "--config", str(written))
        did(f"created kind cluster {self.name} (context {self.context}; gateway on "
            f"127.0.0.1:{self.project.routing.gateway_port})")

    def _ensure_node_hosts(self, node: str, did: Callable[[str], None],
                           already: Callable[[str], None]) -> None:
        if self._node_has_hosts(node):
            already(f"node {node} pulls {self.registry} from {self.registry_name}")
            return
        folder, path = self._hosts_path()
        self.tools.run("docker", "exec", node, "mkdir", "-p", folder)
        self.tools.run("docker", "exec", "-i", node, "cp", "/dev/stdin", path, stdin=self._hosts_toml())
        did(f"node {node}: {self.registry} → http://{self.registry_name}:{REGISTRY_CONTAINER_PORT}")

    def _ensure_registry_network(self, did: Callable[[str], None],
                                 already: Callable[[str], None]) -> None:
        found = self._inspect(self.registry_name) or {}
        networks = (found.get("NetworkSettings") or {}).get("Networks") or {}
        if KIND_NETWORK in networks:
            already(f"registry {self.registry_name} is on the {KIND_NETWORK} network")
            return
        self.tools.run("docker", "network", "connect", KIND_NETWORK, self.registry_name)
        did(f"connected registry {self.registry_name} to the {KIND_NETWORK} network")

    def _ensure_registry_configmap(self, did: Callable[[str], None],
                                   already: Callable[[str], None]) -> None:
        wanted = self._registry_configmap()
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
        found = self._istio_version()
        problem = self._ingress_problem() if found is not None else None
        if found is not None and _line(found) == ISTIO_VERSION and problem is None:
            already(f"Istio {found} is installed with its ingress gateway")
            return
        client_version = self._istioctl_version()
        if _line(client_version) != ISTIO_VERSION:
            raise MissingDependency(
                f"istioctl {client_version} is on PATH; devmesh installs Istio {ISTIO_VERSION}.x "
                "and istioctl installs its own version",
                hint=f"get istioctl {ISTIO_VERSION}: {INSTALL_HINTS['istioctl']}")
        why = ("not installed" if found is None else
               f"{found} is installed, devmesh wants {ISTIO_VERSION}" if _line(found) != ISTIO_VERSION
               else problem)
        config = self._istio_config()
        sink(Step(f"installing Istio {client_version} ({why}); this takes a minute or two",
                  changed=False))
        self.tools.run("istioctl", "install", "-y", "--context", self.context, "-f", str(config))
        did(f"installed Istio {client_version} with {config.name} (ingress gateway on NodePort "
            f"{GATEWAY_NODE_PORT})")

    # --- down ----------------------------------------------------------------------------

    def down(self, *, sink: Sink = discard, keep_registry: bool = False) -> list[str]:
        """Delete the kind cluster and the registry container (if they exist)."""
        if not self.uses_kind:
            raise UserInputError(
                f"devmesh does not delete context {self.context}: it did not create that cluster",
                hint="'devmesh down --baseline' removes an app's environments from it")
        actions: list[str] = []
        if self.name in self._kind_clusters():
            self.tools.run("kind", "delete", "cluster", "--name", self.name)
            actions.append(f"deleted kind cluster {self.name}")
            sink(Step(actions[-1]))
        else:
            sink(Step(f"no kind cluster {self.name}", changed=False))
        if keep_registry:
            sink(Step(f"kept registry {self.registry_name}", changed=False))
        elif self._inspect(self.registry_name) is not None:
            self.tools.run("docker", "rm", "-f", self.registry_name)
            actions.append(f"removed registry {self.registry_name}")
            sink(Step(actions[-1]))
        else:
            sink(Step(f"no registry {self.registry_name}", changed=False))
        return actions

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
        parts += self._istio_parts()
        if self.uses_kind:
            parts.append(self._configmap_part())
        else:
            parts.append(Part("registry", True, f"{self.registry} (cluster.registry; not checked)"))
        return parts

    def _kind_parts(self) -> list[Part]:
        parts: list[Part] = []
        try:
            exists = self.name in self._kind_clusters()
        except (MissingDependency, ToolFailed) as exc:
            return [Part("kind cluster", False, str(exc))]
        if not exists:
            return [Part("kind cluster", False, f"no kind cluster {self.name} ('devmesh cluster up' creates it)")]
        nodes = self._kind_nodes()
        running = [n for n in nodes if ((self._inspect(n) or {}).get("State") or {}).get("Running")]
        parts.append(Part("kind cluster", len(running) == len(nodes) and bool(nodes),
                          f"{self.name}: {len(running)}/{len(nodes)} node(s) running"))
        parts.append(self._gateway_part(nodes))
        registry = self._inspect(self.registry_name)
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
        missing = [n for n in running if not self._node_has_hosts(n)]
        parts.append(Part("node registry config", not missing,
                          "every node pulls from the local registry" if not missing
                          else f"missing on {', '.join(missing)}"))
        return parts

    def _gateway_part(self, nodes: Sequence[str]) -> Part:
        wanted = self.project.routing.gateway_port
        for node in nodes:
            info = self._inspect(node) or {}
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

    def _istio_parts(self) -> list[Part]:
        found = self._istio_version()
        if found is None:
            return [Part("Istio", False, f"not installed ({ISTIO_VERSION} wanted)")]
        client = self.client()
        parts = []
        for name, label in (("istiod", "Istio"), (INGRESS_NAME, "ingress gateway")):
            rollout = client.rollout_status(ISTIO_NAMESPACE, name)
            ok = rollout.done and (label != "Istio" or _line(found) == ISTIO_VERSION)
            detail = f"{name} {found}: {rollout.describe()}" if label == "Istio" else f"{name}: {rollout.describe()}"
            if label == "Istio" and _line(found) != ISTIO_VERSION:
                detail += f" (devmesh wants {ISTIO_VERSION})"
            if label != "Istio" and (problem := self._ingress_problem()):
                ok, detail = False, problem
            parts.append(Part(label, ok, detail))
        return parts

    def _configmap_part(self) -> Part:
        current = self.client().get("v1", "ConfigMap", LOCAL_REGISTRY_HOSTING, "kube-public")
        ok = current is not None and current.get("data") == self._registry_configmap()["data"]
        return Part("registry ConfigMap", ok, f"kube-public/{LOCAL_REGISTRY_HOSTING}"
                    + ("" if ok else (" is missing" if current is None else " names another registry")))


def _line(version: str) -> str:
    """``1.28.0`` → ``1.28``."""
    return ".".join(version.lstrip("v").split(".")[:2])
