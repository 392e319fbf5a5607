"""Fixtures for the kind runtime's tests: the fake cluster, the recording fake tools, projects."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from devmesh.config import Project, load_project
from devmesh.events import Event, Sink, discard
from devmesh.plan.supervisor import Launch
from devmesh.runtime.kind.publish import remote_repository
from tests.conftest import ProjectFactory
from tests.kind.fake_cluster import FakeCluster
from tests.kind.fake_tools import FakeWorld

KIND_YAML = """\
app: shop
baseline: main
runtime: kind
routing:
  gateway_port: 18080
services:
  web:
    context: services/web
    entry: true
    port: 8000
  api:
    context: services/api
    port: 8000
  stock:
    context: services/stock
    port: 8000
"""


class FakePublisher:
    """Stands for the registry push: a digest derived from the local reference."""

    def __init__(self, registry: str = "127.0.0.1:5001") -> None:
        self.registry = registry
        self.pushed: list[str] = []

    def publish(self, local_ref: str, *, sink: Sink = discard) -> str:
        repository, _ = remote_repository(local_ref, self.registry)
        self.pushed.append(local_ref)
        return f"{repository}@sha256:{hashlib.sha256(local_ref.encode()).hexdigest()}"

    def launch(self, local_ref: str) -> Launch:
        """As an image built FROM a Debian base with ``CMD ["python3", "app.py"]``."""
        return Launch(("python3", "app.py"))


class Events(list[Event]):
    """A sink that keeps every event."""

    def __call__(self, event: Event) -> None:
        self.append(event)

    def messages(self) -> list[str]:
        return [e.message for e in self]


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DEVMESH_ROLLOUT_TIMEOUT", raising=False)


@pytest.fixture
def project(make_project: ProjectFactory) -> Project:
    return load_project(make_project(KIND_YAML) / "devmesh.yaml")


@pytest.fixture
def fake() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def world(tmp_path: Path) -> FakeWorld:
    return FakeWorld(tmp_path / "world")


@pytest.fixture
def events() -> Events:
    return Events()


ImagesFor = Callable[..., dict]
