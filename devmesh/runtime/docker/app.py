"""The docker runtime's containers, network and Envoy on one engine, found by their labels alone.

Everything is found by labels (never by name patterns), so ``down`` leaves nothing behind and
an interrupted ``up`` is completed by the next ``up`` or ``down``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import docker

from devmesh.build import docker_client
from devmesh.dirs import state_dir
from devmesh.errors import DevmeshError, UserInputError
from devmesh.events import Sink, Step
from devmesh.naming import BASELINE_ENV
from devmesh.plan.k8s import APP_LABEL, ENV_LABEL, MANAGED_BY, SERVICE_LABEL
from devmesh.plan.routing import Backend
from devmesh.routes_state import StrategyStore
from devmesh.runtime.base import ServiceState
from devmesh.runtime.logmerge import LogSource, Reader, merge_logs
from devmesh.runtime.shared import Describe, LabelledApp
from devmesh.traffic.records import dotted_upstream

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

    # --- the mesh's request records (devmesh.traffic) ------------------------------------

    def mesh_log(self, *, follow: bool, tail: int | None = None,
                 stop: threading.Event | None = None) -> Iterator[str]:
        """Envoy's access log (its stdout: one JSON record a request); while following, a
        replaced Envoy's log joins, until ``stop`` is set."""
        def reader(c: Container) -> Reader:
            def read(follow: bool, tail: int | None, since: float | None) -> Iterable[str]:
                for raw in c.logs(stream=True, follow=follow, timestamps=True, stdout=True, stderr=False,
                                  tail="all" if tail is None else tail, since=since):
                    yield from raw.decode(errors="replace").splitlines()

            return read

        def sources() -> list[LogSource]:
            return [LogSource(str(c.id), "envoy", BASELINE_ENV, reader(c), running=c.status == "running",
                              resumable=True)
                    for c in self._containers(role="envoy")]

        if not follow and not sources():
            raise UserInputError(f"app {self.app!r} has no Envoy on the docker runtime: nothing has "
                                 "routed a request yet", hint="'devmesh up' starts it")
        for line in merge_logs(sources, follow=follow, tail=tail, stop=stop, gone=self.log_errors):
            yield line.text

    def mesh_callers(self) -> dict[str, str]:
        """The address of each running service version on the app's network → ``service@env``."""
        out = {}
        for env, service, c in self._found():
            if c.status != "running":
                continue
            networks = (c.attrs.get("NetworkSettings") or {}).get("Networks") or {}
            address = (networks.get(self.network_name) or {}).get("IPAddress")
            if address:
                out[address] = f"{service}@{env}"
        return out

    def upstream_of(self, cluster: str) -> tuple[str, str] | None:
        """The version an Envoy cluster stands for (``<service>.<env>``)."""
        return dotted_upstream(cluster)

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
