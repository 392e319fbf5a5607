"""One harness per runtime for the contract suite: the same project, the same scenarios.

- ``docker``: the docker runtime on the real Docker engine (real images, real Envoy);
- ``kind-fake``: the kind runtime on the faithful fake of the cluster client;
- ``kind-apiserver``: the kind runtime on the real Kubernetes API server of ``.ci/apiserver``
  (kwok's nodes: pods become ready without containers, so they have no logs).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devmesh.build import docker_client, ensure_image
from devmesh.config import Project, load_project
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend, Environment
from devmesh.runtime.base import Runtime
from devmesh.runtime.docker import DockerRuntime
from devmesh.runtime.kind.client import KubeClient
from devmesh.runtime.kind.runtime import KindRuntime
from tests.apiserver.conftest import ControlPlane, control_plane  # noqa: F401 (a fixture)
from tests.docker_env import ENVOY_IMAGE, cleanup, scaffold_shop
from tests.kind.conftest import FakePublisher
from tests.kind.fake_cluster import FakeCluster

RUNTIMES = [
    pytest.param("docker", marks=pytest.mark.docker, id="docker"),
    pytest.param("kind-fake", id="kind-fake"),
    pytest.param("kind-apiserver", marks=pytest.mark.apiserver, id="kind-apiserver"),
]


@dataclass
class Harness:
    """A runtime with the project it runs, and what a scenario needs of each."""

    name: str
    project: Project
    rt: Runtime
    images_of: Callable[[str, str], str]
    # Make each running version of ``env`` log a line (None: versions write no logs here).
    say_listening: Callable[[Environment], None] | None
    finalizers: list[Callable[[], None]] = field(default_factory=list)

    def images(self, *envs: Environment) -> dict[Backend, str]:
        out = {Backend(s, BASELINE_ENV): self.images_of(s, BASELINE_ENV) for s in self.project.services}
        for env in envs:
            out |= {Backend(s, env.name): self.images_of(s, env.name) for s in env.forks}
        return out


def _docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.setenv("DEVMESH_ENVOY_IMAGE", ENVOY_IMAGE)
    root, app, _ = scaffold_shop(tmp_path / "shop")
    project = load_project(root / "devmesh.yaml")
    engine = docker_client()
    built = {s: ensure_image(engine, project, s).ref for s in project.services}
    harness = Harness("docker", project, DockerRuntime(project, engine), lambda s, _env: built[s],
                      None)  # the starter's services say "listening" by themselves
    harness.finalizers.append(lambda: cleanup(app))
    return harness


def _fake_listening(fake: FakeCluster) -> Callable[[Environment], None]:
    def say(env: Environment) -> None:
        for service in ("web", "api", "stock"):
            version = env.name if service in env.forks else BASELINE_ENV
            fake.add_logs(f"devmesh.dev/service={service},devmesh.dev/env={version}", service,
                          f"{service} v1 listening on 0.0.0.0:8000")

    return say


def _kind_fake(tmp_path: Path) -> Harness:
    root, _, _ = scaffold_shop(tmp_path / "shop")
    project = load_project(root / "devmesh.yaml")
    fake = FakeCluster()
    rt = KindRuntime(project, cluster=fake, publisher=FakePublisher(), timeout=10)
    return Harness("kind-fake", project, rt, lambda s, env: f"devmesh.local/{project.app}/{s}:{env}",
                   _fake_listening(fake))


def _kind_apiserver(tmp_path: Path, plane: ControlPlane) -> Harness:
    root, _, _ = scaffold_shop(tmp_path / "shop")
    _rename_app(root, f"c{uuid.uuid4().hex[:8]}")  # its own namespace on the shared server
    project = load_project(root / "devmesh.yaml")
    cluster: KubeClient = plane.client()
    rt = KindRuntime(project, context=plane.context, cluster=cluster, publisher=FakePublisher(), timeout=90)
    harness = Harness("kind-apiserver", project, rt,
                      lambda s, env: f"devmesh.local/{project.app}/{s}:{env}", None)
    harness.finalizers += [lambda: cluster.delete("v1", "Namespace", f"devmesh-{project.app}"), cluster.close]
    return harness


def _rename_app(root: Path, app: str) -> None:
    config = root / "devmesh.yaml"
    lines = config.read_text().splitlines()
    config.write_text("\n".join(f"app: {app}" if line.startswith("app: ") else line for line in lines) + "\n")


@pytest.fixture(params=RUNTIMES)
def harness(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    if request.param == "docker":
        made = _docker(tmp_path, monkeypatch)
    elif request.param == "kind-fake":
        made = _kind_fake(tmp_path)
    else:
        made = _kind_apiserver(tmp_path, request.getfixturevalue("control_plane"))
    try:
        yield made
    finally:
        for finalize in made.finalizers:
            finalize()
