"""The per-service environment variables both runtimes give a container."""

from __future__ import annotations

from devmesh.config import DEVMESH_ENV_VARS
from devmesh.plan.routing import Backend
from devmesh.plan.service_env import service_env


def test_declared_variables_keep_their_order_and_devmesh_adds_its_own_after() -> None:
    env = service_env({"Z": "1", "A": "2"}, Backend("api", "feat-x"), "x-devmesh-route")
    assert list(env.items()) == [
        ("Z", "1"), ("A", "2"),
        ("DEVMESH_ENV", "feat-x"), ("DEVMESH_HEADER", "x-devmesh-route"), ("DEVMESH_SERVICE", "api"),
    ]


def test_devmesh_sets_exactly_the_variables_configuration_reserves() -> None:
    env = service_env({}, Backend("api", "baseline"), "h")
    assert tuple(env) == DEVMESH_ENV_VARS


def test_the_declared_mapping_is_not_changed() -> None:
    declared = {"A": "1"}
    service_env(declared, Backend("api", "baseline"), "h")
    assert declared == {"A": "1"}
