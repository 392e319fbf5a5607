"""The Routing tab against the real docker runtime: a canary applied as `devmesh canary` applies
it (the runtime's strategy store, then ``apply_routes``) is what the route table and the explain
box show. Nothing is injected: the TUI reads the plan from the runtime."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import Static

from devmesh.config import Project, load_project
from devmesh.naming import BASELINE_ENV
from devmesh.plan.strategy import Canary
from devmesh.runtime.docker import DockerRuntime
from devmesh.app.environments import up
from tests.conftest import GIT_ENV
from tests.docker_env import ENVOY_IMAGE, cleanup, remove_images, run_git, scaffold_shop
from tests.tui.conftest import SIZE, settle
from tui.app import DevmeshApp
from tui.sources import Sources
from tui.widgets.explain_box import ExplainBox
from tui.widgets.route_table import RouteTable

pytestmark = pytest.mark.docker


@dataclass
class Running:
    project: Project
    env: str


@pytest.fixture
def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Running]:
    """The starter app up on docker: the baseline and branch ``feat``, which changes api."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DEVMESH_ENVOY_IMAGE", ENVOY_IMAGE)
    root, app, _ = scaffold_shop(tmp_path / "shop")
    project = load_project(root / "devmesh.yaml")
    try:
        run_git(root, "checkout", "-q", "-b", "feat")
        app_py = root / "services" / "api" / "app.py"
        app_py.write_text(app_py.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"'))
        run_git(root, "commit", "-qam", "api v2")
        outcome = up(project, "feat")
        yield Running(project, outcome.result.environment.name)
    finally:
        try:
            DockerRuntime(project).down(BASELINE_ENV, baseline=True)  # `devmesh down --baseline`
        finally:
            cleanup(app)
            remove_images(app)


async def test_the_routing_tab_shows_a_canary_applied_through_the_runtime(running: Running) -> None:
    rt = DockerRuntime(running.project)
    rt.strategies.put(Canary("api", running.env, 20))  # what `devmesh canary api -w 20` stores
    rt.apply_routes()  # and applies

    app = DevmeshApp(Sources(running.project, branch="feat", sync=None), cursor_blink=False,
                     poll_seconds=0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, timeout=30)
        await pilot.press("1")  # the Routing tab
        await pilot.pause()
        table = app.main.query_one(RouteTable)
        api_rules = {key: rule for key, (where, _, rule) in table.rules.items() if where == "api"}
        canary = [key for key, rule in api_rules.items() if rule.name == "api-canary"]
        assert canary, [rule.name for rule in api_rules.values()]
        shown = " | ".join(cell.plain if isinstance(cell, Text) else cell
                           for cell in table.get_row(canary[0]))
        assert "api@baseline 80%" in shown and f"api@{running.env} 20%" in shown, shown

        app.main.query_one(ExplainBox).ask("api", f"host: {running.project.app}.localhost")
        await pilot.pause()
        verdict = str(app.main.query_one("#explain-result", Static).render())
        assert "(api-canary)" in verdict, verdict
        assert "80%" in verdict and "20%" in verdict and f"{running.env}'s version" in verdict, verdict
