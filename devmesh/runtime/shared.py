"""What both runtimes do alike, written once.

``LabelledApp`` is the label-only half of a runtime (``DockerApp``, ``KindApp``): which
environments run, their state, ``down``'s decision (the baseline goes with the last
environment), the choice of versions whose logs to follow, and the merged log follower. A
runtime supplies the lookups (``_found``, ``_describe``, ``_log_sources``) and the removals
(``_remove_env``, ``_remove_app``).

``ProjectRuntime`` adds what the project's configuration is needed for: the routing plan with
the stored release strategies, an environment's state with the baseline's versions standing in
for the services it does not fork, and the checks on service names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

from devmesh.errors import DevmeshError, UserInputError
from devmesh.events import Sink, Warning, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend, Environment, RoutePlan, plan_for_project
from devmesh.routes_state import StrategyStore, plan_with_strategies, prune_strategies
from devmesh.runtime.base import EnvironmentState, LogLine, ServiceState
from devmesh.runtime.logmerge import LogSource, merge_logs

if TYPE_CHECKING:
    from devmesh.config import Project

Found = TypeVar("Found")

# (service, env of the version, object) -> the version's state and the branch it carries
Describe = Callable[[str, str, Found], tuple[ServiceState, str | None]]


def environments_from_labels(found: Iterable[tuple[str, str, str | None]]) -> list[Environment]:
    """The live environments from ``(env, service, branch)`` of each running version: the
    services each forks, and its branch."""
    forks: dict[str, set[str]] = {}
    branches: dict[str, str | None] = {}
    for env, service, branch in found:
        if env and env != BASELINE_ENV:
            forks.setdefault(env, set()).add(service)
            branches[env] = branch or branches.get(env)
    return [Environment(e, tuple(sorted(s)), branches[e]) for e, s in sorted(forks.items())]


def chosen_versions(found: Iterable[tuple[str, str, Found]], env: str,
                    services: Sequence[str] = ()) -> list[tuple[str, str, Found]]:
    """Of ``(env, service, object)``, what environment ``env`` runs: for each service (of
    ``services``, or all) its fork's objects, else the baseline's; ordered by service."""
    by_service: dict[str, dict[str, list[Found]]] = {}
    for its_env, service, obj in found:
        if services and service not in services:
            continue
        by_service.setdefault(service, {}).setdefault(its_env, []).append(obj)
    out = []
    for service, envs in sorted(by_service.items()):
        chosen = env if env in envs else BASELINE_ENV
        out += [(chosen, service, obj) for obj in envs.get(chosen, [])]
    return out


def check_services(known: Iterable[str], services: Sequence[str]) -> None:
    """A UserInputError for the first of ``services`` that is not one of ``known``."""
    names = list(known)
    unknown = [s for s in services if s not in names]
    if unknown:
        raise UserInputError(f"unknown service {unknown[0]!r}; services: {', '.join(names)}")


class LabelledApp(Generic[Found]):
    """An app's versions on one runtime, found by their labels alone (see the module's
    docstring). Without the project, routes are left as they are (said, not hidden) and any
    service name is taken."""

    name = "runtime"
    routes_name = "the routes"
    app: str
    strategies: StrategyStore

    # --- what a runtime supplies --------------------------------------------------------------

    def _found(self) -> list[tuple[str, str, Found]]:
        """``(env, service, object)`` for every running service version of the app."""
        raise NotImplementedError

    def _branch_of(self, obj: Found) -> str | None:
        """The branch a version was started from (forks carry it)."""
        raise NotImplementedError

    def _label_describer(self) -> Describe[Found]:
        """How a version's state is read without the project."""
        raise NotImplementedError

    def _log_found(self) -> list[tuple[str, str, Found]]:
        """``(env, service, object)`` for everything whose log can be read (default: the
        versions ``_found`` lists)."""
        return self._found()

    def _log_sources(self, chosen: Sequence[tuple[str, str, Found]]) -> list[LogSource]:
        """The log sources of the chosen ``(env, service, object)``."""
        raise NotImplementedError

    log_errors: tuple[type[BaseException], ...] = (Exception,)

    def _remove_env(self, env: str, sink: Sink) -> list[str]:
        """Remove one environment's own versions; what went."""
        raise NotImplementedError

    def _remove_app(self, sink: Sink) -> list[str]:
        """Remove everything of the app: every version, the baseline, the gateway; what went."""
        raise NotImplementedError

    def _reroute(self, remaining: Sequence[Environment], sink: Sink) -> None:
        """After an environment went: the routes of those that stay (needs the project)."""
        del remaining
        sink(Warning(f"{self.routes_name} were not re-rendered without devmesh.yaml: they still "
                     "name the removed environment until the next 'devmesh up' or 'down'"))

    def _check_services(self, services: Sequence[str]) -> None:
        """Refuse services the app does not have (only the project knows them all)."""
        del services

    # --- what follows from it --------------------------------------------------------------

    def live_environments(self) -> list[Environment]:
        """Environments that run versions of their own, with the services they fork."""
        return environments_from_labels((env, service, self._branch_of(obj))
                                        for env, service, obj in self._found())

    def environments(self) -> list[EnvironmentState]:
        """Each environment as its versions' labels tell it: the services it forks and the
        baseline's for the rest; no preview URL."""
        describe = self._label_describer()
        by_env: dict[str, dict[str, Found]] = {}
        for env, service, obj in self._found():
            by_env.setdefault(env, {})[service] = obj
        baseline = by_env.pop(BASELINE_ENV, {})
        out = []
        for env, forks in ([(BASELINE_ENV, {})] if baseline else []) + sorted(by_env.items()):
            services = []
            branch = None
            for service in sorted(set(baseline) | set(forks)):
                if service in forks:
                    state, its_branch = describe(service, env, forks[service])
                    branch = its_branch or branch
                else:
                    state, _ = describe(service, BASELINE_ENV, baseline[service])
                services.append(state)
            out.append(EnvironmentState(env, branch, tuple(services), None))
        return out

    def down(self, env: str, *, baseline: bool = False, sink: Sink = discard) -> list[str]:
        """Remove an environment; the baseline goes with the last environment or with
        ``baseline`` (and with it every other environment and the stored strategies)."""
        removed = self._remove_env(env, sink) if env != BASELINE_ENV else []
        remaining = [e for e in self.live_environments() if e.name != env]
        if baseline or not remaining:
            removed += self._remove_app(sink)
            self.strategies.clear()
        elif removed:
            self._reroute(remaining, sink)
        return removed

    def logs(self, env: str, services: Sequence[str], *, follow: bool, tail: int | None = None,
             stop: threading.Event | None = None) -> Iterator[LogLine]:
        """The environment's logs (its forks, the baseline for the rest), merged; while
        following, versions that start later join."""
        self._check_services(services)

        def sources() -> list[LogSource]:
            return self._log_sources(chosen_versions(self._log_found(), env, services))

        return merge_logs(sources, follow=follow, tail=tail, stop=stop, gone=self.log_errors)


class ProjectRuntime(LabelledApp[Found]):
    """The half of a runtime that needs the project (see the module's docstring)."""

    project: Project

    def _describer(self) -> Describe[Found]:
        """How a version's state is read with the project (readiness included)."""
        return self._label_describer()

    def _has_baseline(self) -> bool:
        return any(env == BASELINE_ENV for env, _, _ in self._found())

    def _plan(self, envs: Sequence[Environment]) -> RoutePlan:
        """The plan for ``envs`` with the stored strategies that apply to them (a read)."""
        return plan_with_strategies(self.project, envs, self.strategies)

    def _plan_to_apply(self, envs: Sequence[Environment]) -> RoutePlan:
        """The plan for ``envs`` that is about to be applied: strategies that no longer apply
        (their environment went, or no longer forks the service) leave the store."""
        prune_strategies(self.project, envs, self.strategies)
        return self._plan(envs)

    def _up_plan(self, environment: Environment,
                 images: Mapping[Backend, str]) -> tuple[RoutePlan, list[Backend]]:
        """The plan once ``environment`` runs beside the others, and the backends ``up``
        brings up (the baseline's first), each of which ``images`` must hold."""
        others = [e for e in self.live_environments() if e.name != environment.name]
        plan = self._plan_to_apply([*others] + ([] if environment.is_baseline else [environment]))
        wanted = sorted((b for b in plan.backends if b.env in (BASELINE_ENV, environment.name)),
                        key=lambda b: (b.env != BASELINE_ENV, b.service))
        missing = [f"{b.service} ({b.env})" for b in wanted if b not in images]
        if missing:
            raise DevmeshError(f"no image was built for {', '.join(missing)}")
        return plan, wanted

    def route_plan(self) -> RoutePlan:
        """The plan of what runs now: live environments and their strategies."""
        return self._plan(self.live_environments())

    def environment_state(self, env: str, plan: RoutePlan | None = None) -> EnvironmentState:
        """One environment: its forks, the baseline's versions for the services it does not
        fork, and those neither runs as missing."""
        if plan is None:
            plan = plan_for_project(self.project, self.live_environments())
        found = {(e, service): obj for e, service, obj in self._found()}
        describe = self._describer()
        services = []
        branch = None
        for service in self.project.services:
            its_env = env if (env, service) in found else BASELINE_ENV
            if (its_env, service) not in found:
                services.append(ServiceState(service, its_env, "missing", "", False))
                continue
            state, its_branch = describe(service, its_env, found[(its_env, service)])
            if its_env == env and env != BASELINE_ENV:
                branch = its_branch or branch
            services.append(state)
        return EnvironmentState(env, branch, tuple(services), plan.preview_url(env))

    def environments(self) -> list[EnvironmentState]:
        """The baseline (when it runs) and every live environment, each with its readiness
        and preview URL."""
        live = self.live_environments()
        has_baseline = self._has_baseline()
        if not live and not has_baseline:
            return []
        plan = plan_for_project(self.project, live)
        names = ([BASELINE_ENV] if has_baseline else []) + [e.name for e in live]
        return [self.environment_state(name, plan) for name in names]

    def _check_services(self, services: Sequence[str]) -> None:
        check_services(self.project.services, services)
