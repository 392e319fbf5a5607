"""Fixtures for the TUI tests: a project on disk, fake runtime state, a real manifest repo."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.config import Project, load_project
from devmesh.gitops.cache import open_checkout
from devmesh.gitops.images import ImageRef
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.scaffold import scaffold, specs_from_project
from devmesh.gitops.settings import ManifestSettings, manifest_settings
from devmesh.routes_state import StrategyStore
from tests.gitops.gitops_helpers import write_project
from tests.tui.fakes import NOW, FakeRuntime, FakeUp, selection
from tui.app import DevmeshApp
from tui.sources import Health, Sources

SIZE = (120, 40)


@pytest.fixture(autouse=True)
def _pinned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """One time zone, one manifest cache per test, one git identity and commit date."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("DEVMESH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DEVMESH_MANIFESTS", raising=False)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Ada Tester")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "ada@example.test")
    yield
    monkeypatch.undo()
    time.tzset()


def ref(char: str, service: str) -> ImageRef:
    return ImageRef(f"127.0.0.1:5001/shop/{service}", "sha256:" + char * 64)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    path = tmp_path / "manifests.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True)
    return path


def _at(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_DATE", when)


@pytest.fixture
def manifests(tmp_path: Path, remote: Path, monkeypatch: pytest.MonkeyPatch) -> ManifestSettings:
    """A real manifest repo (tiers dev, beta, prod) with recorded promotions:

    - api: dev and beta run ``a``; prod runs nothing (prod may take a);
    - web: dev runs ``b``, beta and prod run ``c`` (beta may take b);
    - worker: no image anywhere (promoting it up is blocked).
    """
    project = load_project(write_project(tmp_path / "shop", str(remote)))
    settings = manifest_settings(project)
    steps = [
        ("2025-05-01T09:00:00+00:00", "web", "dev", ref("c", "web")),
        ("2025-05-01T09:10:00+00:00", "web", "beta", None),
        ("2025-05-01T09:20:00+00:00", "web", "prod", None),
        ("2025-05-02T09:00:00+00:00", "api", "dev", ref("a", "api")),
        ("2025-05-02T10:00:00+00:00", "api", "beta", None),
        ("2025-05-02T11:00:00+00:00", "web", "dev", ref("b", "web")),
    ]
    _at(monkeypatch, "2025-05-01T08:00:00+00:00")
    with open_checkout(settings) as checkout:
        scaffold(checkout, "shop", specs_from_project(project), ["dev", "beta", "prod"])
    for when, service, tier, image in steps:
        _at(monkeypatch, when)
        with open_checkout(settings) as checkout:
            promote(checkout, PromotionRequest(service, tier, image), app="shop")
    _at(monkeypatch, "2025-05-02T11:30:00+00:00")
    return settings


@pytest.fixture
def project(tmp_path: Path, remote: Path) -> Project:
    return load_project(write_project(tmp_path / "shop", str(remote)))


@pytest.fixture
def runtime(project: Project, tmp_path: Path) -> FakeRuntime:
    return FakeRuntime(project, StrategyStore(tmp_path / "state" / project.app))


AppFactory = Callable[..., DevmeshApp]


@pytest.fixture
def make_app(project: Project, runtime: FakeRuntime) -> AppFactory:
    """``make_app(**sources_overrides)``: the TUI on fake runtime state, real manifest settings."""

    def make(*, browser: Callable[[str], None] | None = None, log_lines: int = 10_000,
             **overrides: Any) -> DevmeshApp:
        chosen_project = overrides.pop("project", project)
        parts: dict[str, Any] = {
            "runtime": runtime,
            "selection": selection(),
            "up": FakeUp(runtime),
            "health": lambda rt: Health(True, "engine 20.10.24"),
            "now": lambda: NOW,
            "publish": lambda local, service: ref("d", service),
            "sync": None,  # no live sync unless a test gives a switch
        }
        parts.update(overrides)
        sources = Sources(chosen_project, **parts)
        return DevmeshApp(sources, cursor_blink=False, poll_seconds=0, browser=browser, log_lines=log_lines)

    return make


async def settle(pilot: Any, *, lines: int = 0, tiers: bool = True, timeout: float = 5.0) -> None:
    """Wait until the workers delivered: state read, tiers read (or refused), log lines shown."""
    from tui.screens.main import MainScreen
    from tui.widgets.logs_pane import LogsPane
    from tui.widgets.tiers_pane import TiersPane

    app = pilot.app
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.02)
        main = app.main
        if not isinstance(main, MainScreen) or not main.is_mounted:
            continue
        state_done = main.plan is not None or main._poll_error is not None
        tiers_done = not tiers or main.query_one(TiersPane).view is not None or \
            not main.query_one(TiersPane).table.display
        lines_done = len(main.query_one(LogsPane).view.buffer) >= lines
        if state_done and tiers_done and lines_done and main.selection is not None:
            await pilot.pause()
            return
    raise AssertionError("the TUI did not settle")
