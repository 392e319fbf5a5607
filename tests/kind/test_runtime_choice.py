"""Which runtime `devmesh up` uses: the rule `devmesh doctor` reports."""

from __future__ import annotations

import pytest

from devmesh.app import environments as session
from devmesh.config import Project
from devmesh.errors import UserInputError
from devmesh.runtime.kind.runtime import KindRuntime
from tests.kind.fake_tools import FakeWorld


def _auto(project: Project) -> Project:
    return project.model_copy(update={"runtime": "auto"})


@pytest.mark.docker
def test_auto_is_kind_where_kind_and_a_docker_engine_exist(project: Project, world: FakeWorld,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", world.env()["PATH"])
    monkeypatch.setenv("DEVMESH_FAKE_WORLD", str(world.root))
    assert session.choose_runtime(_auto(project)) == "kind"
    monkeypatch.setenv("PATH", "/nonexistent")
    assert session.choose_runtime(_auto(project)) == "docker"


def test_a_context_means_the_kind_runtime(project: Project) -> None:
    assert session.choose_runtime(_auto(project), context="team") == "kind"
    rt = session.open_runtime(_auto(project), context="team")
    assert isinstance(rt, KindRuntime) and rt.context == "team"
    assert session.open_runtime(project).context == "kind-devmesh"  # type: ignore[union-attr]
    with pytest.raises(UserInputError, match=r"a kube context \(team\) needs the kind runtime"):
        session.choose_runtime(project, "docker", context="team")
