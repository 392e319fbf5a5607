"""The run-wide check of tests/rendered_sets.py: a test run in which some test renders a set
istioctl finds fault with fails, naming that test; a run whose sets are sound passes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.rendered_sets import ENV  # HOME as the run began: istioctl is cached there

REPO = Path(__file__).resolve().parent.parent

INNER_TEST = '''
from devmesh.config import load_project
from devmesh.plan import k8s
from tests.test_strategies import shop


def test_renders_the_shop(make_project):
    project = load_project(make_project() / "devmesh.yaml")
    assert k8s.render_objects(project, shop())
'''

CONFTEST = '''
from tests.conftest import _git_identity, make_project  # noqa: F401 - the fixtures
{break_it}
pytest_plugins = ["tests.rendered_sets"]
'''

# Makes render_objects route api's catch-all to a subset no DestinationRule defines (IST0101).
BREAK_IT = '''
from devmesh.plan import k8s

_real = k8s.render_objects


def _broken(*args, **kwargs):
    objects = _real(*args, **kwargs)
    for obj in objects:
        if obj["kind"] == "VirtualService" and obj["metadata"]["name"] == "api":
            obj["spec"]["http"][-1]["route"][0]["destination"]["subset"] = "nosuch"
    return objects


k8s.render_objects = _broken
'''


def _run(tmp_path: Path, break_it: str) -> subprocess.CompletedProcess[str]:
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(CONFTEST.format(break_it=break_it))
    (inner / "test_inner.py").write_text(INNER_TEST)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           str(inner)], cwd=inner, capture_output=True, text=True, timeout=300,
                          env={**ENV, "PYTHONPATH": str(REPO)})


def test_a_set_istioctl_finds_fault_with_fails_the_run(istioctl: str, tmp_path: Path) -> None:
    done = _run(tmp_path, BREAK_IT)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout + done.stderr
    assert "1 passed" in done.stdout  # the inner test itself passes: the run-wide check fails it
    assert "istioctl analyze: 0 of 1 rendered sets pass" in done.stdout
    assert "FAILED a set rendered by test_inner.py::test_renders_the_shop" in done.stdout
    assert "IST0101" in done.stdout and "nosuch" in done.stdout


def test_a_run_whose_sets_are_sound_passes(istioctl: str, tmp_path: Path) -> None:
    done = _run(tmp_path, "")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "istioctl analyze: 1 of 1 rendered sets pass" in done.stdout
