"""Promotion: the tier rule, trailers, one commit per promotion, refusals that leave no trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devmesh.errors import UserInputError
from devmesh.gitops.cache import clone_dir, open_checkout
from devmesh.gitops.history import read_history
from devmesh.gitops.land import compare_url
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.settings import ManifestSettings
from tests.gitops.gitops_helpers import digest_ref, git, log_subjects, pin_of

A, B = digest_ref("a"), digest_ref("b")


def _trailers(remote: Path, rev: str = "main") -> str:
    return git(remote, "log", "-1", "--format=%(trailers:only=true)", rev).strip()


def test_first_tier_takes_the_given_digest_with_trailers(checkout: Any, remote: Path) -> None:
    with checkout() as co:
        result = promote(co, PromotionRequest("api", "dev", A))
    assert result.promotion is not None and result.landed.attempts == 1
    assert log_subjects(remote)[0] == "promote api to dev: sha256:aaaaaaaaaaaa"
    assert _trailers(remote).splitlines() == [
        "Devmesh-Service: api",
        "Devmesh-Tier: dev",
        f"Devmesh-Image: {A}",
        "Devmesh-From: none",
    ]
    assert git(remote, "show", "--format=", "--name-only", "main").split() == ["tiers/dev/kustomization.yaml"]
    assert git(remote, "rev-list", "--merges", "main") == ""


def test_later_tiers_take_only_what_the_tier_below_runs(checkout: Any, remote: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("api", "beta"))  # no image: the one dev runs
        assert pin_of(co, "beta", "api") == A
        with pytest.raises(UserInputError, match="prod only takes the image beta runs now"):
            promote(co, PromotionRequest("api", "prod", B))
        with pytest.raises(UserInputError, match="web has no image in dev"):
            promote(co, PromotionRequest("web", "beta"))
        promote(co, PromotionRequest("api", "dev", B))
        with pytest.raises(UserInputError, match=r"beta runs sha256:aaaaaaaaaaaa, not sha256:bbbbbbbbbbbb"):
            promote(co, PromotionRequest("api", "prod", B))  # dev runs B, but beta still runs A
        promote(co, PromotionRequest("api", "prod"))
        assert pin_of(co, "prod", "api") == A
    assert "Devmesh-From: none" in _trailers(remote)
    assert log_subjects(remote)[0] == "promote api to prod from beta: sha256:aaaaaaaaaaaa"


def test_the_same_digest_again_is_a_no_op(checkout: Any, remote: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        before = log_subjects(remote)
        again = promote(co, PromotionRequest("api", "dev", A))
    assert again.promotion is None and again.landed.commit is None
    assert again.landed.unchanged == "api in dev already runs sha256:aaaaaaaaaaaa: nothing to promote"
    assert log_subjects(remote) == before


def test_force_overrides_the_rule_and_records_the_reason(checkout: Any, remote: Path) -> None:
    with pytest.raises(UserInputError, match="--force needs --reason"):
        PromotionRequest("api", "prod", B, force=True)
    with pytest.raises(UserInputError, match="--reason is only for --force"):
        PromotionRequest("api", "prod", B, reason="why")
    with checkout() as co:
        result = promote(co, PromotionRequest("api", "prod", B, force=True, reason="hotfix for\nINC-42"))
        assert pin_of(co, "prod", "api") == B
        entry = read_history(co)[0]
    assert result.promotion is not None and result.promotion.reason
    assert "Devmesh-Reason: hotfix for INC-42" in _trailers(remote)
    assert entry.forced and entry.reason == "hotfix for INC-42"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (PromotionRequest("nope", "dev", A), "unknown service 'nope'"),
        (PromotionRequest("api", "staging", A), "unknown tier 'staging'; the tiers are, in order: dev, beta, prod"),
        (PromotionRequest("api", "dev"), r"needs --image REF"),
    ],
)
def test_refusals_leave_the_remote_and_the_cache_clean(
    checkout: Any, remote: Path, laid_out: ManifestSettings, request_: PromotionRequest, message: str
) -> None:
    before = git(remote, "rev-parse", "main")
    with checkout() as co, pytest.raises(UserInputError, match=message):
        promote(co, request_)
    assert git(remote, "rev-parse", "main") == before
    cache = clone_dir(laid_out.url)
    assert git(cache, "status", "--porcelain") == ""
    assert git(cache, "rev-parse", "HEAD") == before


def test_a_repo_without_tiers_yaml_is_refused(remote: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    (work / "README.md").write_text("not a layout\n")
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "readme")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    with open_checkout(ManifestSettings(url=str(remote))) as co:
        with pytest.raises(UserInputError, match=f"manifest repo {remote} has no tiers.yaml"):
            promote(co, PromotionRequest("api", "dev", A))


def test_an_empty_repo_is_refused_with_a_hint(remote: Path) -> None:
    with open_checkout(ManifestSettings(url=str(remote))) as co:
        with pytest.raises(UserInputError, match="is empty") as info:
            promote(co, PromotionRequest("api", "dev", A))
    assert info.value.hint and "manifests init" in info.value.hint


def test_pull_request_mode_pushes_a_new_branch(laid_out: ManifestSettings, remote: Path) -> None:
    settings = ManifestSettings(url=laid_out.url, mode="pull-request")
    before = git(remote, "rev-parse", "main")
    with open_checkout(settings) as co:
        result = promote(co, PromotionRequest("api", "dev", A))
        assert pin_of(co, "dev", "api") is None  # the cache is back on main
        again = promote(co, PromotionRequest("api", "dev", A))
    assert again.landed.unchanged == f"already proposed on branch devmesh/promote-api-dev-{'a' * 12}"
    branch = f"devmesh/promote-api-dev-{'a' * 12}"
    assert result.landed.proposed and result.landed.branch == branch
    assert result.landed.compare_url is None  # a local path has no web page
    assert git(remote, "rev-parse", "main") == before
    assert git(remote, "rev-parse", f"{branch}~1") == before
    assert "Devmesh-Tier: dev" in _trailers(remote, branch)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("git@github.com:team/manifests.git", "https://github.com/team/manifests/compare/main...b?expand=1"),
        ("https://git.example.test/team/manifests", "https://git.example.test/team/manifests/compare/main...b?expand=1"),
        ("ssh://git@git.example.test:2222/team/m.git", "https://git.example.test/team/m/compare/main...b?expand=1"),
        ("/srv/manifests.git", None),
    ],
)
def test_compare_urls(url: str, expected: str | None) -> None:
    assert compare_url(url, "main", "b") == expected
