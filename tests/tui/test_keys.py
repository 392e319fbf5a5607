"""Every key of the TUI, pressed in a headless app against fake runtime state."""

from __future__ import annotations

import threading

import pytest

from devmesh.errors import DevmeshError, UserInputError
from devmesh.events import Step
from tests.tui.conftest import SIZE, AppFactory, settle
from tests.tui.fakes import ENV, EVENT_AT, FakeRuntime, FakeUp, log_lines, wait_until
from tui.keys import KEYS, TABS
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.widgets.activity_log import ActivityLog
from tui.widgets.environment_list import EnvironmentList
from tui.widgets.logs_pane import LogsPane
from tui.widgets.service_table import ServiceTable
from textual.widgets import Input, TabbedContent


def activity_text(app: object) -> str:
    return "\n".join(app.main.query_one(ActivityLog).entries)  # type: ignore[attr-defined]


def active_tab(app: object) -> str:
    return str(app.main.query_one(TabbedContent).active)  # type: ignore[attr-defined]


async def test_the_screen_shows_the_branch_its_environments_and_services(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lines=12)
        main = app.main
        assert main.selection is not None and main.selection.environment.name == ENV
        envs = main.query_one(EnvironmentList)
        assert [envs.get_option_at_index(i).id for i in range(envs.option_count)] == [ENV, "baseline"]
        table = main.query_one(ServiceTable)
        assert table.row_count == 3 and table.service == "api"
        assert "fork" in str(table.get_row("api")[1])
        header = str(main.query_one("#header").render())
        assert "feature/cheaper-stock" in header and ENV in header and "engine 20.10.24" in header


async def test_u_runs_up_and_shows_build_progress_then_the_environment(make_app: AppFactory,
                                                                        runtime: FakeRuntime) -> None:
    runtime.states = [s for s in runtime.states if s.name != ENV]
    hold = threading.Event()
    up = FakeUp(runtime, hold=hold)
    app = make_app(up=up)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert ENV not in app.main.states
        await pilot.press("u")
        assert active_tab(app) == "activity"
        for _ in range(100):
            await pilot.pause(0.02)
            if "Step 3/4" in activity_text(app):
                break
        assert "api: Step 3/4 : COPY . /app" in activity_text(app)
        await pilot.press("u")  # a second `up` while one runs is refused, with the reason
        await pilot.pause()
        assert "up is still running" in activity_text(app)
        hold.set()
        for _ in range(200):
            await pilot.pause(0.02)
            if ENV in app.main.states:
                break
        assert up.calls == 1
        assert f"environment {ENV} is up" in activity_text(app)
        assert app.main.busy is None


async def test_u_failure_shows_the_reason_and_hint_not_a_traceback(make_app: AppFactory,
                                                                    runtime: FakeRuntime) -> None:
    error = UserInputError("branch feature/cheaper-stock changes no service's build context",
                           hint="use --all to run every service of the branch anyway")
    app = make_app(up=FakeUp(runtime, events=[], error=error))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("u")
        assert wait_until(lambda: app.main.busy is None)
        await pilot.pause(0.05)
        text = activity_text(app)
        assert "up: branch feature/cheaper-stock changes no service's build context" in text
        assert "hint: use --all" in text
        assert "Traceback" not in text


async def test_d_removes_the_selected_environment(make_app: AppFactory, runtime: FakeRuntime) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        for _ in range(100):
            await pilot.pause(0.02)
            if ENV not in app.main.states and runtime.downs:
                break
        assert runtime.downs == [ENV]
        text = activity_text(app)
        assert f"removed devmesh-shop-{ENV}-api" in text
        assert f"removed 1 object(s) of environment {ENV}" in text


async def test_s_says_live_sync_is_not_available_without_a_switch(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause()
        assert "live sync is not available in this version of devmesh" in activity_text(app)


async def test_s_switches_sync_when_the_core_offers_it(make_app: AppFactory) -> None:
    calls: list[bool] = []
    app = make_app(sync=lambda on, sink: calls.append(on))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        assert wait_until(lambda: calls == [True])
        await pilot.press("s")
        assert wait_until(lambda: calls == [True, False])


async def test_sync_events_fill_the_last_sync_column(make_app: AppFactory) -> None:
    """A sync event of the kind live sync will emit (service, files, ms) shows in the table."""
    from dataclasses import dataclass

    from devmesh.events import Event

    @dataclass(frozen=True)
    class Synced(Event):
        service: str = ""
        env: str = ""
        files: int = 0
        ms: float = 0.0

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.main.post_message(MainScreen.CoreEvent(Synced("api: synced 3 files", service="api", env=ENV,
                                                          files=3, ms=41.0, at=EVENT_AT)))
        await pilot.pause(0.05)
        assert str(app.main.query_one(ServiceTable).get_row("api")[5]) == "3 files, 41 ms"
        assert "api: synced 3 files" in activity_text(app)


async def test_o_opens_and_y_copies_the_preview_url(make_app: AppFactory) -> None:
    opened: list[str] = []
    app = make_app(browser=opened.append)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("o")
        await pilot.press("y")
        await pilot.pause()
        url = f"http://{ENV}.shop.localhost:8080/"
        assert opened == [url]
        assert app.clipboard == url


async def test_moving_to_another_environment_moves_services_logs_and_url(make_app: AppFactory,
                                                                          runtime: FakeRuntime) -> None:
    opened: list[str] = []
    app = make_app(browser=opened.append)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lines=12)
        app.main.query_one(EnvironmentList).focus()
        await pilot.press("down")
        await pilot.pause(0.1)
        assert app.main.selected_env == "baseline"
        assert "fork" not in str(app.main.query_one(ServiceTable).get_row("api")[1])
        assert wait_until(lambda: runtime.streams[-1:] == ["baseline"])
        await pilot.press("o")
        assert opened == ["http://shop.localhost:8080/"]


async def test_slash_filters_logs_as_you_type_and_services_hide(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lines=12)
        await pilot.press("slash")
        assert active_tab(app) == "logs"
        assert isinstance(app.focused, Input) and app.focused.id == "log-filter"
        await pilot.press(*"status=500")
        view = app.main.query_one(LogsPane).view
        assert [line.text for line in view.buffer.window(0, 20)] == [
            f"GET /stock/42 x-devmesh-env={ENV} status=500"]
        await pilot.press("escape")
        assert app.focused is view
        app.main.query_one("#log-filter", Input).value = ""
        await pilot.pause()
        assert len(view.buffer) == 12
        services = app.main.query_one("#log-services")
        services.focus()
        services.highlighted = 0
        await pilot.press("space")  # hide the first service: api
        await pilot.pause()
        assert {line.service for line in view.buffer.window(0, 20)} == {"web", "worker"}


async def test_f_pauses_and_follows_the_logs(make_app: AppFactory, runtime: FakeRuntime) -> None:
    runtime.lines = log_lines(60)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lines=60)
        await pilot.press("3")
        await pilot.pause()
        view = app.main.query_one(LogsPane).view
        assert view.follow and view.scroll_y == view.max_scroll_y > 0
        await pilot.press("f")
        assert not view.follow
        view.scroll_to(y=0, animate=False, immediate=True)
        runtime.live.extend(log_lines(5))
        await settle(pilot, lines=65)
        assert view.scroll_y == 0  # paused: the lines on screen stay where they are
        assert "paused" in str(app.main.query_one("#log-status").render())
        await pilot.press("f")
        await pilot.pause()
        assert view.follow and view.scroll_y == view.max_scroll_y


async def test_the_log_buffer_is_bounded(make_app: AppFactory, runtime: FakeRuntime) -> None:
    runtime.lines = log_lines(30)
    runtime.live.extend(log_lines(300))
    app = make_app(log_lines=100)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lines=100)
        assert wait_until(lambda: not runtime.live)
        await pilot.pause(0.1)
        buffer = app.main.query_one(LogsPane).view.buffer
        assert buffer.total == 100 and len(buffer) == 100


async def test_r_reads_everything_again(make_app: AppFactory, runtime: FakeRuntime) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        runtime.states = [s for s in runtime.states if s.name != ENV]
        await pilot.press("r")
        for _ in range(100):
            await pilot.pause(0.02)
            if ENV not in app.main.states:
                break
        assert ENV not in app.main.states
        envs = app.main.query_one(EnvironmentList)
        assert "not running" in str(envs.get_option_at_index(0).prompt)


async def test_digits_switch_tabs(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for digit, tab, _ in TABS:
            await pilot.press(digit)
            assert active_tab(app) == tab
        await pilot.press("slash", *"GET", "escape")  # focus in the Logs tab's view
        for digit, tab, _ in TABS:
            await pilot.press(digit)
            await pilot.pause()
            assert active_tab(app) == tab


async def test_question_mark_shows_every_key(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(str(w.render()) for w in app.screen.query("Static"))
        del shown  # the table renders lazily; its rows come from KEYS, checked below
        from tui.screens.help import keys_table

        rows = keys_table().columns[1]._cells
        for key in KEYS:
            assert key.help in rows
        await pilot.press("escape")
        assert app.screen is app.main


async def test_every_action_is_in_the_command_palette(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {command.title for command in app.get_system_commands(app.main)}
        for key in KEYS:
            assert key.label in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Copy URL")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.clipboard == f"http://{ENV}.shop.localhost:8080/"


async def test_q_quits_at_once_while_a_log_stream_and_an_up_run(make_app: AppFactory,
                                                                 runtime: FakeRuntime) -> None:
    """The up is still held when the app has gone: quitting did not wait for it.

    Should quitting wait for the worker, the up is released only by the safety timer (so the
    test fails instead of hanging), however slow or loaded the machine is.
    """
    hold = threading.Event()
    released_by_timer = threading.Event()

    def release() -> None:
        released_by_timer.set()
        hold.set()

    timer = threading.Timer(30.0, release)
    app = make_app(up=FakeUp(runtime, hold=hold))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, lines=12)
        await pilot.press("u")
        await pilot.pause(0.05)
        timer.start()
        await pilot.press("q")
        await pilot.pause()
    held_at_exit = not hold.is_set()
    timer.cancel()
    hold.set()
    assert held_at_exit and not released_by_timer.is_set(), "quitting waited for the up to finish"
    assert app.return_code == 0
    assert runtime.stopped.wait(5.0), "the log stream was told to stop"


async def test_an_unreachable_engine_is_an_error_state_not_a_crash(make_app: AppFactory,
                                                                    runtime: FakeRuntime) -> None:
    runtime.error = DevmeshError("cannot reach the Docker engine at unix:///var/run/docker.sock",
                                 hint="start Docker, or set DOCKER_HOST")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        text = activity_text(app)
        assert "cannot reach the Docker engine" in text and "hint: start Docker" in text
        assert "not answering" in str(app.main.query_one("#header").render())
        runtime.error = None
        await pilot.press("r")
        for _ in range(100):
            await pilot.pause(0.02)
            if app.main.states:
                break
        assert "the runtime answers again" in activity_text(app)


@pytest.mark.parametrize("step", [Step("removed x", at=EVENT_AT)])
async def test_down_events_reach_the_activity_tab(make_app: AppFactory, runtime: FakeRuntime, step: Step) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.main.post_message(MainScreen.CoreEvent(step))
        await pilot.pause()
        assert "removed x" in activity_text(app)
