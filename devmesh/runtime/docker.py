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
import queue
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devmesh.errors import DevmeshError, UserInputError
from devmesh.events import Sink, Step, Warning, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.envoy import cluster_name
from devmesh.plan.k8s import APP_LABEL, ENV_LABEL, MANAGED_BY, SERVICE_LABEL
from devmesh.plan.routing import Backend, Environment, RoutePlan, plan_for_project
from devmesh.plan.service_env import service_env
from devmesh.ports import bind_error
from devmesh.routes_state import StrategyStore, plan_with_strategies
from devmesh.runtime.base import (
    EnvironmentState,
    LogLine,
    ServiceState,
    UpResult,
    LabelledApp,
    environment_states,
    check_services,
    states_from_labels,
)

if TYPE_CHECKING:
    import docker
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


def state_dir() -> Path:
    """Where devmesh keeps per-app files (Envoy config): DEVMESH_STATE_DIR or XDG state dir."""
    base = os.environ.get("DEVMESH_STATE_DIR") or os.environ.get("XDG_STATE_HOME")
    root = Path(base) if base else Path.home() / ".local" / "state"
    return (root / "devmesh") if not os.environ.get("DEVMESH_STATE_DIR") else root


def envoy_image(project: Project) -> str:
    return os.environ.get("DEVMESH_ENVOY_IMAGE") or project.docker.envoy_image


def _stamp_seconds(stamp: str) -> float | None:
    """A log line's RFC 3339 timestamp (``2024-05-01T10:00:00.123456789Z``) in Unix seconds."""
    from datetime import datetime, timezone

    whole, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        return seconds + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)
    except ValueError:
        return None


def backend_alias(backend: Backend) -> str:
    """The network alias of one service version (service and env names never hold dots)."""
    return f"{backend.service}.{backend.env}"


class DockerApp(LabelledApp):
    """An app's containers, network and Envoy on one Docker engine, found by their labels alone.

    This is all that ``down``, ``ls`` and ``logs`` need, so they still work when devmesh.yaml
    cannot be loaded; ``DockerRuntime`` adds what the project's configuration is needed for.
    """

    name = "docker"
    routes_name = "Envoy's routes"

    def __init__(self, app: str, client: docker.DockerClient | None = None) -> None:
        from devmesh.build import docker_client

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

    def live_environments(self) -> list[Environment]:
        """Environments that have containers, with the services they fork."""
        forks: dict[str, set[str]] = {}
        branches: dict[str, str | None] = {}
        for c in self._containers(role="service"):
            env = c.labels.get(ENV_LABEL, "")
            if env and env != BASELINE_ENV:
                forks.setdefault(env, set()).add(c.labels.get(SERVICE_LABEL, ""))
                branches[env] = c.labels.get(BRANCH_LABEL) or None
        return [Environment(e, tuple(sorted(s)), branches[e]) for e, s in sorted(forks.items())]

    # --- state, from labels ---------------------------------------------------------------

    def environments(self) -> list[EnvironmentState]:
        """Each environment as its containers' labels tell it: no readiness, no preview URL."""
        def describe(service: str, c: Container) -> tuple[ServiceState, str | None]:
            state = ServiceState(service, c.labels.get(ENV_LABEL, ""), c.status, c.labels.get(IMAGE_LABEL, ""),
                                 None if c.status == "running" else False)
            return state, c.labels.get(BRANCH_LABEL) or None

        found = [(c.labels.get(ENV_LABEL, ""), c.labels.get(SERVICE_LABEL, ""), c)
                 for c in self._containers(role="service")]
        return states_from_labels(found, describe)

    # --- down --------------------------------------------------------------------------

    def down(self, env: str, *, baseline: bool = False, sink: Sink = discard) -> list[str]:
        """Remove an environment; the baseline goes with the last environment or with ``baseline``."""
        removed: list[str] = []

        def remove(c: Container) -> None:
            c.remove(force=True, v=True)
            removed.append(c.name)
            sink(Step(f"removed {c.name}"))

        if env != BASELINE_ENV:
            for c in self._containers(env=env, role="service"):
                remove(c)
        remaining = [e for e in self.live_environments() if e.name != env]
        if baseline or not remaining:
            if remaining and baseline:
                for other in remaining:
                    for c in self._containers(env=other.name, role="service"):
                        remove(c)
            for c in self._containers():
                remove(c)
            for net in self.client.networks.list(filters={"label": [f"{MANAGED_BY}=devmesh", f"{APP_LABEL}={self.app}"]}):
                net.remove()
                removed.append(f"network {net.name}")
                sink(Step(f"removed network {net.name}"))
            shutil.rmtree(self.config_dir, ignore_errors=True)
            self.strategies.clear()
        elif env != BASELINE_ENV:
            self._reroute(remaining, sink)
        return removed

    # --- logs --------------------------------------------------------------------------

    def _log_targets(self, env: str, services: Sequence[str]) -> list[Container]:
        chosen: dict[str, Container] = {}
        for c in self._containers(role="service"):
            svc, c_env = c.labels.get(SERVICE_LABEL, ""), c.labels.get(ENV_LABEL)
            if services and svc not in services:
                continue
            if c_env == env or (c_env == BASELINE_ENV and svc not in chosen):
                chosen[svc] = c
        return list(chosen.values())

    def logs(self, env: str, services: Sequence[str], *, follow: bool,
             tail: int | None = None, stop: threading.Event | None = None) -> Iterator[LogLine]:
        """The environment's containers' logs, merged; while following, new containers join."""
        self._check_services(services)
        lines: queue.Queue[LogLine | None] = queue.Queue(maxsize=10_000)
        stop = stop or threading.Event()
        seen: set[str] = set()
        readers: list[threading.Thread] = []

        # A restart (live sync's reload) ends a container's log stream: where it ended is kept
        # and the next scan reads on from there once the container runs again.
        resume: dict[str, float] = {}

        def read(c: Container, tail: int | None, since: float | None = None) -> None:
            svc, c_env = c.labels.get(SERVICE_LABEL, ""), c.labels.get(ENV_LABEL, "")
            last = since
            try:
                for raw in c.logs(stream=True, follow=follow, timestamps=True,
                                  tail="all" if tail is None else tail,
                                  **({"since": since} if since is not None else {})):
                    for text in raw.decode(errors="replace").splitlines():
                        stamp, _, rest = text.partition(" ")
                        lines.put(LogLine(svc, c_env, rest, stamp))
                        last = _stamp_seconds(stamp) or last
                    if stop.is_set():
                        return
            except Exception:  # container removed while streaming
                return
            if follow and not stop.is_set():
                resume[c.id] = (last if last is not None else time.time()) + 1e-6
                seen.discard(c.id)

        def attach_new(tail: int | None) -> None:
            for c in self._log_targets(env, services):
                if c.id not in seen:
                    since = resume.get(c.id)
                    if since is not None and c.status != "running":
                        continue
                    seen.add(c.id)
                    t = threading.Thread(target=read, args=(c, tail if since is None else None, since),
                                         daemon=True)
                    t.start()
                    readers.append(t)

        attach_new(tail)
        if not follow:
            for t in readers:
                t.join()
            collected: list[LogLine] = []
            while not lines.empty():
                item = lines.get()
                if item is not None:
                    collected.append(item)
            yield from sorted(collected, key=lambda l: l.at)
            return
        next_scan = time.monotonic() + 1.0
        while not stop.is_set():
            try:
                item = lines.get(timeout=0.2)
            except queue.Empty:
                item = None
            if item is not None:
                yield item
            if time.monotonic() >= next_scan:
                attach_new(None)  # a container that appeared while following: all of it
                next_scan = time.monotonic() + 1.0


class DockerRuntime(DockerApp):
    """Runs a project's environments on one Docker engine."""

    def __init__(self, project: Project, client: docker.DockerClient | None = None) -> None:
        super().__init__(project.app, client)
        self.project = project

    # --- up ----------------------------------------------------------------------------

    def up(self, environment: Environment, *, sink: Sink = discard,
           images: dict[Backend, str] | None = None, baseline_commit: str = "") -> UpResult:
        """Bring the baseline, the environment's forks and Envoy to the desired state.

        ``images`` maps every backend of the baseline and the environment to a built image.
        """
        assert images is not None, "the session builds images before calling up"
        actions: list[str] = []

        def act(message: str, **kw: Any) -> None:
            actions.append(message)
            sink(Step(message, **kw))

        self.check_gateway_port()
        self._ensure_network(act)
        others = [e for e in self.live_environments() if e.name != environment.name]
        envs = [*others] + ([] if environment.is_baseline else [environment])
        plan = self._plan(envs)
        wanted = {b for b in plan.backends if b.env in (BASELINE_ENV, environment.name)}
        for backend in sorted(wanted, key=lambda b: (b.env != BASELINE_ENV, b.service)):
            branch = environment.branch if backend.env == environment.name else None
            self._ensure_service(backend, images[backend], plan, act, branch=branch,
                                 commit=baseline_commit if backend.env == BASELINE_ENV else "")
        # Services this environment no longer forks (the branch reverted them) go away.
        for c in self._containers(env=environment.name, role="service"):
            if not environment.is_baseline and c.labels.get(SERVICE_LABEL) not in environment.forks:
                c.remove(force=True, v=True)
                act(f"removed {c.name}: the branch no longer changes {c.labels.get(SERVICE_LABEL)}")
        self._apply_routes(plan, act)
        self._wait_ready(plan, {b for b in wanted}, sink)
        state = self.environment_state(environment.name, plan)
        return UpResult(state, bool(actions), tuple(actions))

    def check_gateway_port(self) -> None:
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
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(aliases=[backend_alias(backend)])}
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
        from devmesh.plan.envoy import render_envoy

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
        from devmesh.plan.envoy import write_atomically

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
        from devmesh.plan.envoy import envoy_args

        api = self.client.api
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(aliases=aliases)}
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
        import docker.errors

        try:
            self.client.containers.get(name).remove(force=True, v=True)
        except docker.errors.NotFound:
            pass

    def _ensure_image_present(self, image: str) -> None:
        import docker.errors

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
        import urllib.error
        import urllib.request

        from devmesh.plan.envoy import parse_cluster_health

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
        import docker.errors

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

    # --- release strategies (begin) -------------------------------------------------------

    def _plan(self, envs: Sequence[Environment]) -> RoutePlan:
        """The plan for ``envs`` with the stored strategies that still apply to them."""
        return plan_with_strategies(self.project, envs, self.strategies)

    def route_plan(self) -> RoutePlan:
        """The plan of what runs now: live environments and their strategies."""
        return self._plan(self.live_environments())

    def apply_routes(self, sink: Sink = discard) -> RoutePlan:
        """Re-render Envoy's routes for what runs now and the stored strategies; no container
        is started or restarted (Envoy picks the files up by itself)."""
        envoys = [c for c in self._containers(role="envoy") if c.status == "running"]
        if not envoys or not self._containers(env=BASELINE_ENV, role="service"):
            raise UserInputError(f"app {self.app!r} is not running on docker (no baseline or "
                                 "no Envoy)", hint="'devmesh up' starts it")
        plan = self.route_plan()
        # Only the files: the running Envoy reloads them, whatever image or settings it has.
        self._apply_routes(plan, lambda m, **kw: sink(Step(m, **kw)), ensure_envoy=False)
        return plan

    # --- release strategies (end) ---------------------------------------------------------

    # --- state -------------------------------------------------------------------------

    def environment_state(self, env: str, plan: RoutePlan | None = None) -> EnvironmentState:
        if plan is None:
            plan = plan_for_project(self.project, self.live_environments())
        health = self.cluster_health()
        containers = {(c.labels.get(ENV_LABEL), c.labels.get(SERVICE_LABEL)): c
                      for c in self._containers(role="service")}
        services = []
        branch = None
        for service in self.project.services:
            key = (env, service) if (env, service) in containers else (BASELINE_ENV, service)
            c = containers.get(key)
            if c is None:
                services.append(ServiceState(service, key[0] or BASELINE_ENV, "missing", "", False))
                continue
            if key[0] == env and env != BASELINE_ENV:
                branch = c.labels.get(BRANCH_LABEL) or branch
            cluster = cluster_name(Backend(service, key[0] or BASELINE_ENV))
            services.append(ServiceState(service, key[0] or BASELINE_ENV, c.status,
                                         c.labels.get(IMAGE_LABEL, ""),
                                         health.get(cluster) if c.status == "running" else False))
        url = plan.preview_url(env)
        return EnvironmentState(env, branch, tuple(services), url)

    def environments(self) -> list[EnvironmentState]:
        live = self.live_environments()
        return environment_states(live, bool(self._containers(env=BASELINE_ENV, role="service")),
                                  lambda: plan_for_project(self.project, live), self.environment_state)

    def _reroute(self, remaining: Sequence[Environment], sink: Sink) -> None:
        self._apply_routes(self._plan(remaining), lambda m, **kw: sink(Step(m)))

    def _check_services(self, services: Sequence[str]) -> None:
        check_services(self.project.services, services)
