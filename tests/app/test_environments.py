"""`devmesh up` as a use case: one runtime, opened once, prepared, checked, then given the images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from devmesh.app import environments
from devmesh.cli import cli
from devmesh.config import Project, load_project
from devmesh.runtime.base import LogLine
from devmesh.runtime.kind.runtime import KindRuntime
from tests.conftest import ProjectFactory, git
from tests.kind.conftest import KIND_YAML, FakePublisher
from tests.kind.fake_cluster import FakeCluster


@dataclass(frozen=True)
class Built:
    ref: str


class InterruptedLogs(KindRuntime):
    """The kind runtime on the fake cluster; following its logs is interrupted at once (Ctrl-C)."""

    def logs(self, env: str, services: Any, *, follow: bool, tail: int | None = None,
             stop: Any = None) -> Iterator[LogLine]:
        raise KeyboardInterrupt


@pytest.fixture
def feature(make_project: ProjectFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Project:
    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    root = make_project(KIND_YAML)
    git(root, "checkout", "-q", "-b", "feature/one")
    (root / "services/api/app.py").write_text("print('api v2')\n")
    git(root, "commit", "-qam", "api v2")
    # Builds are not what this is about: each image is named after its service and checkout.
    monkeypatch.setattr(environments, "ensure_image",
                        lambda engine, project, service, *, root, sink: Built(f"local/{service}:{root.name}"))
    return load_project(root / "devmesh.yaml")


def test_devmesh_up_opens_the_runtime_once_for_the_build_the_logs_and_the_sync(
        feature: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCluster()
    opened: list[KindRuntime] = []

    def open_runtime(project: Project, requested: str | None = None, context: str | None = None) -> KindRuntime:
        opened.append(InterruptedLogs(project, cluster=fake, publisher=FakePublisher(), timeout=10))
        return opened[-1]

    monkeypatch.setattr(environments, "open_runtime", open_runtime)
    done = CliRunner().invoke(cli, ["--config", str(feature.path), "up", "--no-sync"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "stopped following; the environment keeps running" in done.output
    assert len(opened) == 1
    [env] = opened[0].live_environments()
    assert (env.forks, env.branch) == (("api",), "feature/one")
    deployments = sorted(d["metadata"]["name"] for d in fake.list("apps/v1", "Deployment"))
    assert deployments == ["api-baseline", f"api-{env.name}", "stock-baseline", "web-baseline"]
