"""The strategy use cases on the kind runtime (the real KindRuntime, in process, against the
fake cluster): canary steps, sticky headers, replacing and ending a strategy, the target checks,
and the routes with explained requests."""

from __future__ import annotations

from typing import Any

import pytest

from devmesh.app import strategies
from devmesh.config import Project
from devmesh.errors import UserInputError
from devmesh.events import Event
from devmesh.plan.strategy import Canary, Mirror, Switch
from devmesh.runtime.kind.runtime import KindRuntime
from tests.kind.conftest import _state_dir, fake, project
from tests.kind.fake_cluster import FakeCluster
from tests.kind.test_kind_strategies import routes, running

__all__ = ["_state_dir", "fake", "project", "running"]


def canary(project: Project, rt: KindRuntime, **given: Any) -> Canary:
    """``strategies.canary`` on api in environment one; the canary it applied."""
    applied = strategies.canary(project, rt, "api", "one", **given).strategy
    assert isinstance(applied, Canary)
    return applied


@pytest.fixture
def rt(running: KindRuntime) -> KindRuntime:
    """The kind runtime with environment one running, which forks api."""
    return running


def test_a_canary_starts_at_the_presets_first_step_and_walks_its_steps(
        project: Project, rt: KindRuntime, fake: FakeCluster) -> None:
    applied = strategies.canary(project, rt, "api", "one")
    assert applied.strategy == Canary("api", "one", 10, None, (10, 25, 50, 100), "canary")
    assert applied.summary == "api: canary: 10% of requests without x-devmesh-env go to one's version of api"
    assert applied.replaced is None
    assert [d["weight"] for d in routes(fake, "api")["api-canary"]["route"]] == [90, 10]
    for step in (25, 50, 100):
        assert canary(project, rt, next_step=True).weight == step
    assert [d["destination"]["subset"] for d in routes(fake, "api")["api-canary"]["route"]] == ["one"]
    with pytest.raises(UserInputError, match="api's canary is at 100%, the last step of preset 'canary'") as caught:
        strategies.canary(project, rt, "api", "one", next_step=True)
    assert caught.value.hint == "'devmesh switch api' sends all of it; 'devmesh switch api --back' ends the canary"
    assert canary(project, rt, weight=30).weight == 30


def test_the_sticky_header_is_kept_until_turned_off(project: Project, rt: KindRuntime) -> None:
    assert canary(project, rt, sticky="X-User-Id").sticky_header == "x-user-id"
    kept = canary(project, rt, next_step=True)
    assert kept.weight == 25 and kept.sticky_header == "x-user-id"
    off = canary(project, rt, sticky="")
    assert off.sticky_header is None and off.weight == 10
    with pytest.raises(UserInputError, match="--sticky-header: 'x user' is not a header name"):
        strategies.canary(project, rt, "api", "one", sticky="x user")
    with pytest.raises(UserInputError, match="x-devmesh-env is the routing header"):
        strategies.canary(project, rt, "api", "one", sticky="X-Devmesh-Env")


def test_another_kind_replaces_the_strategy_and_says_which(
        project: Project, rt: KindRuntime, fake: FakeCluster) -> None:
    strategies.canary(project, rt, "api", "one", weight=20)
    events: list[Event] = []
    applied = strategies.mirror(project, rt, "api", "one", sink=events.append)
    assert applied.strategy == Mirror("api", "one", 100.0, "mirror")
    assert applied.replaced_summary == "canary: 20% of requests without x-devmesh-env go to one's version of api"
    assert "api-mirror" in routes(fake, "api") and "api-canary" not in routes(fake, "api")
    assert events  # the runtime reported applying the routes to the sink given
    switched = strategies.switch(project, rt, "api", "one")
    assert switched.strategy == Switch("api", "one", "red-black") and switched.replaced is not None
    assert strategies.mirror(project, rt, "api", "one", percent=25).strategy == Mirror("api", "one", 25, "mirror")


def test_ending_a_strategy(project: Project, rt: KindRuntime, fake: FakeCluster) -> None:
    assert strategies.end(project, rt, "api") is None  # nothing to end
    strategies.switch(project, rt, "api", "one")
    with pytest.raises(UserInputError, match="api has a switch, not a canary: switch: every request") as caught:
        strategies.end(project, rt, "api", "canary")
    assert caught.value.hint == "'devmesh switch api --back' removes any strategy"
    assert "api-switch" in routes(fake, "api")  # refused: still there
    assert strategies.end(project, rt, "api") == Switch("api", "one", "red-black")
    assert list(routes(fake, "api")) == ["api-one", "api-baseline"]
    assert rt.strategies.load() == ()


def test_a_strategy_needs_a_running_fork_of_the_service(project: Project, rt: KindRuntime) -> None:
    with pytest.raises(UserInputError, match="the baseline cannot be a strategy's target"):
        strategies.switch(project, rt, "api", "baseline")
    with pytest.raises(UserInputError, match=r"environment two is not running \(running: one\)"):
        strategies.switch(project, rt, "api", "two")
    with pytest.raises(UserInputError, match=r"runs no version of its own of stock \(it forks: api\)"):
        strategies.canary(project, rt, "stock", "one")
    with pytest.raises(UserInputError, match="unknown service 'nope'; services: web, api, stock"):
        strategies.check_service(project, "nope")
    with pytest.raises(UserInputError, match="unknown strategy preset|no strategy preset"):
        strategies.canary(project, rt, "api", "one", preset="nope")
    assert rt.strategies.load() == ()


def test_routes_explain_a_request_on_the_environments_preview_host(project: Project, rt: KindRuntime) -> None:
    strategies.canary(project, rt, "api", "one", weight=20)
    requests = strategies.parse_requests(["GET /cart -H 'x-user-id: 42'"])
    view = strategies.routes(rt, "one", requests)
    assert [s.kind for s in view.plan.strategies] == ["canary"]
    (explained,) = view.explained
    assert explained.text == "GET /cart -H 'x-user-id: 42'"
    assert explained.request.host == view.plan.preview_host("one")
    assert explained.hops and explained.hops[0].at == "gateway"
    assert strategies.routes(rt, None, requests).explained[0].request.host is None
    with pytest.raises(UserInputError, match=r"environment two is not running \(running: one\)"):
        strategies.routes(rt, "two")
    with pytest.raises(UserInputError, match="^--explain: "):
        strategies.parse_requests(["GET /cart -H"])
