"""What every runtime offers, and the state it reports."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from devmesh.events import Sink
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Environment, RoutePlan


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


def environment_states(live: Sequence[Environment], has_baseline: bool,
                       plan: Callable[[], RoutePlan],
                       state_of: Callable[[str, RoutePlan], EnvironmentState]) -> list[EnvironmentState]:
    """The baseline (when it runs) and every live environment, each as ``state_of`` reports it."""
    if not live and not has_baseline:
        return []
    routes = plan()
    names = ([BASELINE_ENV] if has_baseline else []) + [e.name for e in live]
    return [state_of(name, routes) for name in names]


class Runtime(Protocol):
    """A place to run environments: docker (containers + Envoy) or kind (Kubernetes + Istio)."""

    name: str

    def up(self, environment: Environment, *, sink: Sink) -> UpResult: ...

    def down(self, env: str, *, baseline: bool, sink: Sink) -> list[str]: ...

    def environments(self) -> list[EnvironmentState]: ...

    def logs(self, env: str, services: Sequence[str], *, follow: bool,
             tail: int | None = None) -> Iterator[LogLine]: ...
