"""The docker runtime: each service version is a container on a per-app network; one Envoy
container holds every service's name as a network alias, listens on every service port and
routes each hop by the RoutePlan. Its gateway is published on 127.0.0.1 only.

Everything is found by labels (never by name patterns), so ``down`` leaves nothing behind and
an interrupted ``up`` is completed by the next ``up`` or ``down``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import docker
import docker.errors

from devmesh.build import docker_client
from devmesh.dirs import state_dir
from devmesh.errors import DevmeshError, UserInputError
from devmesh.events import Sink, Step, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.envoy import cluster_name, envoy_args, parse_cluster_health, render_envoy, write_atomically
from devmesh.plan.k8s import APP_LABEL, ENV_LABEL, MANAGED_BY, SERVICE_LABEL
from devmesh.plan.routing import Backend, Environment, RoutePlan
from devmesh.plan.service_env import service_env
from devmesh.ports import bind_error
from devmesh.routes_state import StrategyStore
from devmesh.runtime.base import Health, ServiceState, UpResult
from devmesh.runtime.docker_sync import DockerTransport
from devmesh.runtime.logmerge import LogSource, Reader
from devmesh.runtime.shared import Describe, LabelledApp, ProjectRuntime

if TYPE_CHECKING:
    from docker.models.containers import Container

    from devmesh.config import Project

ROLE_LABEL = "devmesh.dev/role"
BRANCH_LABEL = "devmesh.dev/branch"
SPEC_LABEL = "devmesh.dev/spec"
IMAGE_LABEL = "devmesh.dev/image"
ENVOY_CONFIG_DIR = "/etc/devmesh-envoy"
ENVOY_GATEWAY_PORT = 10000
ENVOY_ADMIN_PORT = 9901
READY_TIMEOUT = 60.0


class ServiceCrashed(DevmeshError):
    """A container exited while starting."""


def envoy_image(project: Project) -> str:
    return os.environ.get("DEVMESH_ENVOY_IMAGE") or project.docker.envoy_image


def backend_alias(backend: Backend) -> str:
    """The network alias of one service version (service and env names never hold dots)."""
    return f"{backend.service}.{backend.env}"


class DockerApp(LabelledApp["Container"]):
    """An app's containers, network and Envoy on one Docker engine, found by their labels alone.

    This is all that ``down``, ``ls`` and ``logs`` need, so they still work when devmesh.yaml
    cannot be loaded; ``DockerRuntime`` adds what the project's configuration is needed for.
    """

    name = "docker"
    routes_name = "Envoy's routes"

    def __init__(self, app: str, client: docker.DockerClient | None = None) -> None:
        self.client = client or docker_client()
        self.app = app
        self.network_name = f"devmesh-{self.app}"
        self.envoy_name = f"devmesh-{self.app}-envoy"
        self.config_dir = state_dir() / self.app / "envoy"
        # Release strategies applied to the running environments (see devmesh.routes_state).
        self.strategies = StrategyStore(state_dir() / self.app)

    # --- labels and lookups -------------------------------------------------------------

    def _labels(self, env: str, service: str = "", role: str = "service") -> dict[str, str]:
        return {MANAGED_BY: "devmesh", APP_LABEL: self.app, ENV_LABEL: env,
                SERVICE_LABEL: service, ROLE_LABEL: role}

    def _containers(self, env: str | None = None, role: str | None = None) -> list[Container]:
        filters = [f"{MANAGED_BY}=devmesh", f"{APP_LABEL}={self.app}"]
        if env is not None:
            filters.append(f"{ENV_LABEL}={env}")
        if role is not None:
            filters.append(f"{ROLE_LABEL}={role}")
        return list(self.client.containers.list(all=True, filters={"label": filters}))

    def container_name(self, backend: Backend) -> str:
        return f"devmesh-{self.app}-{backend.env}-{backend.service}"

    def service_containers(self, env: str, service: str) -> list[Container]:
        """The containers of ``service`` in environment ``env``, in any state (live sync's
        targets)."""
        return [c for c in self._containers(env=env, role="service")
                if c.labels.get(SERVICE_LABEL) == service]

    # --- what the shared half needs (devmesh.runtime.shared) -----------------------------

    def _found(self) -> list[tuple[str, str, Container]]:
        return [(c.labels.get(ENV_LABEL, ""), c.labels.get(SERVICE_LABEL, ""), c)
                for c in self._containers(role="service")]

    def _branch_of(self, obj: Container) -> str | None:
        return obj.labels.get(BRANCH_LABEL) or None

    def _label_describer(self) -> Describe[Container]:
        def describe(service: str, env: str, c: Container) -> tuple[ServiceState, str | None]:
            return (ServiceState(service, env, c.status, c.labels.get(IMAGE_LABEL, ""),
                                 None if c.status == "running" else False), self._branch_of(c))

        return describe

    def _log_sources(self, chosen: Sequence[tuple[str, str, Container]]) -> list[LogSource]:
        def reader(c: Container) -> Reader:
            def read(follow: bool, tail: int | None, since: float | None) -> Iterable[str]:
                for raw in c.logs(stream=True, follow=follow, timestamps=True,
                                  tail="all" if tail is None else tail, since=since):
                    yield from raw.decode(errors="replace").splitlines()

            return read

        # A restart (live sync's reload) ends a container's log stream: it is read on from
        # where it ended once the container runs again.
        return [LogSource(str(c.id), service, env, reader(c), running=c.status == "running", resumable=True)
                for env, service, c in chosen]

    def _remove(self, c: Container, sink: Sink) -> str:
        c.remove(force=True, v=True)
        sink(Step(f"removed {c.name}"))
        return str(c.name)

    def _remove_env(self, env: str, sink: Sink) -> list[str]:
        return [self._remove(c, sink) for c in self._containers(env=env, role="service")]

    def _remove_app(self, sink: Sink) -> list[str]:
        # Every environment's versions, then the baseline, Envoy and the network.
        containers = self._containers()
        removed = [self._remove(c, sink) for c in containers
                   if c.labels.get(ROLE_LABEL) == "service" and c.labels.get(ENV_LABEL) != BASELINE_ENV]
        removed += [self._remove(c, sink) for c in containers if c.name not in removed]
        for net in self.client.networks.list(filters={"label": [f"{MANAGED_BY}=devmesh", f"{APP_LABEL}={self.app}"]}):
            net.remove()
            removed.append(f"network {net.name}")
            sink(Step(f"removed network {net.name}"))
        shutil.rmtree(self.config_dir, ignore_errors=True)
        return removed


class DockerRuntime(DockerApp, ProjectRuntime["Container"]):
    """Runs a project's environments on one Docker engine (a ``devmesh.runtime.base.Runtime``)."""

    def __init__(self, project: Project, client: docker.DockerClient | None = None) -> None:
        super().__init__(project.app, client)
        self.project = project

    # --- up ----------------------------------------------------------------------------

    # --- the engine ----------------------------------------------------------------------

    @property
    def image_engine(self) -> docker.DockerClient:
        return self.client

    def prepare(self, *, sink: Sink = discard) -> None:
        """Nothing to create before a first ``up``: the network and Envoy come with it."""
        del sink

    def health(self) -> Health:
        try:
            version = self.client.version()
        except Exception as exc:  # the SDK raises requests, docker and OS errors alike
            return Health(False, f"engine not answering: {str(exc).splitlines()[0][:80]}")
        return Health(True, f"engine {version.get('Version', '?')}")

    def sync_transport(self) -> DockerTransport:
        """Live sync through the engine's archive and exec APIs (devmesh.runtime.docker_sync)."""
        return DockerTransport(self)

    def up(self, environment: Environment, *, images: Mapping[Backend, str], baseline_commit: str = "",
           sink: Sink = discard) -> UpResult:
        """Bring the baseline, the environment's forks and Envoy to the desired state.

        ``images`` maps every backend of the baseline and the environment to a built image.
        """
        actions: list[str] = []

        def act(message: str, **kw: Any) -> None:
            actions.append(message)
            sink(Step(message, **kw))

        self.preflight()
        plan, wanted = self._up_plan(environment, images)
        self._ensure_network(act)
        for backend in wanted:
            branch = environment.branch if backend.env == environment.name else None
            self._ensure_service(backend, images[backend], plan, act, branch=branch,
                                 commit=baseline_commit if backend.env == BASELINE_ENV else "")
        # Services this environment no longer forks (the branch reverted them) go away.
        for c in self._containers(env=environment.name, role="service"):
            if not environment.is_baseline and c.labels.get(SERVICE_LABEL) not in environment.forks:
                c.remove(force=True, v=True)
                act(f"removed {c.name}: the branch no longer changes {c.labels.get(SERVICE_LABEL)}")
        self._apply_routes(plan, act)
        self._wait_ready(plan, set(wanted), sink)
        state = self.environment_state(environment.name, plan)
        return UpResult(state, bool(actions), tuple(actions))

    def preflight(self) -> None:
        """Refuse early when another program holds the gateway port."""
        port = self.project.routing.gateway_port
        mine = [c for c in self._containers(role="envoy") if c.status == "running"]
        if mine:
            return
        if bind_error(port, "127.0.0.1") is not None:
            raise UserInputError(
                f"gateway port {port} on 127.0.0.1 is already in use by another program",
                hint=f"stop it, or set routing.gateway_port in {self.project.path.name}",
            )

    def _ensure_network(self, act: Any) -> None:
        found = self.client.networks.list(names=[self.network_name])
        if any(n.name == self.network_name for n in found):
            return
        self.client.networks.create(self.network_name, driver="bridge",
                                    labels=self._labels(BASELINE_ENV, role="network"))
        act(f"created network {self.network_name}")

    def _service_spec(self, backend: Backend, image: str, plan: RoutePlan) -> dict[str, Any]:
        svc = self.project.services[backend.service]
        env = service_env(svc.env, backend, plan.header)
        return {"image": image, "env": env, "port": self.project.port_of(backend.service)}

    def _ensure_service(self, backend: Backend, image: str, plan: RoutePlan, act: Any, *,
                        branch: str | None, commit: str) -> None:
        spec = self._service_spec(backend, image, plan)
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        name = self.container_name(backend)
        existing = [c for c in self._containers(env=backend.env, role="service")
                    if c.labels.get(SERVICE_LABEL) == backend.service]
        for c in existing:
            if c.labels.get(SPEC_LABEL) == digest and c.name == name:
                if c.status != "running":
                    c.start()
                    act(f"started {name}", service=backend.service, env=backend.env)
                return
            c.remove(force=True, v=True)
        labels = self._labels(backend.env, backend.service) | {SPEC_LABEL: digest, IMAGE_LABEL: image}
        if branch:
            labels[BRANCH_LABEL] = branch
        if commit:
            labels["devmesh.dev/commit"] = commit
        api = self.client.api
        # The SDK takes {network: endpoint config}; its type stubs say one endpoint config.
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(aliases=[backend_alias(backend)])}  # type: ignore[arg-type]
        )
        created = api.create_container(
            image=image,
            name=name,
            labels=labels,
            environment=spec["env"],
            host_config=api.create_host_config(network_mode=self.network_name),
            networking_config=networking,
        )
        api.start(created["Id"])
        act(f"started {name} ({image})", service=backend.service, env=backend.env)

    def _envoy_files(self, plan: RoutePlan) -> Any:
        try:
            return render_envoy(
                plan,
                address_of=lambda b: (backend_alias(b), self.project.port_of(b.service)),
                gateway_port=ENVOY_GATEWAY_PORT,
                admin_port=ENVOY_ADMIN_PORT,
                config_dir=ENVOY_CONFIG_DIR,
            )
        except ValueError as exc:  # a service port that Envoy itself needs
            raise UserInputError(f"{self.project.path.name}: {exc}") from None

    def _apply_routes(self, plan: RoutePlan, act: Any, *, ensure_envoy: bool = True) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        # A running Envoy warms new clusters before routes name them (no 503 while it does);
        # a new Envoy reads everything at start.
        running = self.envoy_admin_url() is not None and bool(self.cluster_health())
        await_clusters = self._await_clusters if running else None
        if write_atomically(self.config_dir, self._envoy_files(plan), await_clusters=await_clusters):
            act(f"routes updated: {len(plan.environments)} environment(s) beside the baseline")
        if ensure_envoy:
            self._ensure_envoy(act)

    def _await_clusters(self, names: frozenset[str], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not names <= set(self.cluster_health()):
            time.sleep(0.01)

    def _ensure_envoy(self, act: Any) -> None:
        image = envoy_image(self.project)
        aliases = sorted(self.project.services)
        spec = {"image": image, "aliases": aliases, "gateway": self.project.routing.gateway_port,
                "config": str(self.config_dir)}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        for c in self._containers(role="envoy"):
            if c.labels.get(SPEC_LABEL) == digest:
                if c.status != "running":
                    c.start()
                    act(f"started {c.name}")
                return
            c.remove(force=True, v=True)
        self._ensure_image_present(image)
        api = self.client.api
        # The SDK takes {network: endpoint config}; its type stubs say one endpoint config.
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(aliases=aliases)}  # type: ignore[arg-type]
        )
        host_config = api.create_host_config(
            network_mode=self.network_name,
            binds={str(self.config_dir): {"bind": ENVOY_CONFIG_DIR, "mode": "ro"}},
            port_bindings={
                ENVOY_GATEWAY_PORT: ("127.0.0.1", self.project.routing.gateway_port),
                ENVOY_ADMIN_PORT: ("127.0.0.1", None),
            },
        )
        try:
            created = api.create_container(
                image=image,
                name=self.envoy_name,
                entrypoint=["envoy"],
                command=envoy_args(ENVOY_CONFIG_DIR),
                labels=self._labels(BASELINE_ENV, role="envoy") | {SPEC_LABEL: digest},
                ports=[ENVOY_GATEWAY_PORT, ENVOY_ADMIN_PORT],
                host_config=host_config,
                networking_config=networking,
            )
            api.start(created["Id"])
        except Exception as exc:
            if "port is already allocated" in str(exc) or "address already in use" in str(exc):
                self._remove_quietly(self.envoy_name)
                raise UserInputError(
                    f"gateway port {self.project.routing.gateway_port} on 127.0.0.1 is already in use",
                    hint=f"stop what uses it, or set routing.gateway_port in {self.project.path.name}",
                ) from None
            raise
        act(f"started {self.envoy_name} (gateway on 127.0.0.1:{self.project.routing.gateway_port})")

    def _remove_quietly(self, name: str) -> None:
        try:
            self.client.containers.get(name).remove(force=True, v=True)
        except docker.errors.NotFound:
            pass

    def _ensure_image_present(self, image: str) -> None:
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            try:
                self.client.images.pull(image)
            except docker.errors.APIError as exc:
                raise DevmeshError(
                    f"the Envoy image {image} is not on this machine and could not be pulled: "
                    f"{exc.explanation or exc}",
                    hint="set DEVMESH_ENVOY_IMAGE or docker.envoy_image in devmesh.yaml to an image you have",
                ) from None

    # --- readiness ---------------------------------------------------------------------

    def envoy_admin_url(self) -> str | None:
        for c in self._containers(role="envoy"):
            c.reload()
            bindings = (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{ENVOY_ADMIN_PORT}/tcp")
            if bindings:
                return f"http://127.0.0.1:{bindings[0]['HostPort']}"
        return None

    def cluster_health(self) -> dict[str, bool]:
        """Envoy's view of each backend: healthy or not (empty when Envoy is not reachable)."""
        url = self.envoy_admin_url()
        if url is None:
            return {}
        try:
            with urllib.request.urlopen(f"{url}/clusters?format=json", timeout=2) as resp:
                return parse_cluster_health(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError):
            return {}

    def _wait_ready(self, plan: RoutePlan, backends: set[Backend], sink: Sink) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        pending = {cluster_name(b): b for b in backends}
        while True:
            for backend in list(pending.values()):
                self._check_running(backend)
            health = self.cluster_health()
            for name in [n for n in pending if health.get(n)]:
                b = pending.pop(name)
                sink(Step(f"{b.service} ({b.env}) is ready", service=b.service, env=b.env, changed=False))
            if not pending:
                return
            if time.monotonic() > deadline:
                names = ", ".join(sorted(pending))
                raise DevmeshError(
                    f"not ready after {READY_TIMEOUT:.0f} s: {names} (Envoy cannot connect to "
                    "their ports; check the service listens on the configured port)",
                    hint="see 'devmesh logs'",
                )
            time.sleep(0.2)

    def _check_running(self, backend: Backend) -> None:
        try:
            c = self.client.containers.get(self.container_name(backend))
        except docker.errors.NotFound:
            raise DevmeshError(f"container {self.container_name(backend)} disappeared while starting") from None
        if c.status in ("exited", "dead"):
            code = c.attrs.get("State", {}).get("ExitCode")
            tail = c.logs(tail=15).decode(errors="replace").rstrip()
            last = "\n  ".join(tail.splitlines()) or "(no output)"
            raise ServiceCrashed(
                f"{backend.service} ({backend.env}) exited with status {code} while starting; last log lines:\n  {last}"
            )

    # --- release strategies --------------------------------------------------------------

    def apply_routes(self, sink: Sink = discard) -> RoutePlan:
        """Re-render Envoy's routes for what runs now and the stored strategies; no container
        is started or restarted (Envoy picks the files up by itself)."""
        envoys = [c for c in self._containers(role="envoy") if c.status == "running"]
        if not envoys or not self._containers(env=BASELINE_ENV, role="service"):
            raise UserInputError(f"app {self.app!r} is not running on docker (no baseline or "
                                 "no Envoy)", hint="'devmesh up' starts it")
        plan = self._plan_to_apply(self.live_environments())
        # Only the files: the running Envoy reloads them, whatever image or settings it has.
        self._apply_routes(plan, lambda m, **kw: sink(Step(m, **kw)), ensure_envoy=False)
        return plan

    def _reroute(self, remaining: Sequence[Environment], sink: Sink) -> None:
        self._apply_routes(self._plan_to_apply(remaining), lambda m, **kw: sink(Step(m)))

    # --- state -------------------------------------------------------------------------

    def _describer(self) -> Describe[Container]:
        health = self.cluster_health()

        def describe(service: str, env: str, c: Container) -> tuple[ServiceState, str | None]:
            ready = health.get(cluster_name(Backend(service, env))) if c.status == "running" else False
            return (ServiceState(service, env, c.status, c.labels.get(IMAGE_LABEL, ""), ready),
                    self._branch_of(c))

        return describe
