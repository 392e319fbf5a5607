"""What every runtime offers (the ``Runtime`` protocol), and the state it reports.

Two runtimes implement it: docker (``devmesh.runtime.docker``: containers and one Envoy) and
kind (``devmesh.runtime.kind``: Kubernetes and Istio). Callers hold a ``Runtime`` and never ask
which one it is. ``RuntimeApp`` is the part that needs no project — an app's objects found by
their labels alone — which ``down``, ``ls`` and ``logs`` fall back to when devmesh.yaml does not
load. What both runtimes do alike is written once in ``devmesh.runtime.shared``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from devmesh.events import Sink, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend, Environment, RoutePlan
from devmesh.routes_state import StrategyStore
from devmesh.sync.transport import Transport

if TYPE_CHECKING:
    import docker


@dataclass(frozen=True)
class ServiceState:
    """One running (or stopped) version of a service."""

    service: str
    env: str
    state: str  # running, exited, restarting, created, missing
    image: str
    ready: bool | None = None
    detail: str = ""


@dataclass(frozen=True)
class EnvironmentState:
    name: str
    branch: str | None
    services: tuple[ServiceState, ...]
    preview_url: str | None

    @property
    def is_baseline(self) -> bool:
        return self.name == BASELINE_ENV

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "branch": self.branch,
            "baseline": self.is_baseline,
            "preview_url": self.preview_url,
            "services": [asdict(s) for s in self.services],
        }


@dataclass(frozen=True)
class UpResult:
    environment: EnvironmentState
    changed: bool
    actions: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class LogLine:
    service: str
    env: str
    text: str
    at: str = ""  # RFC 3339 timestamp from the runtime, when it gives one


@dataclass(frozen=True)
class Health:
    """The engine or cluster behind a runtime: reachable or not, in one line."""

    ok: bool
    text: str


class RuntimeApp(Protocol):
    """An app's environments on one runtime, found by their labels alone (no project needed)."""

    name: str
    app: str

    def live_environments(self) -> list[Environment]:
        """The environments beside the baseline that run now, with the services they fork."""
        ...

    def environments(self) -> list[EnvironmentState]:
        """The baseline (when it runs) and every live environment, with each service's state."""
        ...

    def down(self, env: str, *, baseline: bool = False, sink: Sink = discard) -> list[str]:
        """Remove an environment (the baseline goes with the last one, or with ``baseline``);
        what was removed."""
        ...

    def logs(self, env: str, services: Sequence[str], *, follow: bool, tail: int | None = None,
             stop: threading.Event | None = None) -> Iterator[LogLine]:
        """The environment's logs (its forks, the baseline for the rest), merged in time order;
        while following, versions that start later join until ``stop`` is set."""
        ...

    def mesh_log(self, *, follow: bool, tail: int | None = None,
                 stop: threading.Event | None = None) -> Iterator[str]:
        """The mesh's request records: its proxies' access log lines (devmesh.traffic.records),
        in time order; while following, until ``stop`` is set."""
        ...

    def mesh_callers(self) -> dict[str, str]:
        """The address of each running service version → ``service@env`` (who called a hop)."""
        ...

    def upstream_of(self, cluster: str) -> tuple[str, str] | None:
        """The (service, env) a proxy's upstream cluster stands for; None if not a version."""
        ...


class Runtime(RuntimeApp, Protocol):
    """A place to run a project's environments: docker (containers + Envoy) or kind
    (Kubernetes + Istio)."""

    strategies: StrategyStore

    @property
    def image_engine(self) -> docker.DockerClient:
        """The Docker engine that builds this runtime's images."""
        ...

    def prepare(self, *, sink: Sink = discard) -> None:
        """Create what the runtime needs and lacks before a first ``up`` (kind: the cluster,
        registry and Istio, unless an existing cluster was given); idempotent."""
        ...

    def preflight(self) -> None:
        """Refuse early, with what to do, what would make ``up`` fail at once (docker: another
        program holds the gateway port; kind: the API server does not answer)."""
        ...

    def health(self) -> Health:
        """Whether the engine or the cluster answers, in one line (never raises)."""
        ...

    def up(self, environment: Environment, *, images: Mapping[Backend, str], baseline_commit: str = "",
           sink: Sink = discard) -> UpResult:
        """Bring the baseline and ``environment`` to the desired state and route them;
        ``images`` holds a built image for every backend of both, ``baseline_commit`` is the
        baseline's commit (recorded on its versions)."""
        ...

    def environment_state(self, env: str, plan: RoutePlan | None = None) -> EnvironmentState:
        """One environment: its forks, the baseline's versions for the rest."""
        ...

    def route_plan(self) -> RoutePlan:
        """The routing plan of what runs now, with the stored release strategies (a read:
        nothing is written)."""
        ...

    def apply_routes(self, sink: Sink = discard) -> RoutePlan:
        """Route what runs now with the stored strategies; nothing is restarted."""
        ...

    def sync_transport(self) -> Transport:
        """How live sync reaches this runtime's running service versions."""
        ...
