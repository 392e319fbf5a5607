"""`p` and `b` through the modal, against a real manifest repo (a bare remote in a temp dir)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devmesh.gitops.cache import open_checkout
from devmesh.gitops.settings import ManifestSettings
from tests.tui.conftest import SIZE, AppFactory, settle
from tui.manifests import ChangePreview, Refusal, preview_promotion
from tui.screens.change import ChangeScreen
from tui.screens.main import MainScreen
from tui.widgets.activity_log import ActivityLog
from tui.widgets.change_view import ChangeView
from tui.widgets.service_table import ServiceTable
from tui.widgets.tiers_pane import TiersPane


def remote_log(settings: ManifestSettings) -> list[str]:
    done = subprocess.run(["git", "log", "--format=%s", "main"], cwd=settings.url, capture_output=True,
                          text=True, check=True)
    return done.stdout.splitlines()


def pin(settings: ManifestSettings, tier: str, service: str) -> str | None:
    with open_checkout(settings) as checkout:
        found = checkout.layout().pin(tier, "shop", service)
    return found.digest[7:8] if found else None


async def _modal(pilot: object, app: object) -> ChangeScreen:
    for _ in range(250):
        await pilot.pause(0.02)  # type: ignore[attr-defined]
        screen = app.screen  # type: ignore[attr-defined]
        if isinstance(screen, ChangeScreen) and not screen.busy:
            return screen
    raise AssertionError("the modal did not get ready")


async def _back_to_main(pilot: object, app: object) -> None:
    for _ in range(250):
        await pilot.pause(0.02)  # type: ignore[attr-defined]
        if isinstance(app.screen, MainScreen):  # type: ignore[attr-defined]
            return
    raise AssertionError("the modal did not close")


def _modal_text(screen: ChangeScreen) -> str:
    return str(screen.query_one(ChangeView).render()) + str(screen.query_one("#change-title").render())


async def _cursor_on(pilot: object, app: object, service: str, tier: str) -> None:
    await pilot.press("2")  # type: ignore[attr-defined]
    pane = app.main.query_one(TiersPane)  # type: ignore[attr-defined]
    table = pane.table
    row = list(pane.view.matrix.services).index(service)
    column = 1 + table.tier_names.index(tier)
    table.focus()
    table.move_cursor(row=row, column=column, animate=False)
    await pilot.pause()  # type: ignore[attr-defined]


async def test_p_on_a_tier_cell_shows_the_exact_diff_and_enter_commits_it(
        make_app: AppFactory, manifests: ManifestSettings) -> None:
    app = make_app()
    before = remote_log(manifests)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await _cursor_on(pilot, app, "web", "dev")
        await pilot.press("p")
        screen = await _modal(pilot, app)
        assert isinstance(screen.preview, ChangePreview)
        text = _modal_text(screen)
        assert "promote web to beta from dev" in text
        assert "beta only takes the image dev runs now" in text
        assert "-    digest: sha256:" + "c" * 64 in text
        assert "+    digest: sha256:" + "b" * 64 in text
        assert "Devmesh-Tier: beta" in text
        assert remote_log(manifests) == before  # nothing is committed before enter
        await pilot.press("enter")
        await _back_to_main(pilot, app)
        assert "promoted web to beta" in "\n".join(app.main.query_one(ActivityLog).entries)
    assert remote_log(manifests)[0] == "promote web to beta from dev: sha256:bbbbbbbbbbbb"
    assert pin(manifests, "beta", "web") == "b"


async def test_the_diff_shown_is_the_diff_committed(make_app: AppFactory, manifests: ManifestSettings) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await _cursor_on(pilot, app, "api", "beta")
        await pilot.press("p")
        screen = await _modal(pilot, app)
        assert screen.preview is not None
        shown = screen.preview.diff
        await pilot.press("enter")
        await _back_to_main(pilot, app)
    committed = subprocess.run(["git", "show", "--format=", "main"], cwd=manifests.url, capture_output=True,
                               text=True, check=True).stdout
    hunks = lambda diff: [l for l in diff.splitlines() if l[:1] in "+-" and not l.startswith(("+++", "---"))]  # noqa: E731
    assert hunks(committed) == hunks(shown) and hunks(shown)


async def test_escape_cancels_and_commits_nothing(make_app: AppFactory, manifests: ManifestSettings) -> None:
    app = make_app()
    before = remote_log(manifests)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await _cursor_on(pilot, app, "web", "dev")
        await pilot.press("p")
        await _modal(pilot, app)
        await pilot.press("escape")
        await _back_to_main(pilot, app)
    assert remote_log(manifests) == before


async def test_a_blocked_promotion_shows_the_tier_rule_not_a_traceback(
        make_app: AppFactory, manifests: ManifestSettings) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        pane = app.main.query_one(TiersPane)
        assert pane.view is not None
        assert pane.view.verdicts[("worker", "dev")].text.startswith("blocked: worker has no image in dev")
        await _cursor_on(pilot, app, "worker", "dev")
        await pilot.press("p")
        screen = await _modal(pilot, app)
        assert isinstance(screen.refusal, Refusal)
        text = _modal_text(screen)
        assert "worker has no image in dev, the tier below beta: promote it into dev first" in text
        assert "Traceback" not in text
        await pilot.press("enter")
        await _back_to_main(pilot, app)


async def test_p_in_the_last_tier_says_so(make_app: AppFactory, manifests: ManifestSettings) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await _cursor_on(pilot, app, "web", "prod")
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert "prod is the last tier" in "\n".join(app.main.query_one(ActivityLog).entries)


async def test_p_on_a_forked_service_promotes_the_branch_build_into_the_first_tier(
        make_app: AppFactory, manifests: ManifestSettings) -> None:
    published: list[tuple[str, str]] = []

    def publish(local: str, service: str) -> object:
        from tests.tui.conftest import ref

        published.append((local, service))
        return ref("d", service)

    app = make_app(publish=publish)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.main.query_one(ServiceTable).service == "api"
        await pilot.press("p")
        screen = await _modal(pilot, app)
        assert "dev is the first tier" in _modal_text(screen)
        await pilot.press("enter")
        await _back_to_main(pilot, app)
    assert published == [("devmesh.local/shop/api:9f86d081884c7d65", "api")]
    assert pin(manifests, "dev", "api") == "d"


async def test_p_on_a_baseline_service_moves_it_up_one_tier(make_app: AppFactory,
                                                            manifests: ManifestSettings) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.main.query_one(ServiceTable)
        table.focus()
        await pilot.press("down")  # web: a baseline service here
        await pilot.pause()
        assert table.service == "web"
        await pilot.press("p")
        screen = await _modal(pilot, app)
        assert screen.preview is not None and screen.preview.tier == "beta"
        await pilot.press("enter")
        await _back_to_main(pilot, app)
    assert pin(manifests, "beta", "web") == "b"


async def test_b_rolls_back_the_latest_promotion_through_the_modal(make_app: AppFactory,
                                                                   manifests: ManifestSettings) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.main.query_one(ServiceTable)
        table.focus()
        await pilot.press("down")
        await pilot.press("b")  # web's latest promotion: b into dev
        screen = await _modal(pilot, app)
        text = _modal_text(screen)
        assert "roll back web in dev" in text
        assert "+    digest: sha256:" + "c" * 64 in text and "-    digest: sha256:" + "b" * 64 in text
        assert 'Revert "promote web to dev: sha256:bbbbbbbbbbbb"' in text
        await pilot.press("enter")
        await _back_to_main(pilot, app)
    assert remote_log(manifests)[0] == 'Revert "promote web to dev: sha256:bbbbbbbbbbbb"'
    assert pin(manifests, "dev", "web") == "c"


async def test_b_with_nothing_to_roll_back_says_so(make_app: AppFactory, manifests: ManifestSettings) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        table = app.main.query_one(ServiceTable)
        table.focus()
        await pilot.press("down", "down")  # worker: never promoted
        await pilot.press("b")
        screen = await _modal(pilot, app)
        assert "nothing to roll back: worker has no promotion or strategy left to revert" in _modal_text(screen)
        await pilot.press("escape")
        await _back_to_main(pilot, app)


async def test_no_manifest_repo_is_a_message_in_the_tiers_tab_and_the_modal(
        make_app: AppFactory, tmp_path: Path) -> None:
    from devmesh.config import load_project
    from tests.gitops.gitops_helpers import write_project

    bare = load_project(write_project(tmp_path / "bare", None))
    app = make_app(project=bare)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        assert "no manifest repo configured" in str(app.main.query_one("#tiers-source").render())
        await pilot.press("1")
        await pilot.press("p")
        screen = await _modal(pilot, app)
        assert "no manifest repo configured" in _modal_text(screen)


def test_preview_leaves_the_cached_clone_clean(manifests: ManifestSettings, make_app: AppFactory) -> None:
    app = make_app()
    preview = preview_promotion(app.sources, "web", "beta")
    assert isinstance(preview, ChangePreview)
    with open_checkout(manifests) as checkout:
        assert checkout.git("status", "--porcelain").strip() == ""


async def test_c_and_w_run_a_tier_canary_and_a_switch_as_commits(
        make_app: AppFactory, manifests: ManifestSettings) -> None:
    from tui.widgets.tier_table import TierTable

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await _cursor_on(pilot, app, "web", "beta")
        await pilot.press("c")
        screen = await _modal(pilot, app)
        assert isinstance(screen.preview, ChangePreview), screen.refusal
        text = _modal_text(screen)
        assert "canary web in beta" in text and "to sha256:bbbbbbbbbbbb from dev" in text
        assert "+  name: web-candidate" in text and "Devmesh-Traffic: " in text
        await pilot.press("enter")
        await _back_to_main(pilot, app)
        first = remote_log(manifests)[0]
        assert first.startswith("canary web in beta: ")
        for _ in range(100):  # the matrix is read again after a landing
            await pilot.pause(0.02)
            if "⑂canary" in str(app.main.query_one(TierTable).get_row("web")):
                break
        assert "⑂canary" in str(app.main.query_one(TierTable).get_row("web"))

        await _cursor_on(pilot, app, "web", "beta")
        await pilot.press("c")  # the next step of the open canary
        await _modal(pilot, app)
        await pilot.press("enter")
        await _back_to_main(pilot, app)
        second = remote_log(manifests)[0]
        assert second.startswith("canary web in beta: ") and second != first

        await _cursor_on(pilot, app, "web", "beta")
        await pilot.press("w")
        await _modal(pilot, app)
        await pilot.press("enter")
        await _back_to_main(pilot, app)
        assert remote_log(manifests)[0] == "switch web in beta to sha256:bbbbbbbbbbbb from dev"

        await _cursor_on(pilot, app, "api", "beta")
        await pilot.press("c")  # dev runs what beta runs: there is no second version
        screen = await _modal(pilot, app)
        assert isinstance(screen.refusal, Refusal)
        assert "runs sha256:aaaaaaaaaaaa of api as its primary version already" in _modal_text(screen)


async def test_c_outside_the_tiers_tab_says_where_it_works(make_app: AppFactory, manifests: ManifestSettings) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("1")
        await pilot.press("c")
        await pilot.pause()
        assert "a canary runs in a tier" in "\n".join(app.main.query_one(ActivityLog).entries)
