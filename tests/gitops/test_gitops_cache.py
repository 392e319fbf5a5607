"""The cached clone: fetched not re-cloned, locked, repaired when dirty, clear errors."""

from __future__ import annotations

import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.errors import DevmeshError, UserInputError
from devmesh.gitops.cache import cache_root, clone_dir, open_checkout
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.settings import ManifestSettings
from tests.gitops.gitops_helpers import digest_ref, git, pin_of


def test_cache_location_follows_the_environment(tmp_path: Path) -> None:
    assert cache_root({"DEVMESH_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "devmesh"
    assert clone_dir("a", tmp_path) != clone_dir("b", tmp_path)
    assert clone_dir("a", tmp_path).parent == tmp_path / "manifests"


def test_the_clone_is_fetched_into_not_cloned_again(checkout: Any, laid_out: ManifestSettings, remote: Path, tmp_path: Path) -> None:
    cache = clone_dir(laid_out.url)
    marker = cache / ".git" / "kept-between-runs"
    marker.write_text("")
    other = ManifestSettings(url=laid_out.url)
    with open_checkout(other, cache=tmp_path / "elsewhere") as co:  # another machine promotes
        promote(co, PromotionRequest("api", "dev", digest_ref("a")))
    with checkout() as co:
        assert pin_of(co, "dev", "api") == digest_ref("a")
        assert co.tip == git(remote, "rev-parse", "main").strip()
    assert marker.exists()


def test_a_dirty_cache_is_repaired_not_trusted(checkout: Any, laid_out: ManifestSettings, remote: Path) -> None:
    cache = clone_dir(laid_out.url)
    (cache / "tiers/dev/kustomization.yaml").write_text("garbage: [\n")
    (cache / "stray.yaml").write_text("x: 1\n")
    git(cache, "commit", "--quiet", "-am", "local only")
    (cache / "tiers/beta/kustomization.yaml").write_text("more garbage\n")
    (cache / ".git" / "index.lock").write_text("")  # left by a killed git
    before = git(remote, "rev-parse", "main")
    notes: list[str] = []
    with checkout(notes.append) as co:
        promote(co, PromotionRequest("api", "dev", digest_ref("a")))
    assert any("had local changes or commits" in n for n in notes)
    assert git(remote, "rev-parse", "main~1") == before  # the local-only commit was not pushed
    assert "local only" not in git(remote, "log", "--format=%s", "main")
    assert git(cache, "status", "--porcelain") == ""


def test_a_broken_cache_is_started_again(checkout: Any, laid_out: ManifestSettings) -> None:
    cache = clone_dir(laid_out.url)
    shutil.rmtree(cache / ".git")
    (cache / ".git").write_text("not a git dir\n")
    notes: list[str] = []
    with checkout(notes.append) as co:
        assert co.layout().services() == ["api", "web", "worker"]
    assert any("was broken" in n for n in notes)


def test_a_failed_push_resets_the_cache_and_loses_nothing(checkout: Any, laid_out: ManifestSettings, remote: Path, tmp_path: Path) -> None:
    before = git(remote, "rev-parse", "main")
    moved = tmp_path / "moved.git"
    with checkout() as co:
        remote.rename(moved)  # the remote disappears between fetch and push
        try:
            with pytest.raises(UserInputError, match="does not exist"):
                promote(co, PromotionRequest("api", "dev", digest_ref("a")))
        finally:
            moved.rename(remote)
        assert pin_of(co, "dev", "api") is None
        assert git(co.workdir, "rev-parse", "HEAD") == before
        assert git(co.workdir, "status", "--porcelain") == ""
    assert git(remote, "rev-parse", "main") == before


def test_the_lock_serialises_processes_and_times_out_with_a_message(laid_out: ManifestSettings) -> None:
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with open_checkout(laid_out):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        held.wait(10)
        with pytest.raises(DevmeshError, match="still locked"):
            with open_checkout(laid_out, lock_timeout=1.2):
                pass
        notes: list[str] = []
        threading.Timer(0.3, release.set).start()
        started = time.monotonic()
        with open_checkout(laid_out, notify=notes.append, lock_timeout=10):
            assert time.monotonic() - started >= 0.3
        assert any("waiting for another devmesh process" in n for n in notes)
    finally:
        release.set()
        thread.join()


def test_missing_repo_not_a_repo_and_missing_branch(tmp_path: Path, laid_out: ManifestSettings) -> None:
    with pytest.raises(UserInputError, match="does not exist"):
        with open_checkout(ManifestSettings(url=str(tmp_path / "nowhere"))):
            pass
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UserInputError, match="is not a git repository"):
        with open_checkout(ManifestSettings(url=str(plain))):
            pass
    with open_checkout(ManifestSettings(url=laid_out.url, branch="release")) as co:
        with pytest.raises(UserInputError, match=r"branch 'release' does not exist in manifest repo .* \(it has: main\)"):
            promote(co, PromotionRequest("api", "dev", digest_ref("a")))


def test_an_unreachable_remote(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(DevmeshError, match=f"cannot reach manifest repo http://127.0.0.1:{port}/m.git"):
        with open_checkout(ManifestSettings(url=f"http://127.0.0.1:{port}/m.git")):
            pass


class _Refuse(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="manifests"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/team/manifests.git"
    server.shutdown()
    server.server_close()


def test_authentication_refused_never_prompts(refusing_server: str) -> None:
    with pytest.raises(DevmeshError, match="authentication refused") as info:
        with open_checkout(ManifestSettings(url=refusing_server)):
            pass
    assert info.value.hint and "credentials" in info.value.hint
