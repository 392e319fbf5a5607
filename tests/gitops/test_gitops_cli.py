"""The commands as a person or a script uses them: output, JSON schema, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from devmesh.gitops.cache import open_checkout
from devmesh.gitops.images import parse_image_ref
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.settings import ManifestSettings
from tests.gitops.gitops_helpers import git, write_project

A = "127.0.0.1:5001/shop/api@sha256:" + "a" * 64
B = "127.0.0.1:5001/shop/api@sha256:" + "b" * 64


@pytest.fixture
def shop(project_file: Path, devmesh: Any) -> Path:
    root = project_file.parent
    result = devmesh(root, "manifests", "init", "--tiers", "dev,beta,prod")
    assert result.code == 0, result.err
    assert result.out.startswith("wrote the layout for shop (api, web, worker; tiers dev, beta, prod): commit ")
    return root


def test_promote_tiers_history_rollback(shop: Path, devmesh: Any, remote: Path) -> None:
    first = devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "--yes")
    assert first.code == 0 and first.out.startswith(f"promoted api to dev: {A}: commit ")
    assert devmesh(shop, "promote", "api", "--to", "beta", "-y").code == 0
    again = devmesh(shop, "promote", "api", "--to", "beta", "-y")
    assert again.code == 0 and again.out == "api in beta already runs sha256:aaaaaaaaaaaa: nothing to promote\n"

    table = devmesh(shop, "tiers")
    assert table.code == 0
    header, api_row, web_row, _ = table.out.splitlines()
    assert header.split() == ["SERVICE", "dev", "beta", "prod"]
    assert api_row.startswith("api") and api_row.count("aaaaaaaaaaaa") == 2 and "Ada Tester" in api_row
    assert web_row.split() == ["web", "-", "-", "-"]

    history = devmesh(shop, "history", "api")
    assert history.code == 0 and len(history.out.splitlines()) == 3

    back = devmesh(shop, "rollback", "api", "--tier", "beta", "--yes")
    assert back.code == 0 and back.out.startswith("rolled back api in beta to no pinned image (reverted ")
    assert git(remote, "log", "-1", "--format=%s", "main").startswith('Revert "promote api to beta')


def test_tiers_json_schema(shop: Path, devmesh: Any) -> None:
    devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "--yes")
    data = json.loads(devmesh(shop, "tiers", "--json").out)
    assert data["tiers"] == ["dev", "beta", "prod"]
    assert set(data["services"]) == {"api", "web", "worker"}
    assert set(data["services"]["api"]) == {"dev", "beta", "prod"}
    dev = data["services"]["api"]["dev"]
    assert dev["image"] == A and dev["digest"] == "sha256:" + "a" * 64
    assert dev["promoted_by"] == "Ada Tester" and dev["promoted_at"] and dev["via"] == "promote"
    assert dev["next_may_take"] is True
    assert data["services"]["api"]["beta"]["image"] is None
    assert data["services"]["api"]["beta"]["next_may_take"] is False
    assert data["services"]["api"]["prod"]["next_may_take"] is None  # the last tier
    assert data["services"]["web"]["dev"] == {
        "image": None, "digest": None, "short": None, "promoted_at": None, "promoted_by": None,
        "commit": None, "via": None, "next_may_take": False, "traffic": None, "split": "one version",
    }


def test_history_json(shop: Path, devmesh: Any) -> None:
    devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "--yes")
    devmesh(shop, "promote", "api", "--to", "prod", "--image", B, "--force", "--reason", "INC-9", "--yes")
    entries = json.loads(devmesh(shop, "history", "--json").out)
    assert [(e["service"], e["tier"], e["kind"], e["forced"]) for e in entries] == [
        ("api", "prod", "promote", True),
        ("api", "dev", "promote", False),
    ]
    assert entries[0]["reason"] == "INC-9" and entries[0]["image"] == B and entries[0]["from"] is None
    assert json.loads(devmesh(shop, "history", "--tier", "beta", "--json").out) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["promote", "api", "--to", "prod", "--image", B, "--yes"], "error: prod only takes the image beta runs now"),
        (["promote", "api", "--to", "prod", "--force", "--yes"], "error: --force needs --reason"),
        (["promote", "nope", "--to", "dev", "--image", A, "--yes"], "error: unknown service 'nope'"),
        (["promote", "api", "--to", "qa", "--image", A, "--yes"], "error: unknown tier 'qa'"),
        (["promote", "api", "--to", "dev", "--image", "api@sha256:abc", "--yes"], "is not pinned by digest"),
        (["promote", "api", "--to", "dev", "--image", A], "not confirmed; pass --yes"),
        (["rollback", "api", "--tier", "dev", "--yes"], "error: nothing to roll back"),
        (["history", "--tier", "qa"], "error: unknown tier 'qa'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(shop: Path, devmesh: Any, remote: Path, args: list[str], message: str) -> None:
    before = git(remote, "rev-parse", "main")
    result = devmesh(shop, *args)
    assert result.code == 2, result.err
    assert message in result.err.splitlines()[0]
    assert "Traceback" not in result.err
    assert git(remote, "rev-parse", "main") == before


def test_environment_variable_without_a_project(shop: Path, devmesh: Any, remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "ci"
    elsewhere.mkdir()
    monkeypatch.setenv("DEVMESH_MANIFESTS", str(remote))
    result = devmesh(elsewhere, "promote", "api", "--to", "dev", "--image", A, "--yes")
    assert result.code == 0, result.err
    assert json.loads(devmesh(elsewhere, "tiers", "--json").out)["services"]["api"]["dev"]["image"] == A


def test_no_repo_configured(tmp_path: Path, devmesh: Any) -> None:
    root = tmp_path / "bare-project"
    write_project(root, None)
    result = devmesh(root, "tiers")
    assert result.code == 2 and "error: no manifest repo configured" in result.err
    assert "devmesh init --manifests REPO" in result.err


def test_unreachable_repo_exit_code(tmp_path: Path, devmesh: Any) -> None:
    root = tmp_path / "p"
    write_project(root, str(tmp_path / "missing.git"))
    result = devmesh(root, "history")
    assert result.code == 2 and "does not exist" in result.err and len(result.err.splitlines()) <= 2


def test_help_lists_the_commands(devmesh: Any, tmp_path: Path) -> None:
    out = devmesh(tmp_path, "--help").out
    for name in ("manifests", "tiers", "promote", "rollback", "history"):
        assert f"  {name} " in out


# --- one flow: preview, confirm (skipped by --yes), land what was confirmed -----------------


class Terminal:
    """A person at a terminal: records each question and answers it, after ``meanwhile``."""

    def __init__(self, answer: bool, meanwhile: Any = None) -> None:
        self.answer = answer
        self.meanwhile = meanwhile
        self.asked: list[str] = []

    def __call__(self, question: str, default: bool = False) -> bool:
        self.asked.append(question)
        if self.meanwhile is not None:
            self.meanwhile()
        return self.answer


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Any:
    import click

    def at(answer: bool, meanwhile: Any = None) -> Terminal:
        person = Terminal(answer, meanwhile)
        monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
        monkeypatch.setattr(click, "confirm", person)
        return person

    return at


def _promote_elsewhere(settings: ManifestSettings, image: str) -> Any:
    """Another person promoting api into dev while the question is on the screen."""

    def run() -> None:
        with open_checkout(settings) as co:
            promote(co, PromotionRequest("api", "dev", parse_image_ref(image)), app="shop")

    return run


def test_the_question_names_the_previewed_change_and_yes_lands_it(
        shop: Path, devmesh: Any, remote: Path, terminal: Any) -> None:
    devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "--yes")
    person = terminal(True)
    done = devmesh(shop, "promote", "api", "--to", "beta")
    assert done.code == 0, done.err
    assert person.asked == [f"promote api to beta: {A} (it runs nothing now)?"]
    assert done.out.startswith(f"promoted api to beta from dev: {A}: commit ")
    back = devmesh(shop, "rollback", "api", "--tier", "beta")
    assert back.code == 0, back.err
    assert person.asked[1].startswith("roll back api in beta from sha256:aaaaaaaaaaaa to no pinned image (reverting ")


def test_no_at_the_question_lands_nothing(shop: Path, devmesh: Any, remote: Path, terminal: Any) -> None:
    devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "--yes")
    before = git(remote, "rev-parse", "main")
    person = terminal(False)
    refused = devmesh(shop, "promote", "api", "--to", "beta")
    assert refused.code == 130 and "aborted" in refused.err and len(person.asked) == 1
    assert git(remote, "rev-parse", "main") == before


def test_yes_asks_nothing_and_lands_through_the_same_preview(shop: Path, devmesh: Any, terminal: Any) -> None:
    person = terminal(True)
    devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "--yes")
    done = devmesh(shop, "promote", "api", "--to", "beta", "--yes")
    assert done.code == 0 and person.asked == []
    same = devmesh(shop, "promote", "api", "--to", "beta", "--yes")
    assert same.out == "api in beta already runs sha256:aaaaaaaaaaaa: nothing to promote\n"


def test_what_lands_is_what_was_confirmed_even_if_the_tier_below_moved(
        shop: Path, devmesh: Any, remote: Path, terminal: Any, settings: ManifestSettings) -> None:
    devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "--yes")
    person = terminal(True, meanwhile=_promote_elsewhere(settings, B))
    done = devmesh(shop, "promote", "api", "--to", "beta")
    assert person.asked == [f"promote api to beta: {A} (it runs nothing now)?"]
    assert done.code == 2, done.out
    assert done.err.startswith("error: beta only takes the image dev runs now, and dev runs sha256:bbbbbbbbbbbb")
    assert git(remote, "log", "-1", "--format=%s", "main").strip() == "promote api to dev: sha256:bbbbbbbbbbbb"
