"""The release use cases on real git repos: previews with the exact diff, made on the real
checkout without touching it; landing exactly what was previewed; the tier rule for local
images before any push; which tier moves next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devmesh.app.releases import (
    ChangePreview,
    ManifestRepo,
    NoImageYet,
    land,
    preview_promotion,
    preview_rollback,
    resolve_image,
    tier_overview,
)
from devmesh.errors import UserInputError
from devmesh.gitops.images import ImageRef
from devmesh.gitops.land import Unchanged
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.settings import ManifestSettings
from tests.gitops.gitops_helpers import digest_ref, git, log_subjects, pin_of

A, B, C = digest_ref("a"), digest_ref("b"), digest_ref("c")


def hunks(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]


class Pushes:
    """Stands for the registry: records each push and pins it to digest ``d``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def __call__(self, local: str, app: str, service: str) -> ImageRef:
        self.seen.append((local, app, service))
        return digest_ref("d", f"127.0.0.1:5001/{app}/{service}")


@pytest.fixture
def repo(laid_out: ManifestSettings) -> ManifestRepo:
    return ManifestRepo(laid_out, "shop")


def _promote(checkout: Any, service: str, tier: str, image: ImageRef | None = None) -> None:
    with checkout() as co:
        promote(co, PromotionRequest(service, tier, image), app="shop")


def test_a_promotion_preview_is_the_diff_that_lands(repo: ManifestRepo, checkout: Any, remote: Path) -> None:
    _promote(checkout, "api", "dev", A)
    before = log_subjects(remote)
    preview = preview_promotion(repo, "api", "beta")
    assert isinstance(preview, ChangePreview)
    assert preview.path == "tiers/beta/kustomization.yaml"
    assert preview.title == "promote api to beta from dev"
    assert preview.rule.startswith("beta only takes the image dev runs now: sha256:aaaaaaaaaaaa")
    assert "+    digest: sha256:" + "a" * 64 in preview.diff.splitlines()
    assert preview.message.startswith("promote api to beta from dev: sha256:aaaaaaaaaaaa\n")
    assert preview.destination == f"committed and pushed to main of {remote}"
    assert log_subjects(remote) == before  # a preview commits nothing
    with checkout() as co:
        assert co.git("status", "--porcelain") == ""  # and leaves the real checkout as it was
        assert pin_of(co, "beta", "api") is None

    landing = land(repo, preview)

    assert landing.unchanged is None and landing.promotion is not None and landing.promotion.image == A
    assert hunks(git(remote, "show", "--format=", "main")) == hunks(preview.diff)
    assert log_subjects(remote)[0] == "promote api to beta from dev: sha256:aaaaaaaaaaaa"


def test_the_diff_is_of_the_file_as_stored(repo: ManifestRepo, checkout: Any, remote: Path) -> None:
    """A tier file with CRLF line ends: the preview shows only the pin's lines changing, as the
    commit does (a copy read with newline translation would show every line)."""
    _promote(checkout, "api", "dev", A)
    with checkout() as co:
        path = co.layout().tier_file("beta")
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        co.commit("beta with CRLF line ends", [co.relative(path)])
        co.git("push", "--quiet", "origin", "HEAD:main")
    preview = preview_promotion(repo, "api", "beta")
    assert isinstance(preview, ChangePreview)
    changed = hunks(preview.diff)
    assert changed and all(line.startswith("+") for line in changed)  # the images: entry, added
    land(repo, preview)
    committed = hunks(git(remote, "show", "--format=", "main"))
    assert [line.rstrip("\r") for line in committed] == [line.rstrip("\r\n") for line in changed]


def test_landing_pins_the_previewed_image_not_what_the_tier_below_runs_by_then(
        repo: ManifestRepo, checkout: Any, remote: Path) -> None:
    _promote(checkout, "api", "dev", A)
    preview = preview_promotion(repo, "api", "beta")
    assert isinstance(preview, ChangePreview) and preview.image == A
    _promote(checkout, "api", "dev", B)  # someone else, between the preview and the confirmation
    moved = log_subjects(remote)
    with pytest.raises(UserInputError, match="beta only takes the image dev runs now, and dev runs sha256:bbbb"):
        land(repo, preview)
    assert log_subjects(remote) == moved
    with checkout() as co:
        assert pin_of(co, "beta", "api") is None


def test_an_unchanged_promotion_is_an_answer_not_an_error(repo: ManifestRepo, checkout: Any) -> None:
    _promote(checkout, "api", "dev", A)
    found = preview_promotion(repo, "api", "dev", image=str(A))
    assert found == Unchanged("api in dev already runs sha256:aaaaaaaaaaaa: nothing to promote")


def test_a_forced_preview_says_the_rule_is_overridden(repo: ManifestRepo, checkout: Any) -> None:
    _promote(checkout, "api", "dev", A)
    preview = preview_promotion(repo, "api", "prod", image=str(B), force=True, reason="INC-7")
    assert isinstance(preview, ChangePreview)
    assert preview.rule == "prod only takes the image beta runs now; overridden: INC-7"
    landing = land(repo, preview)
    assert landing.promotion is not None and landing.promotion.reason == "INC-7"
    with pytest.raises(UserInputError, match="--force needs --reason"):
        preview_promotion(repo, "api", "prod", image=str(B), force=True)


def test_without_a_tier_the_lowest_tier_that_may_move_up(repo: ManifestRepo, checkout: Any) -> None:
    with pytest.raises(NoImageYet, match="api has no image in dev, the first tier, yet"):
        preview_promotion(repo, "api")
    _promote(checkout, "api", "dev", A)
    _promote(checkout, "api", "beta")
    preview = preview_promotion(repo, "api")
    assert isinstance(preview, ChangePreview) and preview.tier == "prod"
    land(repo, preview)
    with pytest.raises(UserInputError, match="nothing to promote: every tier runs api's image sha256:aaaa"):
        preview_promotion(repo, "api")


def test_a_local_image_goes_only_into_the_first_tier_and_is_pushed_after_the_rule(
        laid_out: ManifestSettings, checkout: Any) -> None:
    pushes = Pushes()
    repo = ManifestRepo(laid_out, "shop", publish=pushes)
    with pytest.raises(UserInputError, match="beta only takes the image dev runs now; a local image would be a new"):
        resolve_image(repo, "api", "beta", "shop/api:mine")
    with pytest.raises(UserInputError, match="unknown service 'nope'"):
        resolve_image(repo, "nope", "dev", "shop/api:mine")
    assert pushes.seen == []  # refused before anything was pushed
    assert resolve_image(repo, "api", "beta", "shop/api:mine", force=True) == digest_ref("d")
    preview = preview_promotion(repo, "api", None, image="shop/api:mine")
    assert isinstance(preview, ChangePreview) and preview.tier == "dev" and preview.image == digest_ref("d")
    assert pushes.seen == [("shop/api:mine", "shop", "api")] * 2
    assert resolve_image(repo, "api", "beta", str(A)) == A  # a digest reference is taken as given
    with pytest.raises(UserInputError, match="is not pinned by digest"):
        resolve_image(repo, "api", "dev", "api@sha256:abc")
    assert len(pushes.seen) == 2


def test_a_push_is_announced(laid_out: ManifestSettings) -> None:
    heard: list[str] = []
    repo = ManifestRepo(laid_out, "shop", notify=heard.append, publish=Pushes())
    resolve_image(repo, "api", "dev", "shop/api:mine")
    assert f"pushing shop/api:mine to {laid_out.registry}" in heard


def test_a_rollback_preview_is_the_diff_that_lands(repo: ManifestRepo, checkout: Any, remote: Path) -> None:
    _promote(checkout, "api", "dev", A)
    _promote(checkout, "api", "dev", B)
    before = log_subjects(remote)
    preview = preview_rollback(repo, "api")  # no tier: where it was last promoted
    assert preview.tier == "dev" and preview.image == A
    assert preview.message.startswith('Revert "promote api to dev: sha256:bbbbbbbbbbbb"')
    assert "+    digest: sha256:" + "a" * 64 in preview.diff.splitlines()
    assert "-    digest: sha256:" + "b" * 64 in preview.diff.splitlines()
    assert log_subjects(remote) == before
    landing = land(repo, preview)
    assert landing.warning is None and landing.rollback is not None and landing.rollback.reverts == preview.reverts
    assert hunks(git(remote, "show", "--format=", "main")) == hunks(preview.diff)


def test_a_rollback_that_reverts_another_promotion_than_shown_says_so(
        repo: ManifestRepo, checkout: Any) -> None:
    _promote(checkout, "api", "dev", A)
    preview = preview_rollback(repo, "api", "dev")
    _promote(checkout, "api", "dev", B)  # meanwhile: the latest promotion is another one
    landing = land(repo, preview)
    assert landing.rollback is not None and landing.rollback.rolled_back == B
    assert landing.warning is not None and landing.warning.startswith("the manifest repo moved meanwhile: reverted ")
    assert f"not {preview.reverts[:10] if preview.reverts else ''} as shown" in landing.warning


def test_nothing_to_roll_back(repo: ManifestRepo) -> None:
    with pytest.raises(UserInputError, match="nothing to roll back: api has no promotion or strategy left to revert"):
        preview_rollback(repo, "api")
    with pytest.raises(UserInputError, match="nothing to roll back: api has no promotion or strategy in beta left"):
        preview_rollback(repo, "api", "beta")


def test_tier_overview_gives_each_cell_its_next_step(repo: ManifestRepo, checkout: Any, remote: Path) -> None:
    _promote(checkout, "api", "dev", A)
    _promote(checkout, "api", "beta")
    _promote(checkout, "web", "dev", digest_ref("c", "127.0.0.1:5001/shop/web"))
    overview = tier_overview(repo)
    assert overview.source == str(remote) and overview.mode == "push"
    steps = overview.steps
    assert steps[("api", "dev")].up_to_date  # beta runs a too
    assert steps[("api", "beta")].image == A and steps[("api", "beta")].target == "prod"
    assert steps[("api", "prod")].target is None
    assert steps[("web", "dev")].image is not None and steps[("web", "dev")].target == "beta"
    assert steps[("worker", "dev")].blocked == "worker has no image in dev, the tier below beta: promote it into dev first"
    assert not steps[("worker", "dev")].up_to_date
