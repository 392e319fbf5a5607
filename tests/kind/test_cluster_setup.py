"""`devmesh cluster up | down | status` through recording fake kind, docker and istioctl, and
the fake API server state those tools share with the in-process client."""

from __future__ import annotations

import json
from collections.abc import Callable
import re
from pathlib import Path

import pytest
import yaml

from devmesh.config import Project, load_project
from devmesh.errors import DevmeshError, MissingDependency, UserInputError
from devmesh.runtime.kind.cluster import ClusterSetup
from devmesh.runtime.kind.kind_config import effective_kind_config
from devmesh.runtime.kind.layout import ISTIO_VERSION, release_line
from devmesh.runtime.kind.tools import ToolFailed, Tools
from tests.conftest import ProjectFactory
from tests.kind.conftest import KIND_YAML, Events
from tests.kind.fake_cluster import FakeCluster
from tests.kind.fake_tools import FakeWorld

REPO = Path(__file__).resolve().parents[2]
HOSTS = "/etc/containerd/certs.d/127.0.0.1:5001"
INSPECT_REGISTRY = ["docker", "inspect", "--type", "container", "devmesh-registry"]
# What a second `cluster up` may do: look, never act.
LOOKS = [
    INSPECT_REGISTRY,
    ["kind", "get", "clusters"],
    ["kind", "get", "nodes", "--name", "devmesh"],
    ["docker", "inspect", "--type", "container", "devmesh-control-plane"],
    ["docker", "exec", "devmesh-control-plane", "cat", f"{HOSTS}/hosts.toml"],
    INSPECT_REGISTRY,
]


def setup_for(project: Project, world: FakeWorld, **kw: object) -> ClusterSetup:
    return ClusterSetup(project, tools=Tools(world.env()), client_factory=world.client,
                        registry_probe=lambda address: address == "127.0.0.1:5001", **kw)  # type: ignore[arg-type]


def test_first_up_creates_every_part_in_order(project: Project, world: FakeWorld, events: Events,
                                              tmp_path: Path) -> None:
    actions = setup_for(project, world).up(sink=events)
    written = str(tmp_path / "state" / "kind" / "devmesh.yaml")
    assert world.calls() == [
        INSPECT_REGISTRY,
        ["docker", "run", "-d", "--restart=always", "-p", "127.0.0.1:5001:5000", "--network", "bridge",
         "--name", "devmesh-registry", "--label", "app.kubernetes.io/managed-by=devmesh", "registry:2"],
        ["kind", "get", "clusters"],
        ["docker", "info", "--format", "{{.CgroupVersion}}"],
        ["kind", "version"],
        ["kind", "create", "cluster", "--name", "devmesh", "--config", written],
        ["kind", "get", "nodes", "--name", "devmesh"],
        ["docker", "inspect", "--type", "container", "devmesh-control-plane"],
        ["docker", "exec", "devmesh-control-plane", "cat", f"{HOSTS}/hosts.toml"],
        ["docker", "exec", "devmesh-control-plane", "mkdir", "-p", HOSTS],
        ["docker", "exec", "-i", "devmesh-control-plane", "cp", "/dev/stdin", f"{HOSTS}/hosts.toml"],
        INSPECT_REGISTRY,
        ["docker", "network", "connect", "kind", "devmesh-registry"],
        ["istioctl", "version", "--remote=false"],
        ["istioctl", "install", "-y", "--context", "kind-devmesh", "-f", str(REPO / "kind-config" / "istio.yaml")],
    ]
    assert world.stdin_of("docker", "exec", "-i") == ['[host."http://devmesh-registry:5000"]\n']
    assert len(actions) == 6
    assert actions[0] == "created registry devmesh-registry on 127.0.0.1:5001 (registry:2)"
    assert actions[-1].startswith("installed Istio 1.31.0")

    # kind got a configuration with every port on 127.0.0.1 and the project's gateway port.
    config = yaml.safe_load(Path(written).read_text())
    mappings = [m for n in config["nodes"] for m in n.get("extraPortMappings", [])]
    assert mappings == [{"containerPort": 30080, "hostPort": 18080, "listenAddress": "127.0.0.1", "protocol": "TCP"}]
    assert any("/etc/containerd/certs.d" in p for p in config["containerdConfigPatches"])
    node = world.load()["containers"]["devmesh-control-plane"]
    assert node["ports"] == {"30080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"}]}

    # The local-registry-hosting ConfigMap, applied by devmesh through its client.
    cm = world.client("kind-devmesh").get("v1", "ConfigMap", "local-registry-hosting", "kube-public")
    assert cm["data"]["localRegistryHosting.v1"].startswith('host: "127.0.0.1:5001"')
    assert [m["manager"] for m in cm["metadata"]["managedFields"]] == ["devmesh"]


def test_second_up_creates_nothing(project: Project, world: FakeWorld, events: Events) -> None:
    setup_for(project, world).up()
    world.forget_calls()
    actions = setup_for(project, world).up(sink=events)
    assert actions == []
    assert world.calls() == LOOKS
    assert all(not e.changed for e in events)  # type: ignore[attr-defined]
    assert "Istio 1.31.0 is installed with its ingress gateway" in events.messages()


def test_a_cluster_missing_from_the_kubeconfig_gets_its_context_back(project: Project,
                                                                     world: FakeWorld) -> None:
    setup_for(project, world).up()
    state = world.load()
    state["no_kubeconfig"] = ["kind-devmesh"]
    world.save(state)
    world.forget_calls()
    actions = setup_for(project, world).up()
    assert actions == ["kind cluster devmesh exists; wrote its context kind-devmesh to the kubeconfig"]
    assert ["kind", "export", "kubeconfig", "--name", "devmesh"] in world.calls()
    assert ["kind", "create", "cluster"] not in [c[:3] for c in world.calls()]


def test_an_interrupted_up_is_resumed_where_it_stopped(project: Project, world: FakeWorld) -> None:
    setup_for(project, world).up()
    state = world.load()
    state["containers"]["devmesh-registry"]["running"] = False
    state["containers"]["devmesh-registry"]["networks"] = ["bridge"]
    state["files"]["devmesh-control-plane"] = {}
    world.save(state)
    world.forget_calls()
    actions = setup_for(project, world).up()
    assert actions == [
        "started registry devmesh-registry",
        "node devmesh-control-plane: 127.0.0.1:5001 → http://devmesh-registry:5000",
        "connected registry devmesh-registry to the kind network",
    ]
    assert ["kind", "create", "cluster"] not in [c[:3] for c in world.calls()]
    assert not any(c[:2] == ["istioctl", "install"] for c in world.calls())


def test_status_shows_each_part(project: Project, world: FakeWorld) -> None:
    assert [(p.name, p.healthy) for p in setup_for(project, world).status()] == [("kind cluster", False)]
    setup_for(project, world).up()
    parts = {p.name: p for p in setup_for(project, world).status()}
    assert list(parts) == ["kind cluster", "gateway port", "registry", "node registry config",
                           "API server", "cluster DNS", "Istio", "ingress gateway", "registry ConfigMap"]
    assert all(p.healthy for p in parts.values()), parts
    assert parts["cluster DNS"].detail == "kube-system/coredns: ready"
    assert parts["gateway port"].detail == "127.0.0.1:18080 → NodePort 30080 on devmesh-control-plane"
    state = world.load()
    state["containers"]["devmesh-registry"]["running"] = False
    world.save(state)
    registry = {p.name: p for p in setup_for(project, world).status()}["registry"]
    assert not registry.healthy and "not running" in registry.detail


def test_down_removes_the_cluster_and_the_registry(project: Project, world: FakeWorld) -> None:
    setup_for(project, world).up()
    world.forget_calls()
    assert setup_for(project, world).down() == ["deleted kind cluster devmesh", "removed registry devmesh-registry"]
    assert world.calls() == [["kind", "get", "clusters"], ["kind", "delete", "cluster", "--name", "devmesh"],
                             INSPECT_REGISTRY, ["docker", "rm", "-f", "devmesh-registry"]]
    assert world.load()["containers"] == {}
    assert setup_for(project, world).down() == []


def test_a_port_mapping_on_every_address_is_refused(make_project: ProjectFactory, world: FakeWorld) -> None:
    config = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n" \
             "  extraPortMappings:\n  - containerPort: 30080\n    hostPort: 80\n    listenAddress: 0.0.0.0\n"
    root = make_project(KIND_YAML, extra={"kind-config/cluster.yaml": config})
    project = load_project(root / "devmesh.yaml")
    with pytest.raises(UserInputError, match=r"listenAddress '0.0.0.0' would publish the port beyond this machine"):
        setup_for(project, world).up()
    assert not any(c[:2] == ["kind", "create"] for c in world.calls())


def test_a_mapping_without_listen_address_gets_loopback() -> None:
    text = ("kind: Cluster\nnodes:\n- role: control-plane\n  extraPortMappings:\n"
            "  - containerPort: 30443\n    hostPort: 8443\n")
    config = effective_kind_config(text, 9090, "x.yaml")
    mappings = config["nodes"][0]["extraPortMappings"]
    assert [(m["containerPort"], m["hostPort"], m["listenAddress"]) for m in mappings] == [
        (30443, 8443, "127.0.0.1"), (30080, 9090, "127.0.0.1")]


def test_istioctl_of_another_release_installs_nothing(project: Project, tmp_path: Path) -> None:
    world = FakeWorld(tmp_path / "old", istioctl_version="1.22.3")
    with pytest.raises(MissingDependency, match=r"istioctl 1\.22\.3 is on PATH; devmesh installs Istio 1\.31\.x") as caught:
        setup_for(project, world).up()
    assert "ISTIO_VERSION=1.31.0" in (caught.value.hint or "")
    assert not any(c[:2] == ["istioctl", "install"] for c in world.calls())


def test_devmesh_pins_the_istio_line_the_tests_build() -> None:
    # The istioctl and CRDs the tests use (.ci/build-k8s) are of the line devmesh installs.
    script = (REPO / ".ci" / "build-k8s").read_text()
    assert re.findall(r"^ISTIO_LINE=(\S+)$", script, re.MULTILINE) == [ISTIO_VERSION]


@pytest.mark.parametrize(("version", "line"), [
    ("1.31.0", "1.31"), ("v1.31.2-distroless", "1.31"), ("1.31-dev", "1.31"), ("1.310.1", "1.310"),
    ("unknown", "unknown")])
def test_release_line_of_an_image_tag(version: str, line: str) -> None:
    assert release_line(version) == line


def test_istio_built_from_a_branch_counts_as_its_line(project: Project, tmp_path: Path) -> None:
    # istioctl built from an Istio branch (.ci/build-k8s istioctl) reports "1.31-dev" and
    # installs images tagged so: that istiod is of the 1.31 line, installed once.
    world = FakeWorld(tmp_path / "dev", istioctl_version="1.31-dev")
    setup_for(project, world).up()
    world.forget_calls()
    assert setup_for(project, world).up() == []
    assert not any(c[:2] == ["istioctl", "install"] for c in world.calls())
    istio = {p.name: p for p in setup_for(project, world).status()}["Istio"]
    assert istio.healthy and istio.detail.startswith("istiod 1.31-dev: "), istio


def _existing_context(world: FakeWorld, name: str = "team") -> FakeCluster:
    cluster = world.client(name) if world.store_of(name).exists() else None
    if cluster is None:
        cluster = FakeCluster(name, store=world.store_of(name))
        cluster.update({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
                       manager="kube-apiserver")
    return cluster


def test_an_existing_context_gets_no_kind_and_no_registry(project: Project, world: FakeWorld,
                                                          events: Events) -> None:
    _existing_context(world)
    with pytest.raises(DevmeshError, match="Istio is not installed in context team") as caught:
        setup_for(project, world, context="team").up(sink=events)
    assert "--install-istio" in (caught.value.hint or "")
    assert world.calls() == []
    actions = setup_for(project, world, context="team").up(install_istio=True)
    assert world.calls() == [["istioctl", "version", "--remote=false"],
                             ["istioctl", "install", "-y", "--context", "team", "-f",
                              str(REPO / "kind-config" / "istio.yaml")]]
    assert len(actions) == 1
    world.forget_calls()
    assert setup_for(project, world, context="team").up() == []
    assert world.calls() == []
    parts = setup_for(project, world, context="team").status()
    assert [p.name for p in parts] == ["API server", "Istio", "ingress gateway", "registry"]
    with pytest.raises(UserInputError, match="does not delete context team"):
        setup_for(project, world, context="team").down()


def test_cluster_status_cli_exit_code(project: Project, world: FakeWorld, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    from devmesh.cli import main

    for key, value in world.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KUBECONFIG", str(world.root / "no-kubeconfig"))
    monkeypatch.chdir(project.root)
    with pytest.raises(SystemExit) as done:
        main(["cluster", "status", "--json"])
    assert done.value.code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["parts"][0]["name"] == "kind cluster" and not report["healthy"]


OUTPUTS = Path(__file__).parent / "outputs"


@pytest.mark.parametrize(("output", "message", "hint"), [
    ("kind-create-caps-refused.txt",
     "the Docker engine cannot start privileged containers, which kind's nodes are",
     "Docker engine of 23.0 or newer"),
    ("kind-create-port-in-use.txt",
     "127.0.0.1:8080 is in use, so kind cannot publish the gateway there",
     "routing.gateway_port"),
    ("kind-create-pull-refused.txt",
     "kind could not pull its node image devmesh/none:v1.34.0: Command Output: Error response "
     "from daemon: Get \"https://registry-1.docker.io/v2/\"",
     "(nodes[].image)"),
    ("kind-create-kubeadm-failed.txt",
     "kubeadm could not start Kubernetes on node devmesh-control-plane: error execution phase "
     "wait-control-plane: failed while waiting for the control plane to start",
     "docker exec devmesh-control-plane journalctl -u kubelet"),
])
def test_a_failed_kind_create_says_what_happened(project: Project, world: FakeWorld, output: str,
                                                 message: str, hint: str) -> None:
    state = world.load()
    # The recorded run's gateway port was 8080; the project's is another.
    port = f"127.0.0.1:{project.routing.gateway_port}"
    stderr = (OUTPUTS / output).read_text().replace("127.0.0.1:8080", port)
    state["fail"] = {"kind create cluster": {"stderr": stderr, "status": 1}}
    world.save(state)
    with pytest.raises(DevmeshError) as caught:
        setup_for(project, world).up()
    assert not isinstance(caught.value, ToolFailed)
    assert message.replace("127.0.0.1:8080", port) in str(caught.value)
    assert hint in (caught.value.hint or "")


def test_an_unknown_kind_failure_keeps_kinds_own_lines(project: Project, world: FakeWorld) -> None:
    state = world.load()
    state["fail"] = {"kind create cluster": {"stderr": "ERROR: something new\n", "status": 1}}
    world.save(state)
    with pytest.raises(ToolFailed, match="something new"):
        setup_for(project, world).up()


@pytest.mark.parametrize(("image", "refused"), [
    (None, False),                       # the fake kind is 0.30: its default is Kubernetes 1.34
    ("kindest/node:v1.34.0", False),
    ("kindest/node:v1.35.0@sha256:" + "a" * 64, True),
    ("devmesh/kind-node:v1.37.1", True),
])
def test_a_node_image_that_refuses_cgroup_v1_is_refused_before_kind_runs(
        make_project: ProjectFactory, world: FakeWorld, tmp_path: Path, image: str | None,
        refused: bool) -> None:
    state = world.load()
    state["cgroup_version"] = "1"
    world.save(state)
    node = f"    image: {image}\n" if image else ""
    cluster_yaml = f"kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n  - role: control-plane\n{node}"
    project = load_project(make_project(KIND_YAML, extra={"kind-config/cluster.yaml": cluster_yaml})
                           / "devmesh.yaml")
    if not refused:
        setup_for(project, world).up()
        return
    with pytest.raises(UserInputError, match="whose kubelet refuses the cgroup v1") as caught:
        setup_for(project, world).up()
    assert caught.value.exit_code == 2
    assert "kind-config/cluster.yaml" in str(caught.value)
    assert not [c for c in world.calls() if c[:3] == ["kind", "create", "cluster"]]


def test_istio_that_does_not_become_ready_says_which_workload_and_why(project: Project,
                                                                     world: FakeWorld) -> None:
    state = world.load()
    state["fail"] = {"istioctl install": {
        "stderr": (OUTPUTS / "istioctl-install-not-ready.txt").read_text(), "status": 1}}
    world.save(state)
    with pytest.raises(DevmeshError) as caught:
        setup_for(project, world).up()
    message = str(caught.value)
    assert not isinstance(caught.value, ToolFailed)
    assert message.startswith("Istio did not become ready within 40s: Deployment/istio-system/istiod: "
                              "container failed to start: ErrImagePull: failed to pull and unpack "
                              'image "devmesh.local/missing/pilot:1.31-dev"')
    assert message.endswith("; Deployment/istio-system/istio-ingressgateway: container failed to "
                            "start: ContainerCreating:")
    assert message.count("istiod") == 1 and "\n" not in message
    assert "cannot pull Istio's images" in (caught.value.hint or "")


def test_kinds_own_default_image_on_cgroup_v1_is_refused_from_kind_0_31() -> None:
    from devmesh.runtime.kind.diagnose import cgroup_v1_refusal

    refused = cgroup_v1_refusal(cgroup_version="1\n", images=[None], source="cluster.yaml",
                                kind_version="kind v0.33.0 go1.26.8 linux/amd64")
    assert refused is not None and str(refused) == (
        "cluster.yaml: no node image is named, and kind 0.33's default is Kubernetes 1.35 or "
        "newer, whose kubelet refuses the cgroup v1 this Docker host runs")
    assert refused.hint == ("pin a Kubernetes 1.34 node image there (nodes[].image: "
                            "kindest/node:v1.34.0 or another 1.34 one), or move the host to cgroup v2")
    assert cgroup_v1_refusal(cgroup_version="1", images=[None], source="cluster.yaml",
                             kind_version="kind v0.30.0 go1.24.6 linux/amd64") is None
    assert cgroup_v1_refusal(cgroup_version="2", images=[None], source="cluster.yaml",
                             kind_version="kind v0.33.0 go1.26.8 linux/amd64") is None


class Ticks:
    """``clock`` and ``pause`` for ClusterSetup's waits: each pause moves the clock on and
    runs what the test wants to happen meanwhile."""

    def __init__(self, *on_pause: Callable[[], None]) -> None:
        self.now = 0.0
        self.on_pause = list(on_pause)
        self.pauses = 0

    def clock(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds
        self.pauses += 1
        if self.on_pause:
            self.on_pause.pop(0)()


def waiting_setup(project: Project, world: FakeWorld, ticks: Ticks, timeout: float = 5) -> ClusterSetup:
    setup = setup_for(project, world)
    setup.clock, setup.pause, setup.ready_timeout = ticks.clock, ticks.pause, timeout  # type: ignore[method-assign]
    return setup


def restart(world: FakeWorld, fate: str, name: str = "istio-ingressgateway",
            namespace: str = "istio-system") -> None:
    """A Deployment's pods replaced by ones of ``fate`` (as after a node restart)."""
    fake = world.client("kind-devmesh")
    fake.fate = lambda pod: fate if pod["metadata"]["name"].startswith(name) else "ready"
    found = fake.get("apps/v1", "Deployment", name, namespace)
    found["spec"]["template"]["metadata"]["annotations"] = {"restarted": str(len(fate))}
    fake.update(found, manager="kube-controller-manager")


def test_a_stopped_node_is_started_and_its_api_server_awaited(project: Project, world: FakeWorld,
                                                              events: Events) -> None:
    setup_for(project, world).up()
    state = world.load()
    state["containers"]["devmesh-control-plane"]["running"] = False
    world.save(state)
    fake = world.client("kind-devmesh")
    fake.reachable = False
    ticks = Ticks(lambda: None, lambda: setattr(fake, "reachable", True))
    world.forget_calls()
    actions = waiting_setup(project, world, ticks).up(sink=events)
    assert actions == ["started node devmesh-control-plane (it was stopped)"]
    assert ["docker", "start", "devmesh-control-plane"] in world.calls()
    assert ticks.pauses == 2
    assert "waiting for the API server of kind-devmesh to answer" in events.messages()


def test_a_node_whose_api_server_never_answers_says_so(project: Project, world: FakeWorld) -> None:
    setup_for(project, world).up()
    state = world.load()
    state["containers"]["devmesh-control-plane"]["running"] = False
    world.save(state)
    world.client("kind-devmesh").reachable = False
    with pytest.raises(DevmeshError) as caught:
        waiting_setup(project, world, Ticks(), timeout=3).up()
    assert str(caught.value) == ("kind cluster devmesh: the API server does not answer 3 s after its "
                                 "node(s) started: connection refused")
    assert "docker logs devmesh-control-plane" in (caught.value.hint or "")


def test_an_ingress_gateway_not_ready_yet_is_awaited(project: Project, world: FakeWorld,
                                                     events: Events) -> None:
    setup_for(project, world).up()
    restart(world, "pending")
    ticks = Ticks(lambda: None, lambda: restart(world, "ready"))
    actions = waiting_setup(project, world, ticks).up(sink=events)
    assert actions == []
    waiting = [m for m in events.messages() if m.startswith("waiting for istio-system/")]
    assert len(waiting) == 1
    assert re.fullmatch(r"waiting for istio-system/istio-ingressgateway: Progressing — 0/1 available; "
                        r"pod istio-ingressgateway-\S+: istio-proxy ContainerCreating", waiting[0]), waiting
    assert events.messages()[-1] == "istio-system/istio-ingressgateway is ready"
    assert ticks.pauses == 2


def test_an_ingress_gateway_that_stays_unready_fails_with_its_last_lines(project: Project,
                                                                        world: FakeWorld) -> None:
    setup_for(project, world).up()
    restart(world, "pending")
    world.client("kind-devmesh").add_logs("app=istio-ingressgateway", "istio-proxy",
                                          "warn Envoy proxy is NOT ready: config not received from XDS server")
    with pytest.raises(DevmeshError) as caught:
        waiting_setup(project, world, Ticks(), timeout=4).up()
    message = str(caught.value)
    assert re.match(r"Istio's ingress gateway \(istio-system/istio-ingressgateway\) is not ready "
                    r"after 4 s: Progressing — 0/1 available; "
                    r"pod istio-ingressgateway-\S+: istio-proxy ContainerCreating; last log lines:\n", message), message
    assert message.endswith("\n  warn Envoy proxy is NOT ready: config not received from XDS server")
    assert "describe deployment istio-ingressgateway" in (caught.value.hint or "")


def test_an_ingress_gateway_that_cannot_start_fails_at_once(project: Project, world: FakeWorld) -> None:
    setup_for(project, world).up()
    restart(world, "crash")
    ticks = Ticks()
    with pytest.raises(DevmeshError) as caught:
        waiting_setup(project, world, ticks).up()
    assert str(caught.value).startswith("Istio's ingress gateway (istio-system/istio-ingressgateway) "
                                        "cannot start: CrashLoopBackOff: the container keeps exiting "
                                        "(last exit status 1)")
    assert ticks.pauses == 0


def test_a_cluster_dns_that_cannot_start_fails_before_istio_with_its_last_lines(
        project: Project, world: FakeWorld) -> None:
    # A Corefile CoreDNS cannot parse: running pods keep their old one (its reload plugin), so
    # this shows after the next node restart, as every Istio pod failing to find istiod.
    setup_for(project, world).up()
    restart(world, "crash", name="coredns", namespace="kube-system")
    world.client("kind-devmesh").add_logs(
        "k8s-app=kube-dns", "coredns",
        "/etc/coredns/Corefile:13 - Error during parsing: Unknown directive 'max_concurrent'")
    world.forget_calls()
    with pytest.raises(DevmeshError) as caught:
        waiting_setup(project, world, Ticks()).up()
    assert str(caught.value) == (
        "the cluster DNS (kube-system/coredns) cannot start: CrashLoopBackOff: the container keeps "
        "exiting (last exit status 1) — back-off 40s restarting failed container=coredns; "
        "last log lines:\n  /etc/coredns/Corefile:13 - Error during parsing: Unknown directive 'max_concurrent'")
    dns = {p.name: p for p in setup_for(project, world).status()}["cluster DNS"]
    assert not dns.healthy
    assert dns.detail.startswith("kube-system/coredns: CrashLoopBackOff: the container keeps exiting")
    assert caught.value.hint == ("'kubectl --context kind-devmesh -n kube-system get configmap "
                                 "coredns -o yaml' shows its Corefile; 'devmesh cluster status' "
                                 "shows each part")
    assert not [c for c in world.calls() if c[:1] == ["istioctl"]]
