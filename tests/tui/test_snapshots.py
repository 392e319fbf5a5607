"""What the TUI looks like, compared with reviewed SVG snapshots (pytest-textual-snapshot).

Fixed terminal size, time zone, clock, colours and cursor; recorded runtime state; a real
manifest repo at a fixed path with commits at fixed dates. Update with ``--snapshot-update``
and look at the SVGs under ``__snapshots__`` before committing them.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.errors import MissingDependency
from devmesh.gitops.settings import ManifestSettings
from devmesh.plan.strategy import Canary
from tests.tui.conftest import SIZE, AppFactory, settle
from tests.tui.fakes import ENV, FakeRuntime
from tui.widgets.explain_box import ExplainBox
from tui.widgets.tiers_pane import TiersPane


@pytest.fixture
def remote() -> Iterator[Path]:
    """The manifest repo at a fixed path, so the Tiers tab shows the same text every run."""
    path = Path(tempfile.gettempdir()) / "devmesh-tui-snapshots" / "manifests.git"
    shutil.rmtree(path.parent, ignore_errors=True)
    path.parent.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)], check=True)
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def test_main_screen_with_a_running_environment(snap_compare: Any, make_app: AppFactory) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot, lines=12)

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_routing_tab_with_a_canary(snap_compare: Any, make_app: AppFactory, runtime: FakeRuntime) -> None:
    runtime.strategies.put(Canary("api", ENV, 20))  # as `devmesh canary api --weight 20` stores it
    runtime.records = []  # what the mesh recorded shows under the verdict at a time of its own

    async def run_before(pilot: Any) -> None:
        await settle(pilot, lines=12)
        pilot.app.main.query_one(ExplainBox).ask("api", "host: shop.localhost")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_tiers_tab_with_a_blocked_promotion(snap_compare: Any, make_app: AppFactory,
                                            manifests: ManifestSettings) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot, lines=12)
        await pilot.press("2")
        await pilot.wait_for_animation()  # the tab's underline slides; a loaded machine is slower
        pane = pilot.app.main.query_one(TiersPane)
        pane.table.focus()
        pane.table.move_cursor(row=2, column=1, animate=False)  # worker in dev: nothing to move up
        await pilot.pause()

    del manifests
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_logs_tab_filtered(snap_compare: Any, make_app: AppFactory) -> None:
    async def run_before(pilot: Any) -> None:
        await settle(pilot, lines=12)
        await pilot.press("slash", *"stock")
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)


def test_error_state_engine_unreachable(snap_compare: Any, make_app: AppFactory, runtime: FakeRuntime) -> None:
    runtime.error = MissingDependency("cannot reach the Docker engine at unix:///var/run/docker.sock "
                                      "(connection refused)", hint="start Docker, or set DOCKER_HOST")

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        await pilot.press("5")
        await pilot.wait_for_animation()  # the tab's underline slides; a loaded machine is slower
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=SIZE, run_before=run_before)
