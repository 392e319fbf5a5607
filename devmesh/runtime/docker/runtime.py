"""The docker runtime: each service version is a container on a per-app network, routed by one
Envoy (``devmesh.runtime.docker.envoy``); a ``devmesh.runtime.base.Runtime``."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import docker
import docker.errors

from devmesh.errors import DevmeshError, UserInputError
from devmesh.events import Sink, Step, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.envoy import cluster_name
from devmesh.plan.k8s import SERVICE_LABEL
from devmesh.plan.routing import Backend, Environment, RoutePlan
from devmesh.plan.service_env import service_env
from devmesh.ports import bind_error
from devmesh.runtime.base import Health, ServiceState, UpResult
from devmesh.runtime.docker.app import BRANCH_LABEL, IMAGE_LABEL, READY_TIMEOUT, SPEC_LABEL, ServiceCrashed, backend_alias
from devmesh.runtime.docker.envoy import EnvoyMesh
from devmesh.runtime.docker.sync import DockerTransport
from devmesh.runtime.shared import Describe, ProjectRuntime
from devmesh.plan.supervisor import SHELL, SUPERVISED_LABEL, script_digest, supervised_command, supervisor_archive

if TYPE_CHECKING:
    from docker.models.containers import Container

    from devmesh.config import Project


class DockerRuntime(EnvoyMesh, ProjectRuntime["Container"]):
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
        """Live sync through the engine's archive and exec APIs (devmesh.runtime.docker.sync)."""
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
        return {"image": image, "env": env, "port": self.project.port_of(backend.service),
                "supervisor": script_digest()}

    def _image_command(self, image: str) -> list[str]:
        """The image's ENTRYPOINT followed by its CMD, as the engine stores them."""
        config = self.client.api.inspect_image(image).get("Config") or {}  # type: ignore[no-untyped-call]
        return [*(config.get("Entrypoint") or ()), *(config.get("Cmd") or ())]

    def _install_supervisor(self, container_id: str) -> bool:
        """Put the supervisor into a created container; False when its image has no /bin/sh."""
        api = self.client.api
        try:
            api.get_archive(container_id, SHELL)
        except docker.errors.NotFound:
            return False
        api.put_archive(container_id, "/", supervisor_archive())
        return True

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

        def create(command: list[str]) -> str:
            entrypoint, args = supervised_command(command) if command else (None, None)
            return str(api.create_container(
                image=image,
                name=name,
                labels=labels | ({SUPERVISED_LABEL: "1"} if command else {}),
                environment=spec["env"],
                host_config=api.create_host_config(network_mode=self.network_name),
                networking_config=networking,
                entrypoint=entrypoint,
                command=args,
            )["Id"])

        # Under devmesh's supervisor a reload runs the command again in this container
        # (devmesh.plan.supervisor); an image without a shell is restarted instead.
        command = self._image_command(image)
        created = create(command)
        if command and not self._install_supervisor(created):
            api.remove_container(created, force=True)
            created = create([])
            act(f"{name}: its image has no {SHELL}, so a reload after a sync restarts the container",
                service=backend.service, env=backend.env)
        api.start(created)
        act(f"started {name} ({image})", service=backend.service, env=backend.env)


    # --- readiness ---------------------------------------------------------------------

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
