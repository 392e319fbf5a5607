"""Recorded state for the TUI tests: a fake runtime, a branch selection, an `up` that replays
the events a real one emitted. Deterministic: fixed names, images, times and log lines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from devmesh.config import Project
from devmesh.environments import Selection
from devmesh.errors import DevmeshError
from devmesh.events import BuildDone, BuildProgress, Event, Sink, Step, discard
from devmesh.naming import env_name
from devmesh.plan.routing import Environment, RoutePlan
from devmesh.routes_state import StrategyStore, plan_with_strategies
from devmesh.runtime.base import EnvironmentState, LogLine, ServiceState, UpResult
from devmesh.app.environments import UpOutcome
from devmesh.workspace import Branch

BRANCH = "feature/cheaper-stock"
ENV = env_name(BRANCH, baseline_branch="main")
OTHER_BRANCH = "fix/checkout-total"
OTHER_ENV = env_name(OTHER_BRANCH, baseline_branch="main")
NOW = datetime(2025, 5, 2, 12, 0, 0, tzinfo=timezone.utc)
EVENT_AT = NOW.timestamp()
SERVICES = ("api", "web", "worker")
PORT = 8080


def image(service: str, tag: str) -> str:
    return f"devmesh.local/shop/{service}:{tag}"


def selection(branch: str = BRANCH, forks: tuple[str, ...] = ("api",)) -> Selection:
    env = env_name(branch, baseline_branch="main")
    return Selection(Branch(branch, "c0ffee" * 6 + "c0ff", env, True), Environment(env, forks, branch))


def baseline_state() -> EnvironmentState:
    return EnvironmentState(
        "baseline", None,
        tuple(ServiceState(s, "baseline", "running", image(s, "0a1b2c3d4e5f6071"), True) for s in SERVICES),
        f"http://shop.localhost:{PORT}/",
    )


def branch_state(env: str = ENV, branch: str = BRANCH, forks: tuple[str, ...] = ("api",),
                 ready: bool = True) -> EnvironmentState:
    services = []
    for s in SERVICES:
        if s in forks:
            services.append(ServiceState(s, env, "running", image(s, "9f86d081884c7d65"), ready))
        else:
            services.append(ServiceState(s, "baseline", "running", image(s, "0a1b2c3d4e5f6071"), True))
    return EnvironmentState(env, branch, tuple(services), f"http://{env}.shop.localhost:{PORT}/")


def log_lines(count: int = 12, env: str = ENV) -> list[LogLine]:
    """Requests as the starter's services log them, in a fixed order."""
    out = []
    for i in range(count):
        service = SERVICES[i % 3]
        where = env if service == "api" else "baseline"
        path = ("/", "/stock/42", "/checkout")[i % 3]
        status = 500 if i == 7 else 200
        out.append(LogLine(service, where, f"GET {path} x-devmesh-env={env} status={status}",
                           f"2025-05-02T11:59:{i:02d}.000000000Z"))
    return out


def mesh_records(env: str = ENV, count: int = 3, at: float | None = None) -> list[str]:
    """Access log lines in the real record format: ``count`` three-hop requests through the
    gateway by ``env``'s preview host (api forked), and as many to the baseline."""
    import json

    from devmesh.traffic.records import FORMAT, GATEWAY

    start = time.time() - 5 if at is None else at
    out = []
    for i in range(count):
        for preview in (True, False):
            rid = f"{'p' if preview else 'b'}{i}"
            header = env if preview else None
            api = env if preview else "baseline"
            t = start + i * 0.1 + (0.05 if preview else 0)
            base = {"devmesh": FORMAT, "kind": "request", "id": rid, "route_header": header,
                    "method": "GET", "path": "/", "flags": "-", "attempts": 1, "status": 200}
            out += [
                json.dumps(dict(base, listener="mesh:8000", time=f"{t + 0.002:.3f}", authority="stock:8000",
                                peer=f"10.1.0.{3 if preview else 2}", upstream="stock.baseline", ms=1,
                                rule="stock-baseline")),
                json.dumps(dict(base, listener="mesh:8000", time=f"{t + 0.001:.3f}", authority="api:8000",
                                peer="10.1.0.1", upstream=f"api.{api}", ms=3, rule=f"api-{api}")),
                json.dumps(dict(base, listener=GATEWAY, time=f"{t:.3f}", peer="172.18.0.1",
                                authority=f"{env + '.' if preview else ''}shop.localhost:8080",
                                upstream="web.baseline", ms=6, rule=f"preview-{env}" if preview else "baseline")),
            ]
    return out


@dataclass
class FakeRuntime:
    """A runtime that serves recorded state; ``down``, ``logs`` and ``route_plan`` (the recorded
    environments with the strategies in its store) behave like the real one."""

    project: Project
    strategies: StrategyStore
    states: list[EnvironmentState] = field(default_factory=lambda: [baseline_state(), branch_state()])
    lines: list[LogLine] = field(default_factory=log_lines)
    error: DevmeshError | None = None
    name: str = "docker"
    downs: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    live: list[LogLine] = field(default_factory=list)  # handed out while following
    stopped: threading.Event = field(default_factory=threading.Event)
    records: list[str] = field(default_factory=mesh_records)
    callers: dict[str, str] = field(default_factory=lambda: {
        "10.1.0.1": "web@baseline", "10.1.0.2": "api@baseline", "10.1.0.3": f"api@{ENV}"})
    live_records: list[str] = field(default_factory=list)  # handed out while following

    @property
    def app(self) -> str:
        return self.project.app

    def mesh_log(self, *, follow: bool, tail: int | None = None,
                 stop: threading.Event | None = None) -> Iterator[str]:
        if self.error is not None:
            raise self.error
        yield from self.records
        stop = stop or threading.Event()
        while follow and not stop.is_set():
            if self.live_records:
                yield self.live_records.pop(0)
            else:
                stop.wait(0.01)

    def mesh_callers(self) -> dict[str, str]:
        return dict(self.callers)

    def upstream_of(self, cluster: str) -> tuple[str, str] | None:
        from devmesh.traffic.records import dotted_upstream

        return dotted_upstream(cluster)

    def environments(self) -> list[EnvironmentState]:
        if self.error is not None:
            raise self.error
        return list(self.states)

    def route_plan(self) -> RoutePlan:
        if self.error is not None:
            raise self.error
        envs = [Environment(s.name, tuple(v.service for v in s.services if v.env == s.name), s.branch)
                for s in self.states if not s.is_baseline]
        return plan_with_strategies(self.project, envs, self.strategies)

    def logs(self, env: str, services: Sequence[str], *, follow: bool, tail: int | None = None,
             stop: threading.Event | None = None) -> Iterator[LogLine]:
        if self.error is not None:
            raise self.error
        self.streams.append(env)
        yield from self.lines
        stop = stop or threading.Event()
        while follow and not stop.is_set():
            if self.live:
                yield self.live.pop(0)
            else:
                stop.wait(0.01)
        self.stopped.set()

    def down(self, env: str, *, baseline: bool = False, sink: Sink = discard) -> list[str]:
        self.downs.append(env)
        removed = []
        for state in [s for s in self.states if s.name == env]:
            for service in state.services:
                if service.env == env:
                    name = f"devmesh-shop-{env}-{service.service}"
                    removed.append(name)
                    sink(Step(f"removed {name}", at=EVENT_AT))
            self.states.remove(state)
        return removed


def up_events(service: str = "api") -> list[Event]:
    """What a real `up` of the branch emitted (condensed)."""
    return [
        Step("baseline: main at 0123456789ab", changed=False, at=EVENT_AT),
        BuildProgress(f"{service}: building {image(service, '9f86d081884c7d65')} (context 4.1 KiB)",
                      service=service, at=EVENT_AT),
        BuildProgress(f"{service}: Step 1/4 : FROM devmesh/python-base:bookworm", service=service, step=1,
                      steps=4, at=EVENT_AT),
        BuildProgress(f"{service}: Step 3/4 : COPY . /app", service=service, step=3, steps=4, at=EVENT_AT),
        BuildDone(f"{service}: built", service=service, image=image(service, "9f86d081884c7d65"), seconds=1.5,
                  at=EVENT_AT),
        Step(f"started devmesh-shop-{ENV}-{service}", service=service, env=ENV, at=EVENT_AT),
        Step("routes updated: 1 environment(s) beside the baseline", at=EVENT_AT),
    ]


@dataclass
class FakeUp:
    """An `up` that replays recorded events, adds the branch's environment, and can block or fail."""

    runtime: FakeRuntime
    events: list[Event] = field(default_factory=up_events)
    error: DevmeshError | None = None
    hold: threading.Event | None = None  # set it to let a held `up` finish
    calls: int = 0

    def __call__(self, sink: Sink) -> UpOutcome:
        self.calls += 1
        for event in self.events:
            sink(event)
        if self.hold is not None:
            while not self.hold.wait(0.01):
                pass
        if self.error is not None:
            raise self.error
        state = branch_state()
        self.runtime.states = [s for s in self.runtime.states if s.name != ENV] + [state]
        return UpOutcome(selection(), UpResult(state, True, ("started",)))


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    """Poll a plain predicate from a test (for state changed by worker threads)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def without(states: list[EnvironmentState], name: str) -> list[EnvironmentState]:
    return [s for s in states if s.name != name]


def not_ready(state: EnvironmentState, service: str) -> EnvironmentState:
    return replace(state, services=tuple(replace(s, ready=False, state="restarting") if s.service == service else s
                                         for s in state.services))
