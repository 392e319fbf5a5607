"""What every runtime offers, and the state it reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from devmesh.errors import UserInputError
from devmesh.events import Sink, Warning, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Environment, RoutePlan
from devmesh.routes_state import StrategyStore


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


Found = TypeVar("Found")


def states_from_labels(found: Iterable[tuple[str, str, Found]],
                       describe: Callable[[str, Found], tuple[ServiceState, str | None]]) -> list[EnvironmentState]:
    """Each environment from what carries its labels alone, ``(env, service, object)``: the
    services it forks and the baseline's for the rest; ``describe`` gives an object's state
    and branch. Without the project there is no readiness check and no preview URL."""
    by_env: dict[str, dict[str, Found]] = {}
    for env, service, obj in found:
        by_env.setdefault(env, {})[service] = obj
    baseline = by_env.pop(BASELINE_ENV, {})
    out = []
    for env, forks in ([(BASELINE_ENV, {})] if baseline else []) + sorted(by_env.items()):
        services = []
        branch = None
        for service in sorted(set(baseline) | set(forks)):
            state, its_branch = describe(service, forks[service] if service in forks else baseline[service])
            if service in forks:
                branch = its_branch or branch
            services.append(state)
        out.append(EnvironmentState(env, branch, tuple(services), None))
    return out


class LabelledApp:
    """What both runtimes' label-only halves (``DockerApp``, ``KindApp``) do alike when there
    is no project: routes are left as they are (said, not hidden), any service name is taken."""

    routes_name = "the routes"

    def _reroute(self, remaining: Sequence[Environment], sink: Sink) -> None:
        """After an environment went: the routes of those that stay (needs the project)."""
        del remaining
        sink(Warning(f"{self.routes_name} were not re-rendered without devmesh.yaml: they still "
                     "name the removed environment until the next 'devmesh up' or 'down'"))

    def _check_services(self, services: Sequence[str]) -> None:
        """Refuse services the app does not have (only the project knows them all)."""
        del services


def check_services(known: Iterable[str], services: Sequence[str]) -> None:
    """A UserInputError for the first of ``services`` that is not one of ``known``."""
    names = list(known)
    unknown = [s for s in services if s not in names]
    if unknown:
        raise UserInputError(f"unknown service {unknown[0]!r}; services: {', '.join(names)}")


class Runtime(Protocol):
    """A place to run environments: docker (containers + Envoy) or kind (Kubernetes + Istio)."""

    name: str
    strategies: StrategyStore

    def up(self, environment: Environment, *, sink: Sink) -> UpResult: ...

    def down(self, env: str, *, baseline: bool, sink: Sink) -> list[str]: ...

    def environments(self) -> list[EnvironmentState]: ...

    def logs(self, env: str, services: Sequence[str], *, follow: bool,
             tail: int | None = None) -> Iterator[LogLine]: ...

    def live_environments(self) -> list[Environment]: ...

    def route_plan(self) -> RoutePlan: ...

    def apply_routes(self, sink: Sink = discard) -> RoutePlan: ...
