"""Tier strategies as commits: canary, mirror and switch of a service in a tier of a real bare
manifest repo, through the real command line; finishing, ending and rolling back; the refusals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devmesh.config import load_project
from devmesh.gitops.cache import open_checkout
from devmesh.gitops.settings import manifest_settings
from devmesh.gitops.tier_strategy import current_traffic
from devmesh.gitops.tier_traffic import TierTraffic
from devmesh.plan.strategy import Canary, Mirror, Switch
from tests.gitops.gitops_helpers import git, log_subjects

A = "127.0.0.1:5001/shop/api@sha256:" + "a" * 64
B = "127.0.0.1:5001/shop/api@sha256:" + "b" * 64
C = "127.0.0.1:5001/shop/api@sha256:" + "c" * 64


@pytest.fixture
def shop(project_file: Path, devmesh: Any) -> Path:
    """api runs A in dev, beta and prod; then B in dev: beta may take B as its candidate."""
    root = project_file.parent
    assert devmesh(root, "manifests", "init", "--tiers", "dev,beta,prod").code == 0
    assert devmesh(root, "promote", "api", "--to", "dev", "--image", A, "-y").code == 0
    assert devmesh(root, "promote", "api", "--to", "beta", "-y").code == 0
    assert devmesh(root, "promote", "api", "--to", "prod", "-y").code == 0
    assert devmesh(root, "promote", "api", "--to", "dev", "--image", B, "-y").code == 0
    return root


def _state(root: Path, tier: str, service: str = "api") -> TierTraffic:
    project = load_project(root / "devmesh.yaml")
    with open_checkout(manifest_settings(project)) as co:
        return current_traffic(co.layout(), project, tier, service)


def _trailers(remote: Path, ref: str = "main") -> dict[str, str]:
    out = git(remote, "log", "-1", "--format=%(trailers:only=true,unfold=true)", ref)
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def _kustomize(remote: Path, tmp_path: Path, tier: str) -> list[dict[str, Any]]:
    import yaml

    tree = tmp_path / "tree"
    if tree.exists():
        subprocess.run(["git", "-C", str(tree), "pull", "-q"], check=True)
    else:
        subprocess.run(["git", "clone", "-q", str(remote), str(tree)], check=True)
    done = subprocess.run(["kubectl", "kustomize", str(tree / "tiers" / tier)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def test_a_canary_in_a_tier_is_one_commit_whose_candidate_is_the_tier_belows_image(
        shop: Path, devmesh: Any, remote: Path, tmp_path: Path) -> None:
    before = git(remote, "rev-parse", "main").strip()
    done = devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "20", "--yes")
    assert done.code == 0, done.err
    assert done.out.startswith("canary api in beta: 20% to sha256:bbbbbbbbbbbb from dev: commit ")
    assert git(remote, "rev-list", "--count", f"{before}..main").strip() == "1"
    changed = git(remote, "diff", "--name-only", f"{before}..main").split()
    assert changed == ["tiers/beta/traffic/api.yaml"]
    trailers = _trailers(remote)
    assert trailers["Devmesh-Service"] == "api" and trailers["Devmesh-Tier"] == "beta"
    assert trailers["Devmesh-Traffic-From"] == "none"
    assert json.loads(trailers["Devmesh-Traffic"])["candidate"] == B
    assert "Devmesh-Image" not in trailers  # the pin stays

    state = _state(shop, "beta")
    assert state.candidate is not None and str(state.candidate) == B
    assert isinstance(state.strategy, Canary) and state.strategy.weight == 20

    # What Argo CD would apply: the primary at A, the candidate at B, the split 80/20.
    docs = _kustomize(remote, tmp_path, "beta")
    images = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
              for d in docs if d["kind"] == "Deployment"}
    assert images["api"] == A and images["api-candidate"] == B
    routes = next(d for d in docs if d["kind"] == "VirtualService" and d["metadata"]["name"] == "api")
    weights = {r["destination"]["subset"]: r.get("weight") for r in routes["spec"]["http"][-2]["route"]}
    assert weights == {"baseline": 80, "candidate": 20}

    table = devmesh(shop, "tiers")
    assert "canary 20% → bbbbbbbbbbbb" in table.out
    data = json.loads(devmesh(shop, "tiers", "--json").out)
    assert data["services"]["api"]["beta"]["traffic"]["candidate"] == B
    assert data["services"]["api"]["beta"]["image"] == A
    assert data["services"]["api"]["dev"]["traffic"] is None


def test_next_moves_the_open_canary_along_the_presets_steps_and_keeps_its_sticky_header(
        shop: Path, devmesh: Any) -> None:
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--sticky-header", "x-user-id", "-y").code == 0
    first = _state(shop, "beta").strategy
    assert isinstance(first, Canary) and first.weight == first.steps[0] and first.sticky_header == "x-user-id"
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--next", "-y").code == 0
    second = _state(shop, "beta").strategy
    assert isinstance(second, Canary) and second.weight == first.steps[1] and second.sticky_header == "x-user-id"
    again = devmesh(shop, "canary", "api", "--tier", "beta", "--weight", str(second.weight), "-y")
    assert again.code == 0 and "runs that already" in again.out


def test_mirror_then_switch_then_promote_finishes_with_one_version(shop: Path, devmesh: Any, remote: Path) -> None:
    assert devmesh(shop, "mirror", "api", "--tier", "beta", "--percent", "50", "-y").code == 0
    mirror = _state(shop, "beta").strategy
    assert isinstance(mirror, Mirror) and mirror.percent == 50
    assert devmesh(shop, "switch", "api", "--tier", "beta", "-y").code == 0
    assert isinstance(_state(shop, "beta").strategy, Switch)

    done = devmesh(shop, "promote", "api", "--to", "beta", "-y")
    assert done.code == 0, done.err
    assert _state(shop, "beta") == TierTraffic()
    changed = git(remote, "diff", "--name-only", "main~1..main").split()
    assert changed == ["tiers/beta/kustomization.yaml", "tiers/beta/traffic/api.yaml"]
    trailers = _trailers(remote)
    assert trailers["Devmesh-Image"] == B and trailers["Devmesh-Traffic"] == "none"
    assert json.loads(trailers["Devmesh-Traffic-From"])["strategy"]["kind"] == "switch"

    # A rollback of the finishing promotion brings back A and the switch to B.
    back = devmesh(shop, "rollback", "api", "--tier", "beta", "-y")
    assert back.code == 0, back.err
    assert isinstance(_state(shop, "beta").strategy, Switch)
    data = json.loads(devmesh(shop, "tiers", "--json").out)
    assert data["services"]["api"]["beta"]["image"] == A


def test_rollback_reverts_the_latest_step_then_the_one_before(shop: Path, devmesh: Any, remote: Path) -> None:
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "10", "-y").code == 0
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "50", "-y").code == 0
    first = devmesh(shop, "rollback", "api", "--tier", "beta", "-y")
    assert first.code == 0, first.err
    assert "canary 10% → bbbbbbbbbbbb" in first.out
    strategy = _state(shop, "beta").strategy
    assert isinstance(strategy, Canary) and strategy.weight == 10
    second = devmesh(shop, "rollback", "api", "--tier", "beta", "-y")
    assert second.code == 0, second.err
    assert _state(shop, "beta") == TierTraffic()
    # Then the promotion of A into beta, the latest change left.
    third = devmesh(shop, "rollback", "api", "--tier", "beta", "-y")
    assert third.code == 0 and "no pinned image" in third.out

    history = json.loads(devmesh(shop, "history", "api", "--tier", "beta", "--json").out)
    assert [e["kind"] for e in history] == ["rollback", "rollback", "rollback", "canary", "canary", "promote"]
    assert history[3]["traffic"]["strategy"]["weight"] == 50
    table = devmesh(shop, "history", "api", "--tier", "beta")
    assert "canary" in table.out and "canary 50% → bbbbbbbbbbbb" in table.out


def test_ending_a_strategy_goes_back_to_one_version(shop: Path, devmesh: Any) -> None:
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "30", "-y").code == 0
    wrong = devmesh(shop, "mirror", "api", "--tier", "beta", "--off", "-y")
    assert wrong.code == 2 and "runs a canary, not a mirror" in wrong.err
    done = devmesh(shop, "switch", "api", "--tier", "beta", "--back", "-y")
    assert done.code == 0 and done.out.startswith("end the canary of api in beta")
    assert _state(shop, "beta") == TierTraffic()
    again = devmesh(shop, "canary", "api", "--tier", "beta", "--off", "-y")
    assert again.code == 0 and "runs no strategy" in again.out


def test_the_first_tier_takes_any_digest_as_its_candidate(shop: Path, devmesh: Any) -> None:
    bare = devmesh(shop, "canary", "api", "--tier", "dev", "-y")
    assert bare.code == 2 and "needs --image REF" in bare.err
    done = devmesh(shop, "canary", "api", "--tier", "dev", "--image", C, "--weight", "5", "-y")
    assert done.code == 0, done.err
    assert str(_state(shop, "dev").candidate) == C


def _unchanged(remote: Path, run: Any) -> Any:
    before = git(remote, "rev-parse", "main")
    result = run()
    assert git(remote, "rev-parse", "main") == before, "nothing may be written"
    return result


@pytest.mark.parametrize(("args", "message"), [
    (["canary", "api", "--tier", "beta", "--image", C], "beta only takes an image dev runs as its primary version"),
    (["canary", "api", "--tier", "beta", "--weight", "101"], "101 is not in the range 0<=x<=100"),
    (["canary", "api", "--tier", "beta", "--weight", "-1"], "-1 is not in the range 0<=x<=100"),
    (["canary", "web", "--tier", "beta"], "web has no version in beta yet"),
    (["canary", "api", "--tier", "qa"], "unknown tier 'qa'"),
    (["canary", "nosuch", "--tier", "beta"], "unknown service 'nosuch'"),
    (["canary", "api", "--tier", "prod"], "prod runs sha256:aaaaaaaaaaaa of api as its primary version already"),
    (["canary", "api", "--tier", "beta", "--branch", "x"], "--branch is for the local environments"),
    (["canary", "api", "--image", B], "--image is for a strategy in a tier"),
    (["mirror", "api", "--tier", "beta", "--percent", "0"], "0 is not in the range 0<x<=100"),
    (["canary", "api", "--tier", "beta", "--preset", "nosuch"], "nosuch"),
    (["switch", "api", "--tier", "beta", "--back", "--image", B], "ending a strategy takes no --image"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(
        shop: Path, devmesh: Any, remote: Path, args: list[str], message: str) -> None:
    result = _unchanged(remote, lambda: devmesh(shop, *args, "--yes"))
    assert result.code == 2, (result.out, result.err)
    assert message in result.err
    assert "Traceback" not in result.err


def test_a_second_candidate_while_one_is_open_is_refused(shop: Path, devmesh: Any, remote: Path) -> None:
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "20", "-y").code == 0
    assert devmesh(shop, "promote", "api", "--to", "dev", "--image", C, "-y").code == 0
    second = _unchanged(remote, lambda: devmesh(shop, "canary", "api", "--tier", "beta", "-y"))
    assert second.code == 2 and "a canary of api is open in beta (canary 20% → bbbbbbbbbbbb)" in second.err
    other = _unchanged(remote, lambda: devmesh(shop, "promote", "api", "--to", "beta", "-y"))
    assert other.code == 2 and "only its candidate may be promoted there now" in other.err


def test_promoting_the_candidate_before_it_takes_all_the_traffic_is_refused(
        shop: Path, devmesh: Any, remote: Path) -> None:
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "20", "-y").code == 0
    early = _unchanged(remote, lambda: devmesh(shop, "promote", "api", "--to", "beta", "-y"))
    assert early.code == 2 and "does not send all the traffic to the candidate yet" in early.err
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "100", "-y").code == 0
    assert devmesh(shop, "promote", "api", "--to", "beta", "-y").code == 0
    assert _state(shop, "beta") == TierTraffic()


def test_a_hand_edited_virtual_service_is_refused_naming_the_field(
        shop: Path, devmesh: Any, remote: Path, tmp_path: Path) -> None:
    work = tmp_path / "hand"
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    path = work / "tiers" / "beta" / "traffic" / "api.yaml"
    text = path.read_text()
    assert "attempts: 0" in text
    path.write_text(text.replace("attempts: 0", "attempts: 5", 1))
    git(work, "commit", "-qam", "hand edit")
    git(work, "push", "-q", "origin", "HEAD:main")
    result = _unchanged(remote, lambda: devmesh(shop, "canary", "api", "--tier", "beta", "-y"))
    assert result.code == 2
    assert "tiers/beta/traffic/api.yaml: VirtualService api: spec.http[0].retries.attempts" in result.err
    assert "edited by hand" in result.err


def test_a_rollback_after_a_hand_edit_of_the_split_is_refused(shop: Path, devmesh: Any, remote: Path,
                                                               tmp_path: Path) -> None:
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "20", "-y").code == 0
    work = tmp_path / "hand"
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    path = work / "tiers" / "beta" / "traffic" / "api.yaml"
    path.write_text(path.read_text().replace("weight: 80", "weight: 70", 1).replace("weight: 20", "weight: 30", 1))
    git(work, "commit", "-qam", "hand edit")
    git(work, "push", "-q", "origin", "HEAD:main")
    result = _unchanged(remote, lambda: devmesh(shop, "rollback", "api", "--tier", "beta", "-y"))
    assert result.code == 2 and "edited by hand" in result.err


def test_pull_request_mode_proposes_the_strategy_on_a_branch(shop: Path, devmesh: Any, remote: Path) -> None:
    text = (shop / "devmesh.yaml").read_text()
    (shop / "devmesh.yaml").write_text(text.replace(f"  repo: {remote}", f"  repo: {remote}\n  mode: pull-request"))
    before = git(remote, "rev-parse", "main")
    done = devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "20", "-y")
    assert done.code == 0, done.err
    assert done.out.startswith("proposed canary api in beta: 20% to sha256:bbbbbbbbbbbb from dev on branch "
                               "devmesh/canary-api-beta-bbbbbbbbbbbb")
    assert git(remote, "rev-parse", "main") == before
    assert log_subjects(remote)[0].startswith("promote api to dev")


EIGHT = tuple(f"svc{i}" for i in range(8))


def test_eight_processes_promote_canary_mirror_and_sync_at_once(tmp_path: Path, remote: Path) -> None:
    """Promotions, canaries, a mirror and a sync of eight services from eight processes: half share one
    cached clone (the lock), half have their own (push races). History stays linear, nothing
    is lost, and every tier still builds and reads back as devmesh wrote it."""
    import os
    import sys
    from collections import Counter

    from devmesh.gitops.history import read_history
    from devmesh.gitops.images import ImageRef
    from devmesh.gitops.promote import PromotionRequest, promote
    from devmesh.gitops.scaffold import scaffold, specs_from_project
    from tests.gitops.gitops_helpers import write_project

    def ref(name: str, char: str) -> ImageRef:
        return ImageRef(f"127.0.0.1:5001/shop/{name}", "sha256:" + char * 64)

    project_file = write_project(tmp_path / "many", str(remote), EIGHT)
    project = load_project(project_file)
    settings = manifest_settings(project)
    with open_checkout(settings) as co:
        scaffold(co, "shop", specs_from_project(project), ["dev", "beta", "prod"])
        for name in EIGHT[3:]:
            promote(co, PromotionRequest(name, "dev", ref(name, "a")))
            promote(co, PromotionRequest(name, "beta"))
            promote(co, PromotionRequest(name, "dev", ref(name, "b")))
    # svc7's timeout changes in devmesh.yaml: the sync renders its files in every tier again.
    text = project_file.read_text()
    project_file.write_text(text.replace("  svc7:\n", "  svc7:\n    resilience:\n      timeout: 3s\n", 1))
    base = git(remote, "rev-parse", "main").strip()
    procs = []
    for i, name in enumerate(EIGHT):
        env = {**os.environ, "DEVMESH_CACHE_DIR": str(tmp_path / ("shared-cache" if i % 2 else f"cache-{i}"))}
        if i < 3:
            args = ["promote", name, "--to", "dev", "--image", str(ref(name, str(i)))]
        elif i < 6:
            args = ["canary", name, "--tier", "beta", "--weight", str(10 * i)]
        elif i < 7:
            args = ["mirror", name, "--tier", "beta", "--percent", "25"]
        else:
            args = ["manifests", "sync"]
        procs.append(subprocess.Popen([sys.executable, "-m", "devmesh", *args, "--yes"], cwd=project_file.parent,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    for code, _, err in outputs:
        assert code == 0, err
    new = git(remote, "rev-list", f"{base}..main").split()
    assert len(new) == 8
    assert git(remote, "rev-list", "--merges", "main") == ""
    with open_checkout(settings, cache=tmp_path / "check") as co:
        entries = [e for e in read_history(co) if e.commit in new]
        assert Counter(e.service for e in entries) == Counter(EIGHT[:7])
        assert Counter(e.kind for e in entries) == Counter({"promote": 3, "canary": 3, "mirror": 1})
        assert sum(git(remote, "log", "-1", "--format=%s", c).startswith("manifests: sync 1 service") for c in new) == 1
        project = load_project(project_file)
        layout = co.layout()
        for i, name in enumerate(EIGHT):
            # Every file reads back as devmesh wrote it, and up to date with devmesh.yaml.
            state = current_traffic(layout, project, "beta", name)
            if i < 3:
                assert layout.pin("dev", "shop", name) == ref(name, str(i))
                assert state == TierTraffic()
            elif i < 7:
                assert state.candidate == ref(name, "b")  # the rule held: the candidate is dev's
                assert layout.pin("beta", "shop", name) == ref(name, "a")
                assert isinstance(state.strategy, Canary if i < 6 else Mirror)
            else:
                assert state == TierTraffic()
                assert "timeout: 3s" in (layout.root / "tiers" / "prod" / "traffic" / f"{name}.yaml").read_text()
        for tier in ("dev", "beta", "prod"):
            done = subprocess.run(["kubectl", "kustomize", str(layout.root / "tiers" / tier)],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
    raced = sum("moved while pushing" in err for _, _, err in outputs)
    print(f"{raced} of 8 processes lost at least one push race and retried")


def test_a_plain_git_revert_of_a_canary_reads_as_its_rollback(shop: Path, devmesh: Any, remote: Path,
                                                              tmp_path: Path) -> None:
    assert devmesh(shop, "canary", "api", "--tier", "beta", "--weight", "20", "-y").code == 0
    work = tmp_path / "reverting"
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    git(work, "revert", "--no-edit", "HEAD")
    git(work, "push", "-q", "origin", "HEAD:main")
    assert _state(shop, "beta") == TierTraffic()
    history = json.loads(devmesh(shop, "history", "api", "--tier", "beta", "--json").out)
    assert [e["kind"] for e in history] == ["rollback", "canary", "promote"]
    assert history[0]["traffic"] is None and history[0]["changes_traffic"] is True
    assert history[0]["traffic_from"]["strategy"]["weight"] == 20
    # The canary is reverted already: the next rollback reverts the promotion before it.
    back = devmesh(shop, "rollback", "api", "--tier", "beta", "-y")
    assert back.code == 0 and "no pinned image" in back.out, back.err
