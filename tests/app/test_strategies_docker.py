"""The strategy use cases on the docker runtime, called in process: the starter app with a
branch that changes web and api (tests/test_strategies_docker.py's environment), the real
engine and the real Envoy, asked which route served each request."""

from __future__ import annotations

import pytest

from devmesh.app import strategies
from devmesh.config import load_project
from devmesh.runtime.docker import DockerRuntime
from tests.test_strategies_docker import Gateway, Shop, gateway, shop

pytestmark = pytest.mark.docker

__all__ = ["gateway", "shop"]


def test_switch_canary_and_end_take_effect_on_the_gateway(shop: Shop, gateway: Gateway) -> None:
    project = load_project(shop.root / "devmesh.yaml")
    rt = DockerRuntime(project)
    applied = strategies.switch(project, rt, "web", "feat")
    assert applied.summary == "web: switch: every request without x-devmesh-env goes to feat's version of web; " \
                              "the baseline stands by"
    gateway.wait_for_route("switch")
    assert gateway.upstream() == "web.feat"
    canary = strategies.canary(project, rt, "web", "feat", weight=50)
    assert canary.replaced_summary is not None and canary.replaced_summary.startswith("switch:")
    gateway.wait_for_route("canary")
    assert strategies.end(project, rt, "web") == canary.strategy
    gateway.wait_for_route("baseline")
    assert gateway.upstream() == "web.baseline"
