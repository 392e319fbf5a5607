"""Every set of objects devmesh renders for Kubernetes during a test run also passes Istio's
analyzers (``istioctl analyze --use-kube=false``), whichever test rendered it.

``devmesh.plan.k8s.render_objects`` is wrapped for the run: each distinct set it returns is
kept (with the first test that rendered it), and when the run ends each is analyzed; a set with
an error or warning fails the run, naming the test and istioctl's findings. Without a built
istioctl the check is skipped with a line saying so, or fails the run where
``DEVMESH_REQUIRE_APISERVER=1`` (as in CI).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devmesh.plan import k8s
from tests.built import ENV, cached_binary, pinned_versions



class RenderedSets:
    """The distinct sets rendered so far, each with the test that rendered it first."""

    def __init__(self) -> None:
        self.sets: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        self.test = ""
        self.original: Callable[..., list[dict[str, Any]]] = k8s.render_objects

    def record(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        objects = self.original(*args, **kwargs)
        key = hashlib.sha256(json.dumps(objects, sort_keys=True, default=str).encode()).hexdigest()
        if key not in self.sets:
            self.sets[key] = (self.test, copy.deepcopy(objects))
        return objects

    def install(self) -> None:
        """Wrap render_objects where it is defined and wherever a module imported it by name."""
        for module in list(sys.modules.values()):
            if getattr(module, "render_objects", None) is self.original:
                module.render_objects = self.record  # type: ignore[attr-defined]


def _istioctl() -> str | None:
    binary = cached_binary("istioctl", pinned_versions().get("istio-module"))
    return str(binary) if binary.is_file() else None


def _analyze(istioctl: str, objects: list[dict[str, Any]]) -> str:
    """istioctl's findings on ``objects`` (every namespace, warnings count); empty when none."""
    with tempfile.TemporaryDirectory(prefix="devmesh-analyze-") as tmp:
        path = Path(tmp) / "objects.yaml"
        path.write_text(k8s.to_yaml(objects))
        done = subprocess.run([istioctl, "analyze", "--use-kube=false", "--all-namespaces",
                               "--failure-threshold", "Warning", str(path)],
                              capture_output=True, text=True, timeout=300, env=ENV)
    return "" if done.returncode == 0 else (done.stdout + done.stderr).strip()


RENDERED = RenderedSets()
REPORT: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    RENDERED.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    RENDERED.test = item.nodeid
    return (yield)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RENDERED.sets or session.config.option.collectonly:
        return
    istioctl = _istioctl()
    if istioctl is None:
        why = "istioctl is not built (.ci/build-k8s istioctl)"
        if ENV.get("DEVMESH_REQUIRE_APISERVER") == "1":
            REPORT.append(f"DEVMESH_REQUIRE_APISERVER=1 but {why}: {len(RENDERED.sets)} rendered sets not analyzed")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        else:
            REPORT.append(f"{len(RENDERED.sets)} rendered sets not analyzed: {why}")
        return
    sets = list(RENDERED.sets.values())
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        findings = list(pool.map(lambda s: _analyze(istioctl, s[1]), sets))
    failed = [(test, found) for (test, _), found in zip(sets, findings) if found]
    REPORT.append(f"istioctl analyze: {len(sets) - len(failed)} of {len(sets)} rendered sets pass")
    for test, found in failed:
        REPORT.append(f"FAILED a set rendered by {test or 'a fixture'}:\n{found}")
    if failed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("every rendered set, through istioctl analyze")
        for line in REPORT:
            terminalreporter.write_line(line)
