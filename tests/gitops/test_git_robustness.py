"""Git against a hostile manifest repo: damaged caches, shallow repos, silent remotes, hooks.

Every situation is made for real: lock files a killed git leaves, ``git clone --depth 1``,
a TCP server that accepts and never answers, hooks in the bare remote, a plain ``git revert``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git as gitpython
import pytest

from devmesh.config import load_project
from devmesh.errors import DevmeshError, UserInputError
from devmesh.gitops.cache import clone_dir, open_checkout
from devmesh.gitops.history import read_history
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.remote import first_line
from devmesh.gitops.rollback import rollback
from devmesh.gitops.scaffold import scaffold, specs_from_project
from devmesh.gitops.settings import ManifestSettings
from devmesh.gitops.tiers import tier_matrix
from tests.gitops.gitops_helpers import digest_ref, git, log_subjects, pin_of

A, B, C = digest_ref("a"), digest_ref("b"), digest_ref("c")
A_TEXT = f"{A.name}@{A.digest}"


def human_clone(remote: Path, tmp_path: Path, name: str = "human") -> Path:
    """A colleague's own clone of the manifest repo, with git alone."""
    work = tmp_path / name
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    return work


def push(work: Path) -> None:
    git(work, "push", "--quiet", "origin", "HEAD:main")


# --- 1. manifests init on an incomplete layout -------------------------------------------------


def test_init_without_tiers_yaml_writes_only_what_is_missing(
    checkout: Any, remote: Path, tmp_path: Path, devmesh: Any, project_file: Path
) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
    work = human_clone(remote, tmp_path)
    deployment = work / "base/api/deployment.yaml"
    deployment.write_text("# tuned by hand\n" + deployment.read_text())
    (work / "tiers.yaml").unlink()
    git(work, "commit", "--quiet", "-am", "hand edit, and tiers.yaml lost")
    push(work)
    before = {p: (work / p).read_bytes() for p in git(work, "ls-files").split()}

    result = devmesh(project_file.parent, "manifests", "init")

    assert result.code == 0, result.err
    assert result.out.startswith("completed the layout (wrote tiers.yaml) for shop")
    assert "note: the layout was incomplete: tiers.yaml missing" in result.err
    assert git(remote, "show", "--format=", "--name-only", "main").split() == ["tiers.yaml"]
    git(work, "pull", "--quiet", "origin", "main")
    for path, data in before.items():
        assert (work / path).read_bytes() == data, f"{path} was rewritten"
    with checkout() as co:
        assert pin_of(co, "dev", "api") == A
        assert [t.name for t in co.layout().tiers()] == ["dev", "beta", "prod"]
        assert co.layout().app() == "shop"


def test_init_without_tiers_yaml_refuses_to_orphan_other_tier_folders(
    settings: ManifestSettings, project_file: Path, remote: Path, tmp_path: Path, devmesh: Any
) -> None:
    with open_checkout(settings) as co:
        scaffold(co, "shop", specs_from_project(load_project(project_file)), ["qa", "live"])
    work = human_clone(remote, tmp_path)
    (work / "tiers.yaml").unlink()
    git(work, "commit", "--quiet", "-am", "tiers.yaml lost")
    push(work)
    before = git(remote, "rev-parse", "main")

    refused = devmesh(project_file.parent, "manifests", "init")
    assert refused.code == 2, refused.err
    assert "live, qa" in refused.err and "--tiers" in refused.err
    assert git(remote, "rev-parse", "main") == before

    done = devmesh(project_file.parent, "manifests", "init", "--tiers", "qa,live")
    assert done.code == 0, done.err
    assert git(remote, "show", "--format=", "--name-only", "main").split() == ["tiers.yaml"]
    with open_checkout(settings) as co:
        assert [t.name for t in co.layout().tiers()] == ["qa", "live"]


def test_init_restores_a_deleted_tier_folder_and_base_file_without_touching_the_rest(
    checkout: Any, remote: Path, tmp_path: Path, devmesh: Any, project_file: Path
) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
    work = human_clone(remote, tmp_path)
    git(work, "rm", "--quiet", "-r", "tiers/prod")
    git(work, "commit", "--quiet", "-m", "prod lost")
    push(work)
    result = devmesh(project_file.parent, "manifests", "init")
    assert result.code == 0, result.err
    assert "tiers/prod/kustomization.yaml" in result.out
    assert git(remote, "show", "--format=", "--name-only", "main").split() == [
        "tiers/prod/kustomization.yaml",
        *(f"tiers/prod/traffic/{s}.yaml" for s in ("api", "web", "worker"))]  # the tier's traffic too
    with checkout() as co:
        assert pin_of(co, "dev", "api") == A


# --- 2. tiers.yaml of another app ------------------------------------------------------------------


def _rename_app(remote: Path, tmp_path: Path) -> str:
    work = human_clone(remote, tmp_path, "renamer")
    path = work / "tiers.yaml"
    path.write_text(path.read_text().replace("app: shop", "app: other"))
    git(work, "commit", "--quiet", "-am", "another app")
    push(work)
    return git(remote, "rev-parse", "main")


def test_promote_and_rollback_refuse_another_apps_layout(
    checkout: Any, remote: Path, tmp_path: Path, devmesh: Any, project_file: Path
) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
    before = _rename_app(remote, tmp_path)
    root = project_file.parent
    for args in (
        ["promote", "api", "--to", "dev", "--image", f"{B.name}@{B.digest}", "--yes"],
        ["rollback", "api", "--tier", "dev", "--yes"],
    ):
        result = devmesh(root, *args)
        assert result.code == 2, (args, result.out, result.err)
        assert "holds app 'other', not 'shop'" in result.err.splitlines()[0]
    assert git(remote, "rev-parse", "main") == before


def test_the_library_refuses_another_apps_layout_too(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
    before = _rename_app(remote, tmp_path)
    with checkout() as co:
        with pytest.raises(UserInputError, match="holds app 'other', not 'shop'"):
            rollback(co, "api", "dev", app="shop")
        with pytest.raises(UserInputError, match="holds app 'other', not 'shop'"):
            promote(co, PromotionRequest("api", "dev", B), app="shop")
    assert git(remote, "rev-parse", "main") == before


# --- 3. stale lock files in the cached clone ---------------------------------------------------------


LOCKS = [
    "config.lock",
    "HEAD.lock",
    "index.lock",
    "refs/heads/main.lock",
    "refs/remotes/origin/main.lock",
    "packed-refs.lock",
    "shallow.lock",
    "ORIG_HEAD.lock",
]


@pytest.mark.parametrize("name", LOCKS)
def test_a_stale_lock_file_is_removed_with_a_note(name: str, checkout: Any, laid_out: ManifestSettings, remote: Path) -> None:
    with checkout():
        pass
    lock = clone_dir(laid_out.url) / ".git" / name
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")  # what a killed git leaves behind
    notes: list[str] = []
    with checkout(notes.append) as co:
        promote(co, PromotionRequest("api", "dev", A))
    assert not lock.exists()
    assert any(str(lock) in n and "lock" in n for n in notes), notes
    assert git(remote, "log", "-1", "--format=%s", "main").startswith("promote api to dev")


def test_a_lock_file_appearing_mid_operation_is_named_in_the_error(checkout: Any, laid_out: ManifestSettings) -> None:
    with checkout() as co:
        lock = co.workdir / ".git" / "index.lock"
        lock.write_text("")
        with pytest.raises(DevmeshError) as info:
            co.git("add", "--all")
    message = str(info.value)
    assert f"Unable to create '{lock}': File exists" in message, message
    assert "stderr:" not in message


def test_first_line_sees_through_gitpythons_wrapper(tmp_path: Path) -> None:
    repo = gitpython.Repo.init(tmp_path / "r")
    (tmp_path / "r" / ".git" / "index.lock").write_text("")
    (tmp_path / "r" / "f").write_text("x")
    with pytest.raises(gitpython.GitCommandError) as info:
        repo.git.add("f")
    line = first_line(str(info.value.stderr))
    assert line.startswith("Unable to create '") and line.endswith("index.lock': File exists."), line
    assert first_line("\n  stderr: 'fatal: 'origin' does not appear to be a git repository'") == (
        "'origin' does not appear to be a git repository"
    )
    assert first_line(str(info.value)).startswith("Unable to create '")


# --- 4. shallow repositories --------------------------------------------------------------------------


def _promote_three(checkout: Any) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("api", "dev", B))
        promote(co, PromotionRequest("api", "beta"))


def test_a_shallow_manifest_repo_works(checkout: Any, remote: Path, tmp_path: Path) -> None:
    _promote_three(checkout)
    shallow = tmp_path / "shallow.git"
    git(tmp_path, "clone", "--quiet", "--bare", "--depth", "1", f"file://{remote}", str(shallow))
    assert (shallow / "shallow").is_file()
    notes: list[str] = []
    settings = ManifestSettings(url=str(shallow))
    with open_checkout(settings, notify=notes.append) as co:
        assert pin_of(co, "beta", "api") == B
        promote(co, PromotionRequest("api", "prod"))
        matrix = tier_matrix(co)
        assert matrix.services["api"]["prod"].image == B
        history = read_history(co)
        assert history and history[0].tier == "prod"
    assert git(shallow, "log", "-1", "--format=%s", "main").startswith("promote api to prod")
    assert any("shallow" in n for n in notes), notes
    with open_checkout(settings) as co:  # and again, on the now shallow cache
        assert pin_of(co, "prod", "api") == B


def test_a_shallow_cached_clone_is_deepened(checkout: Any, laid_out: ManifestSettings, remote: Path, tmp_path: Path) -> None:
    _promote_three(checkout)
    cache = clone_dir(laid_out.url)
    import shutil

    shutil.rmtree(cache)
    git(tmp_path, "clone", "--quiet", "--depth", "1", f"file://{remote}", str(cache))
    git(cache, "remote", "set-url", "origin", laid_out.url)
    assert git(cache, "rev-parse", "--is-shallow-repository").strip() == "true"
    with checkout() as co:
        history = read_history(co, "api")
        assert [(e.tier, e.image) for e in history] == [("beta", B), ("dev", B), ("dev", A)]
        rollback(co, "api", "dev")
        assert pin_of(co, "dev", "api") == A
    assert git(cache, "rev-parse", "--is-shallow-repository").strip() == "false"


# --- 5. a remote that accepts and never answers --------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _processes_in(folder: Path) -> list[str]:
    """Processes whose working directory is inside ``folder`` (git runs in the cache)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)):
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.parametrize("scheme", ["http", "git", "ssh"])
def test_a_remote_that_never_answers_times_out(
    scheme: str, silent_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVMESH_GIT_TIMEOUT", "1")
    url = f"{scheme}://127.0.0.1:{silent_server}/team/manifests.git"
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            with open_checkout(ManifestSettings(url=url)) as co:
                tier_matrix(co)
            outcome.append(None)
        except BaseException as exc:  # reported below
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    elapsed = time.monotonic() - started
    assert not thread.is_alive(), f"{scheme}: still waiting for the silent remote after 30s"
    error = outcome[0]
    assert isinstance(error, DevmeshError), error
    assert url in str(error) and "1s" in str(error) and "DEVMESH_GIT_TIMEOUT" in (str(error) + str(error.hint))
    assert elapsed < 20
    time.sleep(0.2)
    assert _processes_in(tmp_path / "cache") == []


# --- 6. hooks that refuse with misleading words ---------------------------------------------------------


HOOK = """#!{python}
import sys
from pathlib import Path
counter = Path({counter!r})
counter.write_text(str(int(counter.read_text() if counter.exists() else "0") + 1))
print("policy: {text}")
sys.exit(1)
"""


@pytest.mark.parametrize("hook", ["pre-receive", "update"])
@pytest.mark.parametrize("text", ["fetch first", "stale info"])
def test_a_hook_refusal_is_shown_and_not_retried(hook: str, text: str, checkout: Any, remote: Path, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    path = remote / "hooks" / hook
    path.write_text(HOOK.format(python=sys.executable, counter=str(counter), text=f"main is frozen, {text}"))
    path.chmod(0o755)
    before = git(remote, "rev-parse", "main")
    with checkout() as co:
        with pytest.raises(DevmeshError, match="refused the push") as info:
            promote(co, PromotionRequest("api", "dev", A))
    assert f"policy: main is frozen, {text}" in str(info.value)
    assert "\n" not in str(info.value)
    assert counter.read_text() == "1"
    assert git(remote, "rev-parse", "main") == before


def test_a_refusal_in_pull_request_mode_is_shown(laid_out: ManifestSettings, remote: Path, tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    path = remote / "hooks" / "update"
    path.write_text(HOOK.format(python=sys.executable, counter=str(counter), text="no new branches, fetch first"))
    path.chmod(0o755)
    with open_checkout(ManifestSettings(url=laid_out.url, mode="pull-request")) as co:
        with pytest.raises(DevmeshError, match="refused the push.*policy: no new branches, fetch first"):
            promote(co, PromotionRequest("api", "dev", A))


# --- 7. a plain git revert of a promotion ------------------------------------------------------------------


def test_a_plain_git_revert_counts_as_a_rollback(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("api", "dev", B))
    promoted_b = git(remote, "rev-parse", "main").strip()
    work = human_clone(remote, tmp_path)
    git(work, "revert", "--no-edit", "HEAD")
    push(work)
    reverted = git(remote, "rev-parse", "main").strip()
    with checkout() as co:
        history = read_history(co, "api", "dev")
        assert [(e.kind, e.image, e.previous) for e in history] == [("rollback", A, B), ("promote", B, A), ("promote", A, None)]
        assert history[0].commit == reverted and history[0].reverts == promoted_b
        cell = tier_matrix(co).services["api"]["dev"]
        assert cell.image == A and cell.last is not None and cell.last.commit == reverted and cell.last.kind == "rollback"
        result = rollback(co, "api", "dev")  # goes on to the promotion before
        assert result.rollback is not None and result.rollback.restored is None
        assert pin_of(co, "dev", "api") is None


def test_a_revert_keeping_the_original_trailers_is_not_a_promotion(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("api", "dev", B))
    promoted_b = git(remote, "rev-parse", "main").strip()
    original = git(remote, "log", "-1", "--format=%B", "main")
    work = human_clone(remote, tmp_path)
    git(work, "revert", "--no-commit", "HEAD")
    body = original.split("\n\n", 1)[1]  # the original's trailers, as an edited revert keeps them
    message = f'Revert "promote api to dev"\n\nThis reverts commit {promoted_b}.\n\n{body}'
    git(work, "commit", "--quiet", "-m", message)
    push(work)
    with checkout() as co:
        history = read_history(co, "api", "dev")
        assert [(e.kind, e.image) for e in history] == [("rollback", A), ("promote", B), ("promote", A)]
        assert history[0].reverts == promoted_b
        rollback(co, "api", "dev")
        assert pin_of(co, "dev", "api") is None


def test_a_plain_revert_of_a_rollback_promotes_again(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("api", "dev", B))
        rollback(co, "api", "dev")
    work = human_clone(remote, tmp_path)
    git(work, "revert", "--no-edit", "HEAD")
    push(work)
    with checkout() as co:
        assert pin_of(co, "dev", "api") == B
        history = read_history(co, "api", "dev")
        assert [(e.kind, e.image, e.previous) for e in history[:2]] == [("promote", B, A), ("rollback", A, B)]
        assert tier_matrix(co).services["api"]["dev"].last == history[0]
        rollback(co, "api", "dev")
        assert pin_of(co, "dev", "api") == A


# --- 8. history of something that does not exist ------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["history", "nope", "--json"], "unknown service 'nope'"),
        (["history", "nope"], "unknown service 'nope'"),
        (["history", "api", "--tier", "qa", "--json"], "unknown tier 'qa'"),
    ],
)
def test_history_of_an_unknown_service_or_tier_is_an_error(
    args: list[str], message: str, laid_out: ManifestSettings, project_file: Path, devmesh: Any
) -> None:
    result = devmesh(project_file.parent, *args)
    assert result.code == 2, (result.out, result.err)
    assert message in result.err.splitlines()[0]
    assert result.out == ""


@pytest.mark.parametrize("value", ["soon", "0", "-3", "inf", "nan"])
def test_a_bad_timeout_setting_is_refused(value: str, laid_out: ManifestSettings, project_file: Path, devmesh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMESH_GIT_TIMEOUT", value)
    result = devmesh(project_file.parent, "tiers")
    assert result.code == 2, (result.out, result.err)
    assert f"DEVMESH_GIT_TIMEOUT: expected a number of seconds above 0, got '{value}'" in result.err.splitlines()[0]


def test_init_gives_a_layout_from_before_tier_traffic_each_services_traffic(
    checkout: Any, remote: Path, tmp_path: Path, devmesh: Any, project_file: Path
) -> None:
    """A layout whose tiers list only the bases (as devmesh wrote them before each tier carried
    its traffic): init writes every service's traffic file in every tier and lists it, in one
    commit, and changes nothing else; a second init has nothing to do."""
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
    work = human_clone(remote, tmp_path)
    for tier in ("dev", "beta", "prod"):
        git(work, "rm", "--quiet", "-r", f"tiers/{tier}/traffic")
        path = work / "tiers" / tier / "kustomization.yaml"
        path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                                if "traffic/" not in line))
    git(work, "commit", "--quiet", "-am", "as before")
    push(work)
    old_dev = git(remote, "show", "main:tiers/dev/kustomization.yaml")
    result = devmesh(project_file.parent, "manifests", "init")
    assert result.code == 0, result.err
    assert "the tiers lacked the traffic of api, web, worker" in result.err
    assert log_subjects(remote)[0] == "manifests: add the traffic of api, web, worker to the tiers of shop"
    changed = git(remote, "show", "--format=", "--name-only", "main").split()
    assert changed == sorted([f"tiers/{t}/kustomization.yaml" for t in ("dev", "beta", "prod")]
                             + [f"tiers/{t}/traffic/{s}.yaml" for t in ("dev", "beta", "prod")
                                for s in ("api", "web", "worker")])
    new_dev = git(remote, "show", "main:tiers/dev/kustomization.yaml")
    last = "  - ../../base/worker\n"  # the entries go after the last one; the pins below stay
    assert new_dev == old_dev.replace(last, last + "".join(f"  - traffic/{s}.yaml\n" for s in ("api", "web", "worker")))
    with checkout() as co:
        assert pin_of(co, "dev", "api") == A
    again = devmesh(project_file.parent, "manifests", "init")
    assert again.code == 0 and "already has every service of shop" in again.out
