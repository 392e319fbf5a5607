"""Recording fake executables for ``kind``, ``docker`` and ``istioctl``.

``FakeWorld(tmp)`` writes small Python programs named ``kind``, ``docker`` and ``istioctl``
into a bin directory to put first on PATH. Each appends its arguments (and standard input) to
``calls.jsonl`` and acts on ``world.json``: kind clusters and their node containers, other
containers (the registry), files written into nodes. ``kind create cluster`` starts an empty
fake API server state for context ``kind-<name>``; ``istioctl install`` writes Istio's objects
into it through ``FakeCluster`` (as another field manager), so the in-process client sees them.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
ISTIO_PATCH = "1.31.0"


class FakeWorld:
    """The machine as the fake tools see it, plus a client factory for its clusters."""

    def __init__(self, root: Path, *, istioctl_version: str = ISTIO_PATCH) -> None:
        from tests.kind.fake_cluster import FakeCluster

        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        for tool in ("kind", "docker", "istioctl"):
            script = self.bin / tool
            script.write_text(
                f"#!{sys.executable}\n"
                "import sys\n"
                f"sys.path.insert(0, {str(REPO)!r})\n"
                "from tests.kind.fake_tools import main\n"
                f"sys.exit(main({tool!r}))\n"
            )
            script.chmod(0o755)
        self.save({"clusters": {}, "containers": {}, "files": {}, "istioctl": istioctl_version})
        self._clients: dict[str, FakeCluster] = {}

    # --- state ---------------------------------------------------------------------------

    @property
    def world_file(self) -> Path:
        return self.root / "world.json"

    @property
    def calls_file(self) -> Path:
        return self.root / "calls.jsonl"

    def load(self) -> dict[str, Any]:
        return dict(json.loads(self.world_file.read_text()))

    def save(self, world: dict[str, Any]) -> None:
        self.world_file.write_text(json.dumps(world, indent=1, sort_keys=True))

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
                "DEVMESH_FAKE_WORLD": str(self.root)}

    def calls(self) -> list[list[str]]:
        """Every recorded call as [tool, *args]."""
        if not self.calls_file.exists():
            return []
        return [[c["tool"], *c["args"]] for c in map(json.loads, self.calls_file.read_text().splitlines())]

    def stdin_of(self, *prefix: str) -> list[str]:
        return [c["stdin"] for c in map(json.loads, self.calls_file.read_text().splitlines())
                if [c["tool"], *c["args"]][: len(prefix)] == list(prefix)]

    def forget_calls(self) -> None:
        self.calls_file.unlink(missing_ok=True)

    def store_of(self, context: str) -> Path:
        return self.root / "clusters" / f"{context}.json"

    def client(self, context: str) -> Any:
        """The fake API server of ``context`` (what the client factory returns)."""
        from devmesh.runtime.kind.client import KubeconfigError
        from tests.kind.fake_cluster import FakeCluster

        if not self.store_of(context).exists() or context in self.load().get("no_kubeconfig", []):
            raise KubeconfigError(f"no kube context {context!r} in the kubeconfig {self.root / 'kubeconfig'}")
        if context not in self._clients:
            self._clients[context] = FakeCluster(context, store=self.store_of(context))
        return self._clients[context]


# --- the fake programs ------------------------------------------------------------------------


def _out(text: str) -> None:
    sys.stdout.write(text)


def _err(text: str) -> int:
    sys.stderr.write(text)
    return 1


def _flag(args: list[str], name: str, default: str | None = None) -> str | None:
    if name in args:
        return args[args.index(name) + 1]
    for arg in args:
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def _kind(args: list[str], world: dict[str, Any], root: Path) -> int:
    import yaml

    name = _flag(args, "--name", "kind") or "kind"
    if args[:1] == ["version"]:
        _out("kind v0.30.0 go1.24.6 linux/amd64\n")
        return 0
    if args[:2] == ["get", "clusters"]:
        if not world["clusters"]:
            sys.stderr.write("No kind clusters found.\n")
        _out("".join(f"{c}\n" for c in sorted(world["clusters"])))
        return 0
    if args[:2] == ["get", "nodes"]:
        nodes = world["clusters"].get(name, {}).get("nodes", [])
        if not nodes:
            sys.stderr.write(f'No kind nodes found for cluster "{name}".\n')
        _out("".join(f"{n}\n" for n in nodes))
        return 0
    if args[:2] == ["create", "cluster"]:
        if name in world["clusters"]:
            return _err(f'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "{name}"\n')
        config_path = _flag(args, "--config")
        config = yaml.safe_load(Path(config_path).read_text()) if config_path else {}
        nodes = []
        workers = 0
        for node in (config or {}).get("nodes") or [{"role": "control-plane"}]:
            role = node.get("role", "control-plane")
            if role == "control-plane":
                node_name = f"{name}-control-plane"
            else:
                workers += 1
                node_name = f"{name}-worker" + (str(workers) if workers > 1 else "")
            ports = {
                f"{m['containerPort']}/{m.get('protocol', 'TCP').lower()}":
                    [{"HostIp": m.get("listenAddress", "0.0.0.0"), "HostPort": str(m.get("hostPort", ""))}]
                for m in node.get("extraPortMappings") or ()
            }
            world["containers"][node_name] = {"running": True, "networks": ["kind"], "ports": ports,
                                              "labels": {"io.x-k8s.kind.cluster": name}, "image": "kindest/node"}
            nodes.append(node_name)
        world["clusters"][name] = {"nodes": nodes, "config": config}
        from tests.kind.fake_cluster import FakeCluster

        cluster = FakeCluster(f"kind-{name}", store=root / "clusters" / f"kind-{name}.json")
        for ns in ("default", "kube-system", "kube-public"):
            cluster.update({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                           manager="kube-apiserver")
        # kubeadm's cluster DNS, which every kind cluster runs.
        dns = {"k8s-app": "kube-dns"}
        cluster.update({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": dns},
                        "spec": {"replicas": 2, "selector": {"matchLabels": dns},
                                 "template": {"metadata": {"labels": dns},
                                              "spec": {"containers": [{"name": "coredns",
                                                                       "image": "registry.k8s.io/coredns/coredns:v1.12.1"}]}}}},
                       manager="kubeadm")
        _out(f'Creating cluster "{name}" ...\n')
        return 0
    if args[:2] == ["export", "kubeconfig"]:
        if name not in world["clusters"]:
            return _err(f'ERROR: unknown cluster "{name}"\n')
        # The contexts the kubeconfig lacks although their cluster exists (a new HOME, another
        # KUBECONFIG): exporting writes the cluster's context back.
        world["no_kubeconfig"] = [c for c in world.get("no_kubeconfig", []) if c != f"kind-{name}"]
        sys.stderr.write(f'Set kubectl context to "kind-{name}"\n')
        return 0
    if args[:2] == ["delete", "cluster"]:
        cluster = world["clusters"].pop(name, None)
        for node in (cluster or {}).get("nodes", []):
            world["containers"].pop(node, None)
            world["files"].pop(node, None)
        (root / "clusters" / f"kind-{name}.json").unlink(missing_ok=True)
        _out(f'Deleting cluster "{name}" ...\n')
        return 0
    return _err(f"fake kind: unsupported {args}\n")


def _docker(args: list[str], world: dict[str, Any], stdin: str) -> int:
    containers = world["containers"]
    if args[:1] == ["info"]:
        _out(f"{world.get('cgroup_version', '2')}\n")
        return 0
    if args[:1] == ["inspect"]:
        name = args[-1]
        c = containers.get(name)
        if c is None:
            return _err(f"Error: No such container: {name}\n")
        _out(json.dumps([{
            "Name": f"/{name}", "State": {"Running": c["running"]},
            "Config": {"Labels": c.get("labels", {}), "Image": c.get("image", "")},
            "HostConfig": {"PortBindings": c.get("ports", {})},
            "NetworkSettings": {"Networks": {n: {} for n in c["networks"]}},
        }]))
        return 0
    if args[:1] == ["run"]:
        name = _flag(args, "--name") or "unnamed"
        if name in containers:
            return _err(f'docker: Error response from daemon: Conflict. The container name "/{name}" is already in use.\n')
        publish = _flag(args, "-p") or ""
        host_ip, host_port, container_port = publish.split(":")
        labels = dict(a.split("=", 1) for i, a in enumerate(args) if i and args[i - 1] == "--label")
        containers[name] = {"running": True, "networks": [_flag(args, "--network", "bridge")],
                            "ports": {f"{container_port}/tcp": [{"HostIp": host_ip, "HostPort": host_port}]},
                            "labels": labels, "image": args[-1]}
        _out(f"{'f' * 64}\n")
        return 0
    if args[:1] == ["start"]:
        if args[1] not in containers:
            return _err(f"Error: No such container: {args[1]}\n")
        containers[args[1]]["running"] = True
        return 0
    if args[:2] == ["rm", "-f"]:
        containers.pop(args[2], None)
        return 0
    if args[:2] == ["network", "connect"]:
        network, name = args[2], args[3]
        if name not in containers:
            return _err(f"Error response from daemon: No such container: {name}\n")
        if network in containers[name]["networks"]:
            return _err(f"Error response from daemon: endpoint with name {name} already exists in network {network}\n")
        containers[name]["networks"].append(network)
        return 0
    if args[:1] == ["exec"]:
        rest = [a for a in args[1:] if a != "-i"]
        node, command = rest[0], rest[1:]
        if node not in containers or not containers[node]["running"]:
            return _err(f"Error response from daemon: container {node} is not running\n")
        files = world["files"].setdefault(node, {})
        if command[:1] == ["cat"]:
            if command[1] not in files:
                return _err(f"cat: {command[1]}: No such file or directory\n")
            _out(files[command[1]])
            return 0
        if command[:2] == ["mkdir", "-p"]:
            files.setdefault(command[2] + "/", "")
            return 0
        if command[:2] == ["cp", "/dev/stdin"]:
            folder = command[2].rsplit("/", 1)[0] + "/"
            if folder not in files:
                return _err(f"cp: cannot create regular file '{command[2]}': No such file or directory\n")
            files[command[2]] = stdin
            return 0
    return _err(f"fake docker: unsupported {args}\n")


def _istio_objects(version: str) -> Iterator[dict[str, Any]]:
    labels = {"app": "istiod", "istio": "pilot"}
    yield {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    for name, image, lbls in (("istiod", f"docker.io/istio/pilot:{version}", labels),
                              ("istio-ingressgateway", f"docker.io/istio/proxyv2:{version}",
                               {"app": "istio-ingressgateway", "istio": "ingressgateway"})):
        yield {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": "istio-system", "labels": lbls},
               "spec": {"replicas": 1, "selector": {"matchLabels": lbls},
                        "template": {"metadata": {"labels": lbls},
                                     "spec": {"containers": [{"name": "discovery" if name == "istiod" else "istio-proxy",
                                                              "image": image}]}}}}
    yield {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
           "spec": {"type": "NodePort",
                    "selector": {"app": "istio-ingressgateway", "istio": "ingressgateway"},
                    "ports": [{"name": "status-port", "port": 15021, "targetPort": 15021, "nodePort": 31021},
                              {"name": "http2", "port": 80, "targetPort": 8080, "nodePort": 30080}]}}


def _istioctl(args: list[str], world: dict[str, Any], root: Path) -> int:
    version = world["istioctl"]
    if args[:1] == ["version"]:
        _out(f"client version: {version}\n")
        return 0
    if args[:1] == ["install"]:
        context = _flag(args, "--context") or ""
        store = root / "clusters" / f"{context}.json"
        if not store.exists():
            return _err(f'Error: context "{context}" does not exist\n')
        if "-y" not in args and "--skip-confirmation" not in args:
            return _err("fake istioctl: would wait for a confirmation on stdin\n")
        if not Path(_flag(args, "-f") or "").is_file():
            return _err("Error: the -f file does not exist\n")
        from tests.kind.fake_cluster import FakeCluster

        cluster = FakeCluster(context, store=store)
        for obj in _istio_objects(version):
            cluster.update(obj, manager="istio-operator")
        _out("✔ Istio core installed\n✔ Istiod installed\n✔ Ingress gateways installed\n✔ Installation complete\n")
        return 0
    return _err(f"fake istioctl: unsupported {args}\n")


def main(tool: str) -> int:
    root = Path(os.environ["DEVMESH_FAKE_WORLD"])
    args = sys.argv[1:]
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    with open(root / "calls.jsonl", "a") as log:
        log.write(json.dumps({"tool": tool, "args": args, "stdin": stdin}) + "\n")
    world = json.loads((root / "world.json").read_text())
    # A failure a test asks for: {"fail": {"kind create cluster": {"stderr": …, "status": 1}}}.
    for prefix, failure in world.get("fail", {}).items():
        if [tool, *args][: len(prefix.split())] == prefix.split():
            sys.stderr.write(failure["stderr"])
            return int(failure.get("status", 1))
    if tool == "kind":
        code = _kind(args, world, root)
    elif tool == "docker":
        code = _docker(args, world, stdin)
    else:
        code = _istioctl(args, world, root)
    (root / "world.json").write_text(json.dumps(world, indent=1, sort_keys=True))
    return code
