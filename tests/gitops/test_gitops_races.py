"""Push races against one bare remote: real processes, and a remote that moves on cue.

The remote is moved "on cue" by a pre-receive hook: while our push waits for the ref update,
the hook lands another promotion through devmesh itself (a nested push from a separate
clone), so our push loses the race exactly as it would against a colleague.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from devmesh.config import load_project
from devmesh.errors import DevmeshError, UserInputError
from devmesh.gitops.cache import clone_dir, open_checkout
from devmesh.gitops.history import read_history
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.rollback import rollback
from devmesh.gitops.scaffold import scaffold, specs_from_project
from devmesh.gitops.settings import ManifestSettings, manifest_settings
from tests.gitops.gitops_helpers import digest_ref, git, pin_of, write_project

A, B = digest_ref("a"), digest_ref("b")

HOOK = '''#!{python}
import os, sys
from pathlib import Path
if os.environ.get("DEVMESH_TEST_NESTED"):
    sys.exit(0)
counter = Path({counter!r})
n = int(counter.read_text()) if counter.exists() else 0
if n >= {limit}:
    sys.exit(0)
counter.write_text(str(n + 1))
for key in list(os.environ):
    if key.startswith("GIT_") and not key.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_")):
        del os.environ[key]
os.environ["DEVMESH_TEST_NESTED"] = "1"
os.environ["DEVMESH_CACHE_DIR"] = {cache!r}
from devmesh.gitops.cache import open_checkout
from devmesh.gitops.images import ImageRef
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.rollback import rollback
from devmesh.gitops.settings import ManifestSettings
with open_checkout(ManifestSettings(url={url!r})) as co:
{action}
'''


def install_mover(remote: Path, tmp_path: Path, limit: int, action: str) -> Path:
    """Make the remote move ``limit`` times, each time running ``action`` (uses ``n``, ``co``)."""
    counter = tmp_path / "moves"
    hook = remote / "hooks" / "pre-receive"
    body = "\n".join("    " + line for line in action.strip().splitlines())
    hook.write_text(
        HOOK.format(python=sys.executable, counter=str(counter), limit=limit,
                    cache=str(tmp_path / "mover-cache"), url=str(remote), action=body)
    )
    hook.chmod(0o755)
    return counter


PROMOTE_WEB = (
    'promote(co, PromotionRequest("web", "dev", '
    'ImageRef("127.0.0.1:5001/shop/web", "sha256:" + str(n + 1) * 64)))'
)


def test_a_lost_race_is_retried_on_the_new_tip(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:  # fetched before the remote starts moving
        counter = install_mover(remote, tmp_path, 2, PROMOTE_WEB)
        notes: list[str] = []
        co.notify = notes.append
        result = promote(co, PromotionRequest("api", "dev", A))
        assert pin_of(co, "dev", "web") == digest_ref("2", "127.0.0.1:5001/shop/web")
    assert counter.read_text() == "2" and result.landed.attempts == 3
    assert sum("moved while pushing" in n for n in notes) == 2
    assert not any("local changes" in n for n in notes)
    subjects = git(remote, "log", "--format=%s", "main").splitlines()
    assert subjects[:3] == [
        "promote api to dev: sha256:aaaaaaaaaaaa",
        "promote web to dev: sha256:222222222222",
        "promote web to dev: sha256:111111111111",
    ]
    assert git(remote, "rev-list", "--merges", "main") == ""


def test_the_tier_rule_is_checked_again_after_a_lost_race(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        # While we push "beta takes A", a colleague lands B in dev: A is no longer what dev runs.
        install_mover(remote, tmp_path, 1, f'promote(co, PromotionRequest("api", "dev", ImageRef("{B.name}", "{B.digest}")))')
        with pytest.raises(UserInputError, match="beta only takes the image dev runs now"):
            promote(co, PromotionRequest("api", "beta", A))
        assert pin_of(co, "beta", "api") is None
    assert "promote api to beta" not in git(remote, "log", "--format=%s", "main")


def test_the_same_promotion_landing_meanwhile_is_not_duplicated(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:
        install_mover(remote, tmp_path, 1, f'promote(co, PromotionRequest("api", "dev", ImageRef("{A.name}", "{A.digest}")))')
        result = promote(co, PromotionRequest("api", "dev", A))
    assert result.landed.commit is None and "already runs" in (result.landed.unchanged or "")
    assert git(remote, "log", "--format=%s", "main").count("promote api to dev") == 1


def test_a_rollback_that_landed_meanwhile_is_not_reverted_twice(checkout: Any, remote: Path, tmp_path: Path) -> None:
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", A))
        promote(co, PromotionRequest("api", "dev", B))
        install_mover(remote, tmp_path, 1, "from devmesh.gitops.rollback import rollback\nrollback(co, 'api', 'dev')")
        result = rollback(co, "api", "dev")
        assert pin_of(co, "dev", "api") == A
    assert result.landed.commit is None and "already rolled back" in (result.landed.unchanged or "")
    assert git(remote, "log", "--format=%s", "main").count("Revert") == 1


def test_racing_forever_gives_up_cleanly(checkout: Any, remote: Path, tmp_path: Path, laid_out: ManifestSettings) -> None:
    with checkout() as co:
        counter = install_mover(remote, tmp_path, 100, PROMOTE_WEB.replace("str(n + 1)", "'0123456789'[n % 10]"))
        with pytest.raises(DevmeshError, match="gave up after 3 attempts: .* kept moving .* nothing was pushed"):
            promote(co, PromotionRequest("api", "dev", A), attempts=3)
        assert git(co.workdir, "status", "--porcelain") == ""
        # back on the remote tip as last fetched (the remote has moved again since)
        assert git(co.workdir, "rev-parse", "HEAD") == git(co.workdir, "rev-parse", "origin/main")
        git(remote, "merge-base", "--is-ancestor", git(co.workdir, "rev-parse", "HEAD").strip(), "main")
    assert counter.read_text() == "3"
    assert "promote api" not in git(remote, "log", "--format=%s", "main")


SERVICES = tuple(f"svc{i}" for i in range(8))


def test_eight_processes_promote_at_once(tmp_path: Path, remote: Path) -> None:
    """Half share one cached clone (the lock), half have their own (push races)."""
    project_file = write_project(tmp_path / "many", str(remote), SERVICES)
    settings = manifest_settings(load_project(project_file))
    with open_checkout(settings) as co:
        scaffold(co, "shop", specs_from_project(load_project(project_file)), ["dev", "beta", "prod"])
        for name in SERVICES[4:]:
            promote(co, PromotionRequest(name, "dev", digest_ref(name[-1], f"127.0.0.1:5001/shop/{name}")))
    base = git(remote, "rev-parse", "main").strip()
    procs = []
    for i, name in enumerate(SERVICES):
        cache = tmp_path / ("shared-cache" if i % 2 else f"cache-{i}")
        env = {**os.environ, "DEVMESH_CACHE_DIR": str(cache)}
        if i < 4:
            args = [name, "--to", "dev", "--image", f"127.0.0.1:5001/shop/{name}@sha256:{str(i) * 64}"]
        else:
            args = [name, "--to", "beta"]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "devmesh", "promote", *args, "--yes"],
            cwd=project_file.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, out, err in outputs:
        assert code == 0, err
        assert out.startswith("promoted ")
    new = git(remote, "rev-list", f"{base}..main").split()
    assert len(new) == 8
    assert git(remote, "rev-list", "--merges", "main") == ""
    assert len(set(git(remote, "rev-list", "--first-parent", "main").split())) == len(git(remote, "rev-list", "main").split())
    with open_checkout(settings, cache=tmp_path / "check") as co:
        entries = [e for e in read_history(co) if e.commit in new]
        assert Counter(e.service for e in entries) == Counter(SERVICES)
        for i, name in enumerate(SERVICES):
            dev = pin_of(co, "dev", name)
            if i < 4:
                assert dev is not None and dev.digest == "sha256:" + str(i) * 64
            else:
                assert pin_of(co, "beta", name) == dev  # the rule held: beta took what dev ran
    raced = sum("moved while pushing" in err for _, _, err in outputs)
    print(f"{raced} of 8 processes lost at least one push race and retried")


def test_one_cache_shared_by_threads(laid_out: ManifestSettings, remote: Path) -> None:
    import threading

    errors: list[BaseException] = []
    names = ["api", "web", "worker"]

    def work(name: str) -> None:
        try:
            with open_checkout(laid_out) as co:
                result = promote(co, PromotionRequest(name, "dev", digest_ref("f", f"127.0.0.1:5001/shop/{name}")))
                assert result.landed.attempts == 1  # the lock serialised them: no race at all
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert git(remote, "rev-list", "--count", "main").strip() == "4"
    assert git(clone_dir(laid_out.url), "status", "--porcelain") == ""


def test_a_push_the_remote_refuses_is_reported_not_retried(checkout: Any, remote: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(f"#!{sys.executable}\nimport sys\nprint('main is protected')\nsys.exit(1)\n")
    hook.chmod(0o755)
    before = git(remote, "rev-parse", "main")
    with checkout() as co:
        with pytest.raises(DevmeshError, match="refused the push: .*pre-receive hook declined"):
            promote(co, PromotionRequest("api", "dev", A))
        assert git(co.workdir, "rev-parse", "HEAD") == before
    assert git(remote, "rev-parse", "main") == before
