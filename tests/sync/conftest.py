"""Fixtures for live sync tests: a project with one synced service, its sources, a fake engine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devmesh.config import load_project
from devmesh.sync.rules import ServiceSources
from tests.conftest import write_files

SourcesFactory = Callable[..., ServiceSources]

BASE_FILES = {
    "services/api/Dockerfile": "FROM scratch\nCOPY . /app\n",
    "services/api/app.py": "print('v1')\n",
    "services/api/requirements.txt": "",
    "services/api/lib/util.py": "X = 1\n",
}


def project_yaml(sync: str, rebuild_on: str = "[requirements.txt]", reload: str = "") -> str:
    return (
        "app: shop\n"
        "runtime: docker\n"
        "services:\n"
        "  api:\n"
        "    context: services/api\n"
        "    port: 8000\n"
        f"    sync: {sync}\n"
        f"    rebuild_on: {rebuild_on}\n"
        + (f"    reload: {reload}\n" if reload else "")
    )


@pytest.fixture
def make_sources(tmp_path: Path) -> SourcesFactory:
    """ServiceSources of service ``api`` in a fresh project; ``files`` (relative to the build
    context, services/api) are added."""

    def make(sync: str = "[{src: ., dest: /app}]", rebuild_on: str = "[requirements.txt]",
             reload: str = "", files: dict[str, str] | None = None) -> ServiceSources:
        root = tmp_path / "project"
        extra = {f"services/api/{rel}": text for rel, text in (files or {}).items()}
        write_files(root, {"devmesh.yaml": project_yaml(sync, rebuild_on, reload), **BASE_FILES, **extra})
        return ServiceSources.of(load_project(root / "devmesh.yaml"), "api")

    return make
