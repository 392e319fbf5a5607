"""The runtime contract (devmesh.runtime.base.Runtime): every runtime behaves the same here,
the docker runtime on the real engine, the kind runtime on the fake cluster and on the real
API server (see conftest.py)."""

from __future__ import annotations

import inspect

import pytest

from devmesh.errors import DevmeshError
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend, Environment
from devmesh.plan.strategy import Canary
from devmesh.runtime.base import Runtime, RuntimeApp
from devmesh.runtime.docker import DockerApp, DockerRuntime
from devmesh.runtime.kind.runtime import KindApp, KindRuntime
from tests.runtime_contract.conftest import RUNTIMES, Harness

ONE = Environment("one", ("api",), "feature/one")
TWO = Environment("two", ("stock",), "feature/two")


def _members(*protocols: type) -> dict[str, object]:
    """The protocols' members: methods and properties by name, attributes as None."""
    out: dict[str, object] = {}
    for protocol in protocols:
        out |= {n: None for n in getattr(protocol, "__annotations__", {})}
        out |= {n: v for n, v in vars(protocol).items() if not n.startswith("_")}
    return out


@pytest.mark.parametrize(("protocols", "classes"), [
    ((Runtime, RuntimeApp), (DockerRuntime, KindRuntime)),
    ((RuntimeApp,), (DockerApp, KindApp)),
], ids=["Runtime", "RuntimeApp"])
def test_every_runtime_has_every_method_of_the_protocol_with_its_parameters(
        protocols: tuple[type, ...], classes: tuple[type, ...]) -> None:
    members = _members(*protocols)
    assert {"down", "logs", "environments", "live_environments", "name", "app"} <= set(members)
    for klass in classes:
        for name, wanted in members.items():
            if wanted is None:
                continue  # an attribute: the scenarios below read it on an instance
            have = getattr(klass, name, None)
            assert have is not None, f"{klass.__name__} lacks {name}"
            if isinstance(wanted, property):
                assert isinstance(have, property), f"{klass.__name__}.{name} is not a property"
                continue
            params = inspect.signature(have).parameters
            for param in inspect.signature(wanted).parameters.values():  # type: ignore[arg-type]
                assert param.name in params, f"{klass.__name__}.{name} lacks parameter {param.name}"
                assert params[param.name].kind == param.kind, f"{klass.__name__}.{name}: {param.name}"
                assert (params[param.name].default is inspect.Parameter.empty) == \
                    (param.default is inspect.Parameter.empty), f"{klass.__name__}.{name}: default of {param.name}"


def _versions(h: Harness, env: str) -> dict[str, str]:
    state = h.rt.environment_state(env)
    return {s.service: s.env for s in state.services}


@pytest.mark.parametrize("harness", RUNTIMES, indirect=True)
def test_up_state_and_down_of_two_environments_on_one_baseline(harness: Harness) -> None:
    h, rt = harness, harness.rt
    assert rt.name in ("docker", "kind") and rt.app == h.project.app
    assert rt.environments() == [] and rt.live_environments() == []
    rt.preflight()
    assert rt.health().ok, rt.health().text

    first = rt.up(ONE, images=h.images(ONE), baseline_commit="0" * 40)
    assert first.changed and first.actions
    assert first.environment.name == "one" and first.environment.branch == "feature/one"
    assert {s.service: s.env for s in first.environment.services} == {"web": BASELINE_ENV, "api": "one",
                                                                      "stock": BASELINE_ENV}
    assert all(s.state == "running" and s.ready for s in first.environment.services), first.environment
    assert first.environment.preview_url and "one." in first.environment.preview_url
    again = rt.up(ONE, images=h.images(ONE), baseline_commit="0" * 40)
    assert not again.changed, again.actions

    rt.up(TWO, images=h.images(TWO), baseline_commit="0" * 40)
    assert rt.live_environments() == [ONE, TWO]
    assert [e.name for e in rt.environments()] == [BASELINE_ENV, "one", "two"]
    assert _versions(h, "two") == {"web": BASELINE_ENV, "api": BASELINE_ENV, "stock": "two"}
    assert _versions(h, "gone") == {s: BASELINE_ENV for s in h.project.services}  # the fallback
    assert [e.name for e in rt.route_plan().environments] == ["one", "two"]

    removed = rt.down("one")
    assert removed
    assert rt.live_environments() == [TWO]
    assert [e.name for e in rt.route_plan().environments] == ["two"]
    assert rt.down("one") == []  # nothing left of it; the others stay
    assert [e.name for e in rt.environments()] == [BASELINE_ENV, "two"]

    assert rt.down("two")  # the last environment takes the baseline with it
    assert rt.environments() == [] and rt.live_environments() == []


@pytest.mark.parametrize("harness", RUNTIMES, indirect=True)
def test_strategies_are_read_without_writing_and_pruned_when_routes_are_applied(harness: Harness) -> None:
    h, rt = harness, harness.rt
    rt.up(ONE, images=h.images(ONE))
    rt.strategies.put(Canary("api", "one", weight=20))
    rt.strategies.put(Canary("stock", "ghost", weight=50))  # an environment that does not run
    stored = rt.strategies.path.read_bytes()

    plan = rt.route_plan()
    assert [(s.service, s.env) for s in plan.strategies] == [("api", "one")]
    assert rt.strategies.path.read_bytes() == stored  # a read writes nothing

    applied = rt.apply_routes()
    assert [(s.service, s.env) for s in applied.strategies] == [("api", "one")]
    assert [(s.service, s.env) for s in rt.strategies.load()] == [("api", "one")]

    rt.down("one")
    assert rt.strategies.load() == ()


@pytest.mark.parametrize("harness", RUNTIMES, indirect=True)
def test_up_without_an_image_for_a_backend_is_refused_before_anything_runs(harness: Harness) -> None:
    h, rt = harness, harness.rt
    images = h.images(ONE)
    del images[Backend("api", "one")]
    with pytest.raises(DevmeshError, match=r"no image was built for api \(one\)"):
        rt.up(ONE, images=images)
    assert rt.environments() == []


@pytest.mark.parametrize("harness", RUNTIMES, indirect=True)
def test_the_sync_transport_reaches_the_environments_own_versions(harness: Harness) -> None:
    h, rt = harness, harness.rt
    rt.up(ONE, images=h.images(ONE))
    transport = rt.sync_transport()
    [target] = transport.targets("one", "api")
    assert (target.service, target.env, target.state) == ("api", "one", "running")
    assert transport.targets("one", "stock") == []  # the baseline's is not the branch's to sync
    assert transport.targets("two", "api") == []


@pytest.mark.parametrize("harness", RUNTIMES, indirect=True)
def test_logs_come_from_the_forks_and_the_baseline_for_the_rest(harness: Harness) -> None:
    h, rt = harness, harness.rt
    if h.name == "kind-apiserver":
        pytest.skip("kwok's nodes run no containers: their pods have no logs")
    rt.up(ONE, images=h.images(ONE))
    if h.say_listening is not None:
        h.say_listening(ONE)
    lines = [line for line in rt.logs("one", [], follow=False) if "listening" in line.text]
    assert {(line.service, line.env) for line in lines} == {("web", BASELINE_ENV), ("api", "one"),
                                                             ("stock", BASELINE_ENV)}
    assert [line.at for line in lines] == sorted(line.at for line in lines)
    only_api = list(rt.logs("one", ["api"], follow=False))
    assert only_api and {(line.service, line.env) for line in only_api} == {("api", "one")}
    with pytest.raises(DevmeshError, match="unknown service 'nope'"):
        list(rt.logs("one", ["nope"], follow=False))
