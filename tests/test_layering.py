"""The layering is enforced: import-linter's contracts (in pyproject.toml) hold for the source
tree, and they really fail when a core module imports the TUI, a plan imports an SDK, a floor
imports one above it, one runtime imports the other, or a use case imports a front end."""

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


FLOORS = "Floors: nothing lower imports anything higher"
RUNTIMES = "The docker and kind runtimes are independent"


def test_every_floor_and_the_runtimes_independence_hold() -> None:
    done = lint_imports(REPO, REPO / "pyproject.toml")
    assert f"{FLOORS} KEPT" in done.stdout, done.stdout
    assert f"{RUNTIMES} KEPT" in done.stdout, done.stdout


@pytest.mark.parametrize(("module", "imported", "arrow"), [
    ("devmesh/runtime/base.py", "devmesh.app.environments", "devmesh.runtime.base -> devmesh.app"),
    ("devmesh/sync/live.py", "devmesh.runtime.base", "devmesh.sync.live -> devmesh.runtime.base"),
    ("devmesh/app/environments.py", "devmesh.cli.output", "devmesh.app.environments -> devmesh.cli.output"),
    ("devmesh/plan/routing.py", "devmesh.routes_state", "devmesh.plan.routing -> devmesh.routes_state"),
], ids=["runtime-to-app", "sync-to-runtime", "app-to-cli", "plan-to-core"])
def test_an_import_from_a_lower_floor_to_a_higher_one_is_caught(tree_copy: Path, module: str, imported: str,
                                                              arrow: str) -> None:
    path = tree_copy / module
    path.write_text(path.read_text() + f"\n\ndef _mistake() -> None:\n    import {imported}  # under test\n")
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode != 0
    assert f"{FLOORS} BROKEN" in done.stdout
    assert arrow in done.stdout, done.stdout


def test_one_runtime_importing_the_other_is_caught(tree_copy: Path) -> None:
    sync = tree_copy / "devmesh" / "runtime" / "kind" / "sync.py"
    sync.write_text(sync.read_text() + "\nfrom devmesh.runtime.docker import backend_alias  # under test\n")
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode != 0
    assert f"{RUNTIMES} BROKEN" in done.stdout
    assert "devmesh.runtime.kind.sync -> devmesh.runtime.docker" in done.stdout, done.stdout

@pytest.mark.parametrize(("module", "mistake", "edge"), [
    ("releases", "from devmesh.cli.output import table", "devmesh.app.releases -> devmesh.cli.output"),
    ("strategies", "from tui import keys", "devmesh.app.strategies -> tui"),
])
def test_a_use_case_importing_a_front_end_is_caught(tree_copy: Path, module: str, mistake: str, edge: str) -> None:
    source = tree_copy / "devmesh" / "app" / f"{module}.py"
    source.write_text(source.read_text() + f"\n{mistake}  # the mistake under test\n")
    done = lint_imports(tree_copy, tree_copy / "pyproject.toml")
    assert done.returncode != 0
    assert "The use cases never import a front end (the CLI or the TUI) BROKEN" in done.stdout
    assert edge in done.stdout
