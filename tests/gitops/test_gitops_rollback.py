"""Rollback: revert semantics that survive interleaved promotions; history from trailers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devmesh.errors import UserInputError
from devmesh.gitops.history import read_history
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.rollback import rollback
from tests.gitops.gitops_helpers import digest_ref, git, pin_of

A, B, C = digest_ref("a"), digest_ref("b"), digest_ref("c")
WEB1, WEB2 = digest_ref("1", "127.0.0.1:5001/shop/web"), digest_ref("2", "127.0.0.1:5001/shop/web")


def test_rollback_with_interleaved_promotions_of_other_services(checkout: Any, remote: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("web", "dev", WEB1))  # same file, neighbouring lines
        promote(co, PromotionRequest("api", "dev", B))
        promote(co, PromotionRequest("web", "dev", WEB2))
        promote(co, PromotionRequest("web", "beta"))  # another tier
        promote(co, PromotionRequest("api", "beta"))
        target = git(remote, "log", "--format=%H", "--grep=promote api to dev: sha256:bbbb", "main").strip()

        result = rollback(co, "api", "dev")

        assert result.rollback is not None and result.rollback.reverts == target
        assert pin_of(co, "dev", "api") == A
        assert pin_of(co, "dev", "web") == WEB2  # later changes to other services survive
        assert pin_of(co, "beta", "api") == B  # and to other tiers
        assert pin_of(co, "beta", "web") == WEB2
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert message.startswith('Revert "promote api to dev: sha256:bbbbbbbbbbbb"\n\nThis reverts commit ' + target)
    assert f"Devmesh-Reverts: {target}" in message
    assert git(remote, "show", "--format=", "--name-only", "main").split() == ["tiers/dev/kustomization.yaml"]
    assert git(remote, "rev-list", "--merges", "main") == ""


def test_rollbacks_step_back_through_promotions_then_refuse(checkout: Any) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("api", "dev", B))
        rollback(co, "api", "dev")
        promote(co, PromotionRequest("api", "dev", C))
        rollback(co, "api", "dev")  # undoes C
        assert pin_of(co, "dev", "api") == A
        rollback(co, "api", "dev")  # undoes A: nothing pinned
        assert pin_of(co, "dev", "api") is None
        with pytest.raises(UserInputError, match="nothing to roll back: api has no promotion or strategy in dev left"):
            rollback(co, "api", "dev")
        with pytest.raises(UserInputError, match="nothing to roll back"):
            rollback(co, "web", "prod")


def test_rollback_refuses_when_the_tier_file_was_edited_by_hand(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
    work = tmp_path / "human"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    path = work / "tiers/dev/kustomization.yaml"
    path.write_text(path.read_text().replace("a" * 64, "e" * 64))
    git(work, "commit", "--quiet", "-am", "hand edit")
    git(work, "push", "--quiet", "origin", "main")
    before = git(remote, "rev-parse", "main")
    with checkout() as co, pytest.raises(UserInputError, match="changed outside devmesh; nothing rolled back"):
        rollback(co, "api", "dev")
    assert git(remote, "rev-parse", "main") == before


def test_rollback_of_unknown_service_or_tier(checkout: Any) -> None:
    with checkout() as co:
        with pytest.raises(UserInputError, match="unknown service 'nope'"):
            rollback(co, "nope", "dev")
        with pytest.raises(UserInputError, match="unknown tier 'qa'"):
            rollback(co, "api", "qa")


def test_history_reads_promotions_and_rollbacks_from_trailers(checkout: Any) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("web", "dev", WEB1))
        promote(co, PromotionRequest("api", "beta"))
        promote(co, PromotionRequest("api", "prod", B, force=True, reason="INC-7"))
        rollback(co, "api", "prod")
        everything = read_history(co)
        api_prod = read_history(co, "api", "prod")
        dev = read_history(co, tier="dev")
    assert [(e.kind, e.service, e.tier) for e in everything] == [
        ("rollback", "api", "prod"),
        ("promote", "api", "prod"),
        ("promote", "api", "beta"),
        ("promote", "web", "dev"),
        ("promote", "api", "dev"),
    ]
    assert api_prod[0].reverts == api_prod[1].commit and api_prod[0].image is None and api_prod[0].previous == B
    assert api_prod[1].reason == "INC-7" and api_prod[1].previous is None
    assert [e.service for e in dev] == ["web", "api"]
    assert everything[0].author == "Ada Tester" and everything[0].email == "ada@example.test"
