"""The Traffic tab: the mesh's records as each version's figures and the latest chains, live
and filtered as you type, with the same fake runtime as the other TUI tests (its records are
lines in the real record format)."""

from __future__ import annotations

import time
from typing import Any

from textual.widgets import DataTable, Input, Label, Static

from devmesh.errors import UserInputError
from tests.tui.conftest import SIZE, AppFactory, settle
from tests.tui.fakes import ENV, FakeRuntime, mesh_records
from tui.widgets.explain_box import ExplainBox
from tui.widgets.route_table import GATEWAY
from tui.widgets.traffic_pane import TrafficPane


async def wait_for(pilot: Any, probe: Any, what: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await pilot.pause(0.05)
        value = probe()
        if value:
            return value
    raise AssertionError(f"timed out waiting for {what}")


def chains_text(pane: TrafficPane) -> str:
    return str(pane.query_one("#traffic-chains", Static).render())


async def test_the_tab_shows_figures_and_chains_and_filters_them(make_app: AppFactory,
                                                                   runtime: FakeRuntime) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        pane = app.main.query_one(TrafficPane)
        table = pane.query_one("#traffic-figures", DataTable)
        await wait_for(pilot, lambda: table.row_count == 4, "four versions' figures")
        rows = {(str(table.get_row_at(i)[0]), str(table.get_row_at(i)[1])): table.get_row_at(i)
                for i in range(table.row_count)}
        assert set(rows) == {("api", "baseline"), ("api", ENV), ("stock", "baseline"), ("web", "baseline")}
        assert rows[("web", "baseline")][2] == "6" and rows[("api", ENV)][2] == "3"
        text = chains_text(pane)
        assert text.count(f"web@baseline → api@{ENV} → stock@baseline  200  6 ms") == 3
        assert text.count("web@baseline → api@baseline → stock@baseline  200  6 ms") == 3

        await pilot.press("slash", *f"{ENV}")
        assert app.focused is pane.query_one("#traffic-filter", Input)
        text = chains_text(pane)
        assert text.count(f"api@{ENV}") == 3 and "api@baseline" not in text
        status = str(pane.query_one("#traffic-status", Label).render())
        assert "3/6 requests" in status
        await pilot.press("escape")
        assert app.focused is table

        # live: a new request and a line that is not a record
        runtime.live_records += mesh_records(count=1, at=time.time())[:3] + ["garbage"]
        await wait_for(pilot, lambda: "1 unparsed" in str(pane.query_one("#traffic-status", Label).render()),
                       "the unparsed line counted")
        assert "4/7 requests" in str(pane.query_one("#traffic-status", Label).render())


async def test_a_runtime_that_cannot_read_its_records_says_why(make_app: AppFactory,
                                                                runtime: FakeRuntime) -> None:
    def refuse(**_: Any) -> Any:
        raise UserInputError("app 'shop' has no Envoy on the docker runtime: nothing has routed a request yet")

    runtime.mesh_log = refuse  # type: ignore[method-assign]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        pane = app.main.query_one(TrafficPane)
        await wait_for(pilot, lambda: "has no Envoy" in chains_text(pane), "the refusal shown")
        assert "not following" in str(pane.query_one("#traffic-status", Label).render())


async def test_the_explain_box_says_how_many_requests_took_the_rule(make_app: AppFactory,
                                                                      runtime: FakeRuntime) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        box = app.main.query_one(ExplainBox)
        result = box.query_one("#explain-result", Static)
        box.ask("api", f"x-devmesh-env: {ENV}")
        # the records of the three requests by the preview's host: api-<env> took each
        await wait_for(pilot, lambda: "3 requests took it in the last 60 s" in str(result.render()),
                       "the rule's count from the records")
        assert f"(api-{ENV})" in str(result.render())
        box.ask(GATEWAY, "host: shop.localhost")
        await pilot.pause()
        assert "3 requests took it in the last 60 s" in str(result.render())  # the gateway's baseline rule
        box.ask("web", "host: shop.localhost")  # web is only called through the gateway here
        await pilot.pause()
        assert "no request took this rule in the last 60 s" in str(result.render())
