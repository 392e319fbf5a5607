"""The polled tables (and the environments list) are updated in place by key: a refresh
changes the cells that changed, removes rows that went, and leaves the cursor on its row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.widgets import Static

from devmesh.plan.strategy import Canary
from tests.tui.conftest import SIZE, AppFactory, settle
from tests.tui.fakes import ENV, FakeRuntime, baseline_state, branch_state, not_ready, without
from tui.widgets.environment_list import EnvironmentList
from tui.widgets.keyed_table import KeyedTable
from tui.widgets.route_table import RouteTable
from tui.widgets.service_table import ServiceTable


async def refreshed(pilot: Any, done: Callable[[], bool]) -> None:
    """Press `r` and wait until the new state is shown."""
    await pilot.press("r")
    for _ in range(250):
        await pilot.pause(0.02)
        if done():
            await pilot.pause()
            return
    raise AssertionError("the refresh did not show the new state")


def plain(cells: list[Any]) -> list[str]:
    return [c.plain if isinstance(c, Text) else str(c) for c in cells]


def keys(table: KeyedTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


async def test_the_services_table_keeps_its_rows_and_cursor_across_a_refresh(
        make_app: AppFactory, runtime: FakeRuntime) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lines=12)
        table = app.main.query_one(ServiceTable)
        await pilot.press("down")  # the services table has the focus: api → web
        assert table.service == "web" and table.cursor_row == 1
        web = table.get_row("web")
        envs = app.main.query_one(EnvironmentList)
        options = list(envs.options)

        runtime.states = [baseline_state(), not_ready(branch_state(), "api")]
        await refreshed(pilot, lambda: plain(table.get_row("api"))[3:5] == ["restarting", "no"])
        assert table.service == "web" and table.cursor_row == 1
        assert all(now is before for now, before in zip(table.get_row("web"), web))  # not rebuilt
        assert keys(table) == ["api", "web", "worker"]
        # the environments list changed the branch's line only, in place
        assert len(envs.options) == len(options) and all(a is b for a, b in zip(envs.options, options))
        assert "2/3 ready" in str(envs.get_option(ENV).prompt) and envs.highlighted == 0


async def test_the_route_table_keeps_the_cursor_on_its_rule_and_drops_rules_that_went(
        make_app: AppFactory, runtime: FakeRuntime) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lines=12)
        table = app.main.query_one(RouteTable)
        why = app.main.query_one("#rule-why", Static)
        table.move_cursor(row=keys(table).index("web/web-baseline"), animate=False)
        await pilot.pause()
        assert str(why.render()).startswith("web rule 1:")
        row = table.cursor_row

        # rules come in before the cursor's: a canary of api (api is the entry: the gateway too)
        runtime.strategies.put(Canary("api", ENV, 20))
        await refreshed(pilot, lambda: "api/api-canary" in keys(table))
        assert keys(table) == [f"gateway/preview-{ENV}", f"gateway/header-{ENV}", "gateway/canary",
                               "gateway/baseline", f"api/api-{ENV}", "api/api-canary",
                               "api/api-baseline", "web/web-baseline", "worker/worker-baseline"]
        assert table.cursor_key == "web/web-baseline" and table.cursor_row == row + 2
        assert plain(table.get_row("api/api-baseline"))[:2] == ["", "3"]
        row, web = table.cursor_row, table.get_row("web/web-baseline")
        gateway_baseline = table.get_row("gateway/baseline")

        # another row changes: the canary goes to 50%
        runtime.strategies.put(Canary("api", ENV, 50))
        await refreshed(pilot, lambda: "50%" in plain(table.get_row("api/api-canary"))[3])
        assert table.cursor_key == "web/web-baseline" and table.cursor_row == row
        assert all(now is before for now, before in zip(table.get_row("web/web-baseline"), web))
        assert all(now is before for now, before in zip(table.get_row("gateway/baseline"),
                                                         gateway_baseline))
        assert str(why.render()).startswith("web rule 1:")

        # the branch's environment goes: its rules (and the canary on it) disappear
        runtime.states = without(runtime.states, ENV)
        gone = [f"gateway/preview-{ENV}", f"gateway/header-{ENV}", "gateway/canary",
                f"api/api-{ENV}", "api/api-canary"]
        await refreshed(pilot, lambda: not set(gone) & set(keys(table)))
        assert keys(table) == ["gateway/baseline", "api/api-baseline", "web/web-baseline",
                               "worker/worker-baseline"]
        assert table.cursor_key == "web/web-baseline" and table.cursor_row == 2
        assert plain(table.get_row("api/api-baseline"))[:2] == ["api", "1"]  # renumbered, labelled
        assert str(why.render()).startswith("web rule 1:")
