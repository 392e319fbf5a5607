"""Hostile project layouts and preset files: symbolic links out of the project, and the bounds
of the YAML reader applied to presets as well as to devmesh.yaml."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devmesh.config import ConfigErrors, load_project

BASE = "app: shop\nservices:\n  api:\n    context: services/api\n    port: 8000\n"


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "services" / "api").mkdir(parents=True)
    (root / "services" / "api" / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.chdir(root)
    return root


def _load_error(root: Path, text: str) -> ConfigErrors:
    (root / "devmesh.yaml").write_text(text, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(ConfigErrors) as caught:
        load_project(Path("devmesh.yaml"))
    assert time.monotonic() - started < 2
    assert caught.value.exit_code == 2
    return caught.value


# --- symbolic links ------------------------------------------------------------------------


def test_context_linking_outside_the_project_is_refused(project_dir: Path, tmp_path: Path) -> None:
    """A context that is a link to a folder elsewhere, whose Dockerfile links back inside, would
    send that folder to the image build."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "Dockerfile").symlink_to(project_dir / "services" / "api" / "Dockerfile")
    (project_dir / "services" / "linked").symlink_to(outside)
    error = _load_error(project_dir, BASE.replace("services/api", "services/linked"))
    assert str(error) == (
        "devmesh.yaml:4: services.api.context: build context 'services/linked' lies outside "
        f"the project (it leads to {outside.resolve()})"
    )


def test_dockerfile_linking_outside_the_project_is_refused(project_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "Dockerfile.outside"
    outside.write_text("FROM scratch\n")
    (project_dir / "services" / "api" / "Dockerfile.link").symlink_to(outside)
    error = _load_error(project_dir, BASE + "    dockerfile: Dockerfile.link\n")
    assert str(error) == (
        "devmesh.yaml:6: services.api.dockerfile: Dockerfile 'Dockerfile.link' lies outside the project"
    )


def test_sync_source_linking_outside_the_project_is_refused(project_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secrets"
    outside.mkdir()
    (project_dir / "services" / "api" / "src").symlink_to(outside)
    error = _load_error(project_dir, BASE + "    sync:\n      - src: src\n        dest: /app\n")
    assert str(error) == (
        "devmesh.yaml:7: services.api.sync[0].src: sync source 'src' lies outside the project"
    )


def test_links_inside_the_project_are_fine(project_dir: Path) -> None:
    (project_dir / "api").symlink_to(project_dir / "services" / "api")
    (project_dir / "devmesh.yaml").write_text(BASE.replace("services/api", "api"), encoding="utf-8")
    assert load_project(Path("devmesh.yaml")).services["api"].context == "api"


# --- presets: the same bounded reader ------------------------------------------------------

USES_PRESET = "app: shop\nservices:\n  api:\n    context: services/api\n    preset: mine\n"


def _bomb() -> str:
    text = "x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, 9):
        text += f"x-{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]\n"
    return text


PRESETS: dict[str, tuple[bytes, str]] = {
    "recursive-alias": (
        b"variables:\n  port: {default: 8000}\ndefaults: &d\n  port: ${port}\n  values: *d\n",
        "presets/services/mine.yaml:5: alias *d is used inside the node it names (a recursive "
        "alias); devmesh does not read recursive data",
    ),
    "alias-bomb": (
        _bomb().encode() + b"variables: {}\n",
        "presets/services/mine.yaml:5: aliases expand the file to more than 100000 values; "
        "devmesh reads at most that many",
    ),
    "too-deep": (
        b"variables: {}\ndefaults:\n  env: " + b"[" * 300 + b"]" * 300 + b"\n",
        "presets/services/mine.yaml:3: nested more than 100 levels deep; devmesh reads at most 100",
    ),
    "huge-number": (
        b"variables:\n  port: {default: " + b"9" * 5000 + b"}\n",
        "presets/services/mine.yaml:2: a number with 5000 digits; devmesh reads numbers of at "
        "most 100 digits (quote it if it is text)",
    ),
    "not-utf8": (
        b"description: caf\xe9\n",
        "presets/services/mine.yaml:1: not UTF-8 text (invalid continuation byte); save the "
        "file as UTF-8",
    ),
    "bad-variable-name": (
        b"variables:\n  port: {default: 8000}\n  Bad-Name: {default: 1}\n",
        "presets/services/mine.yaml:3: variables.Bad-Name: expected a variable name of "
        "lower-case letters, digits and '_'",
    ),
    "variable-name-newline": (
        b'variables:\n  "port\\n": {default: 8000}\n',
        'presets/services/mine.yaml:2: variables."port\\n": expected a variable name of '
        "lower-case letters, digits and '_'",
    ),
}


@pytest.mark.parametrize("case", sorted(PRESETS))
def test_hostile_project_preset(case: str, project_dir: Path) -> None:
    content, expected = PRESETS[case]
    presets = project_dir / "presets" / "services"
    presets.mkdir(parents=True)
    (presets / "mine.yaml").write_bytes(content)
    error = _load_error(project_dir, USES_PRESET)
    assert str(error) == expected
