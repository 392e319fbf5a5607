"""The layering is enforced: import-linter's contracts (in pyproject.toml) hold for the source
tree, and they really fail when a core module imports the TUI, a plan imports an SDK or a use
case imports a front end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def lint_imports(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with this interpreter, importing the packages found in ``cwd``."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, "-c", code, "--config", str(config), "--no-cache", "--no-logo"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )


def test_contracts_hold_for_the_source_tree() -> None:
    done = lint_imports(REPO, REPO / "pyproject.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
    assert "The core library never imports the TUI KEPT" in done.stdout
    assert "The use cases never import a front end (the CLI or the TUI) KEPT" in done.stdout


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The packages and the linter configuration, copied so they can be broken on purpose."""
    root = tmp_path / "copy"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("devmesh", "tui"):
        shutil.copytree(REPO / package, root / package, ignore=ignore)
    shutil.copyfile(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_copy_passes_before_it_is_broken(tree_copy: Path) -> None:
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_core_importing_the_tui_is_caught(tree_copy: Path) -> None:
    naming = tree_copy / "devmesh" / "naming.py"
    naming.write_text(naming.read_text() + "\nimport tui  # the mistake under test\n")
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode != 0
    assert "The core library never imports the TUI BROKEN" in done.stdout
    assert "devmesh.naming -> tui" in done.stdout


def test_core_importing_textual_is_caught(tree_copy: Path) -> None:
    errors = tree_copy / "devmesh" / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _app():\n    from textual.app import App\n\n    return App\n")
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode != 0
    assert "The core library never imports Textual (only the TUI does) BROKEN" in done.stdout


def test_a_plan_importing_docker_is_caught(tree_copy: Path) -> None:
    plan = tree_copy / "devmesh" / "plan" / "__init__.py"
    plan.write_text(plan.read_text() + "\nimport docker  # the mistake under test\n")
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode != 0
    assert "Plans are pure" in done.stdout and "BROKEN" in done.stdout
    assert "devmesh.plan -> docker" in done.stdout


def test_the_use_cases_importing_the_cli_are_caught(tree_copy: Path) -> None:
    releases = tree_copy / "devmesh" / "app" / "releases.py"
    releases.write_text(releases.read_text() + "\nfrom devmesh.cli.output import table  # the mistake under test\n")
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode != 0
    assert "The use cases never import a front end (the CLI or the TUI) BROKEN" in done.stdout
    assert "devmesh.app.releases -> devmesh.cli.output" in done.stdout


def test_the_use_cases_importing_the_tui_are_caught(tree_copy: Path) -> None:
    """Through a module of its own, so it is this contract that breaks (not only the core's)."""
    strategies = tree_copy / "devmesh" / "app" / "strategies.py"
    strategies.write_text(strategies.read_text() + "\n\ndef _keys() -> object:\n    from tui import keys\n\n    return keys\n")
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode != 0
    assert "The use cases never import a front end (the CLI or the TUI) BROKEN" in done.stdout
    assert "devmesh.app.strategies -> tui" in done.stdout
