"""``manifests sync``: devmesh's fields of every base and tier rendered again from devmesh.yaml and
the presets, in one commit, against a real bare repo and ``kubectl kustomize``; hand edits
reported and refused without --force; everything people wrote elsewhere kept."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devmesh.config import load_project
from devmesh.gitops.cache import open_checkout
from devmesh.gitops.settings import manifest_settings
from devmesh.gitops.tier_strategy import current_traffic
from devmesh.plan.strategy import Canary
from tests.gitops.gitops_helpers import git

A = "127.0.0.1:5001/shop/api@sha256:" + "a" * 64
B = "127.0.0.1:5001/shop/api@sha256:" + "b" * 64


@pytest.fixture
def shop(project_file: Path, devmesh: Any) -> Path:
    root = project_file.parent
    assert devmesh(root, "manifests", "init", "--tiers", "dev,beta,prod").code == 0
    return root


def _set_api(root: Path, lines: str) -> None:
    """Add ``lines`` (indented as api's fields) to api in devmesh.yaml."""
    path = root / "devmesh.yaml"
    path.write_text(path.read_text().replace("    entry: true\n", "    entry: true\n" + lines, 1))


def _clone(remote: Path, where: Path) -> Path:
    if where.exists():
        subprocess.run(["git", "-C", str(where), "pull", "-q"], check=True)
    else:
        subprocess.run(["git", "clone", "-q", str(remote), str(where)], check=True)
    return where


def _push_edit(remote: Path, tmp_path: Path, relative: str, old: str, new: str) -> None:
    work = _clone(remote, tmp_path / "hand")
    path = work / relative
    text = path.read_text()
    assert old in text, text
    path.write_text(text.replace(old, new, 1))
    git(work, "commit", "-qam", f"hand edit of {relative}")
    git(work, "push", "-q", "origin", "HEAD:main")


def test_a_layout_in_step_with_devmesh_yaml_has_nothing_to_sync(shop: Path, devmesh: Any, remote: Path) -> None:
    before = git(remote, "rev-parse", "main")
    dry = devmesh(shop, "manifests", "sync", "--dry-run")
    assert dry.code == 0 and dry.out == "" and "nothing to sync" in dry.err
    done = devmesh(shop, "manifests", "sync", "--yes")
    assert done.code == 0 and "nothing to sync" in done.out
    assert git(remote, "rev-parse", "main") == before


def test_a_changed_resilience_and_port_reach_every_tier_in_one_commit(
        shop: Path, devmesh: Any, remote: Path, tmp_path: Path) -> None:
    # A person's own additions to a base file stay as written.
    _push_edit(remote, tmp_path, "base/api/deployment.yaml", "  replicas: 1\n",
               "  replicas: 3  # ours: the sync keeps this\n")
    _set_api(shop, "    resilience:\n      timeout: 7s\n")
    text = (shop / "devmesh.yaml").read_text()
    (shop / "devmesh.yaml").write_text(text.replace("    port: 8000\n", "    port: 8100\n", 1))
    before = git(remote, "rev-parse", "main").strip()

    dry = devmesh(shop, "manifests", "sync", "--dry-run")
    assert dry.code == 0, dry.err
    assert "+      timeout: 7s" in dry.out
    assert "-              containerPort: 8000" in dry.out and "+              containerPort: 8100" in dry.out
    assert "would sync 5 file(s) of 1 service(s)" in dry.err
    assert git(remote, "rev-parse", "main").strip() == before  # a dry run writes nothing

    done = devmesh(shop, "manifests", "sync", "--yes")
    assert done.code == 0, done.err
    assert done.out.startswith("--- a/base/api/deployment.yaml")  # the diff first
    assert "synced 5 file(s) of 1 service(s) of shop: commit " in done.out
    assert git(remote, "rev-list", "--count", f"{before}..main").strip() == "1"
    changed = sorted(git(remote, "diff", "--name-only", f"{before}..main").split())
    assert changed == ["base/api/deployment.yaml", "base/api/service.yaml", "tiers/beta/traffic/api.yaml",
                       "tiers/dev/traffic/api.yaml", "tiers/prod/traffic/api.yaml"]
    assert git(remote, "log", "-1", "--format=%s", "main").startswith("manifests: sync 1 service of shop with")

    work = _clone(remote, tmp_path / "check")
    deployment = (work / "base/api/deployment.yaml").read_text()
    assert "replicas: 3  # ours: the sync keeps this" in deployment
    assert deployment.startswith("# Rendered by 'devmesh manifests init'")
    assert "containerPort: 8100" in deployment
    for tier in ("dev", "beta", "prod"):
        built = subprocess.run(["kubectl", "kustomize", str(work / "tiers" / tier)], capture_output=True, text=True)
        assert built.returncode == 0, built.stderr
        docs = [d for d in yaml.safe_load_all(built.stdout) if d]
        routes = next(d for d in docs if d["kind"] == "VirtualService" and d["metadata"]["name"] == "api")
        assert {r.get("timeout") for r in routes["spec"]["http"]} == {"7s"}
        service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "api")
        assert service["spec"]["ports"][0]["port"] == 8100
    again = devmesh(shop, "manifests", "sync", "--yes")
    assert again.code == 0 and "nothing to sync" in again.out


def test_a_hand_edit_of_a_managed_field_is_reported_and_refused_without_force(
        shop: Path, devmesh: Any, remote: Path, tmp_path: Path) -> None:
    _push_edit(remote, tmp_path, "tiers/prod/traffic/api.yaml", "attempts: 0", "attempts: 9")
    _set_api(shop, "    resilience:\n      timeout: 7s\n")
    before = git(remote, "rev-parse", "main")
    refused = devmesh(shop, "manifests", "sync", "--yes")
    assert refused.code == 2
    assert ("tiers/prod/traffic/api.yaml: VirtualService api: spec.http[0].retries.attempts was edited by hand: "
            "it is 9, devmesh.yaml and the presets give 0") in refused.err
    assert "nothing written" in refused.err and "--force" in refused.err
    assert git(remote, "rev-parse", "main") == before

    dry = devmesh(shop, "manifests", "sync", "--dry-run")
    assert dry.code == 0 and "sync would refuse: " in dry.err
    assert "tiers/prod/traffic/api.yaml" not in dry.out  # the edited file is left out without --force

    forced = devmesh(shop, "manifests", "sync", "--force", "--yes")
    assert forced.code == 0, forced.err
    assert "overwriting: tiers/prod/traffic/api.yaml" in forced.err
    body = git(remote, "log", "-1", "--format=%B", "main")
    assert "(hand edits overwritten)" in body and "retries.attempts was edited by hand" in body
    assert "attempts: 9" not in (_clone(remote, tmp_path / "check") / "tiers/prod/traffic/api.yaml").read_text()


def test_a_hand_edited_base_port_is_named_with_its_file(shop: Path, devmesh: Any, remote: Path,
                                                        tmp_path: Path) -> None:
    _push_edit(remote, tmp_path, "base/api/service.yaml", "port: 8000", "port: 9999")
    refused = devmesh(shop, "manifests", "sync", "--yes")
    assert refused.code == 2
    assert "base/api/service.yaml: Service api: spec.ports[0].port was edited by hand: it is 9999" in refused.err


def test_a_running_canary_is_kept_and_re_rendered(shop: Path, devmesh: Any, remote: Path) -> None:
    assert devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "-y").code == 0
    assert devmesh(shop, "promote", "api", "--to", "beta", "-y").code == 0
    assert devmesh(shop, "promote", "api", "--to", "dev", "--image", B, "-y").code == 0
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "20", "-y").code == 0
    _set_api(shop, "    resilience:\n      timeout: 7s\n")
    # A step on a file devmesh.yaml has changed since waits for the sync, with the reason.
    stale = devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "40", "-y")
    assert stale.code == 2 and "but devmesh.yaml and the presets give \"7s\" now" in stale.err
    assert "manifests sync" in stale.err
    # The sync keeps the canary and renders it with the new timeout.
    assert devmesh(shop, "manifests", "sync", "--yes").code == 0
    project = load_project(shop / "devmesh.yaml")
    with open_checkout(manifest_settings(project)) as co:
        state = current_traffic(co.layout(), project, "beta", "api")
    assert str(state.candidate) == B and isinstance(state.strategy, Canary) and state.strategy.weight == 20
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "40", "-y").code == 0


def test_a_rollback_is_not_held_up_by_a_pending_sync(shop: Path, devmesh: Any, remote: Path) -> None:
    assert devmesh(shop, "promote", "api", "--to", "dev", "--image", A, "-y").code == 0
    assert devmesh(shop, "promote", "api", "--to", "beta", "-y").code == 0
    assert devmesh(shop, "promote", "api", "--to", "dev", "--image", B, "-y").code == 0
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "20", "-y").code == 0
    _set_api(shop, "    resilience:\n      timeout: 7s\n")
    back = devmesh(shop, "rollback", "api", "--tier", "beta", "-y")
    assert back.code == 0, back.err


def test_sync_needs_the_project(tmp_path: Path, devmesh: Any, remote: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMESH_MANIFESTS", str(remote))
    (tmp_path / "empty").mkdir()
    result = devmesh(tmp_path / "empty", "manifests", "sync", "--yes")
    assert result.code == 2 and "devmesh.yaml" in result.err
