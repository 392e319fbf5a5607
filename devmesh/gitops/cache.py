"""One cached clone per manifest repo, fetched into (never re-cloned) under a file lock.

The clone lives in ``$XDG_CACHE_HOME/devmesh/manifests/<hash of the URL>`` (or under
``$DEVMESH_CACHE_DIR/manifests``). Nothing in it is trusted: every operation starts by
removing the lock files a killed git left, fetching the branch and resetting the work tree
to the remote tip, and a failed operation resets it again, so a crash or a rejected push
never leaves local-only commits behind. A shallow clone is deepened, and a shallow remote
is followed as far back as it goes.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import git
from filelock import FileLock, Timeout

from devmesh.errors import DevmeshError, UserInputError
from devmesh.gitops.layout import Layout
from devmesh.gitops.remote import GitRun, first_line, remote_error, run_git
from devmesh.gitops.settings import ManifestSettings

Notify = Callable[[str], None]
LOCK_TIMEOUT = 300.0
_GIT_STATE = ("rebase-merge", "rebase-apply", "MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD")
# Where git keeps "<file>.lock" files; objects/ itself (many loose objects) holds none.
_LOCK_FOLDERS = ("", "refs", "logs", "objects/info", "info")


def cache_root(environ: dict[str, str] | None = None) -> Path:
    """Where devmesh keeps its caches: DEVMESH_CACHE_DIR, else $XDG_CACHE_HOME/devmesh."""
    env = os.environ if environ is None else environ
    if env.get("DEVMESH_CACHE_DIR"):
        return Path(env["DEVMESH_CACHE_DIR"]).expanduser()
    xdg = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "devmesh"


def clone_dir(url: str, root: Path | None = None) -> Path:
    """The cached clone of ``url``: one directory per repository URL."""
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:20]
    return (root or cache_root()) / "manifests" / digest


def _quiet(message: str) -> None:
    del message


@dataclass
class Checkout:
    """The cached clone, checked out at the remote tip of the manifest branch."""

    settings: ManifestSettings
    workdir: Path
    repo: git.Repo
    notify: Notify = _quiet
    tip: str | None = field(default=None)

    @property
    def root(self) -> Path:
        """The folder the layout lives in (``manifests.path`` inside the work tree)."""
        return self.workdir / self.settings.path

    def run(self, *args: str, env: dict[str, str] | None = None) -> GitRun:
        """Run a local git command in the clone; the caller reads the status."""
        return run_git(self.workdir, args, env=env)

    def run_remote(self, *args: str) -> GitRun:
        """Run a git command that talks to the remote, in bounded time (see ``remote``)."""
        return run_git(self.workdir, args, url=self.settings.url)

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run git in the clone; a failure becomes a DevmeshError with git's own words."""
        done = self.run(*args, env=env)
        if done.status != 0:
            raise DevmeshError(f"git {args[0]} failed in the manifest cache {self.workdir}: {first_line(done.stderr)}")
        return done.stdout.removesuffix("\n")

    def remote_git(self, *args: str) -> str:
        """Run a git command that talks to the remote; failures name the repo and the cause."""
        done = self.run_remote(*args)
        if done.status != 0:
            raise remote_error(self.settings.url, done.stderr)
        return done.stdout.removesuffix("\n")

    def layout(self) -> Layout:
        """The Kustomize layout in the work tree.

        When the settings name the project's app, a tiers.yaml of another app is refused
        here, before any command reads or edits a pin of it (the pins are keyed by app).
        """
        where = self.settings.url if self.settings.path == "." else f"{self.settings.url} ({self.settings.path})"
        layout = Layout(self.root, f"manifest repo {where}")
        if self.settings.app is not None and layout.exists():
            require_app(layout, self.settings.app)
        return layout

    def relative(self, path: Path) -> str:
        """``path`` relative to the work tree, as git wants it."""
        return path.relative_to(self.workdir).as_posix()

    def commit(self, message: str, paths: list[str]) -> str | None:
        """Commit ``paths`` (relative to the work tree); None when they did not change."""
        self.git("add", "--all", "--", *paths)
        if self.run("diff", "--cached", "--quiet").status == 0:
            return None  # nothing staged
        self.git("commit", "--quiet", "--no-verify", "-m", message, env=_identity(self))
        return self.git("rev-parse", "HEAD").strip()

    def sync(self) -> str | None:
        """Fetch the branch and reset the work tree to its tip; None when the branch is missing."""
        branch = self.settings.branch
        remote_ref = f"refs/remotes/origin/{branch}"
        # --update-shallow: a shallow remote's refs are taken (git refuses them otherwise
        # and the branch looks missing); --unshallow: a shallow cache gets the whole history
        # that history and rollback read (as far as the remote has it).
        deepen = ["--unshallow"] if self._is_shallow() else []
        done = self.run_remote(
            "fetch", "--quiet", "--no-tags", "--update-shallow", *deepen, "origin", f"+refs/heads/{branch}:{remote_ref}"
        )
        if done.status != 0:
            if "couldn't find remote ref" not in done.stderr:
                raise remote_error(self.settings.url, done.stderr)
            self._reset_unborn(branch, remote_ref)
            self.tip = None
            return None
        if "shallow roots are not allowed" in done.stderr:
            raise DevmeshError(f"manifest repo {self.settings.url}: git refused its shallow history: {first_line(done.stderr)}")
        if self._is_shallow():
            self.notify(
                f"manifest repo {self.settings.url} is a shallow clone: history and rollback "
                "reach back only to its oldest commit"
            )
        self._repair_if_dirty(remote_ref)
        self.git("checkout", "--quiet", "--force", "-B", branch, remote_ref)
        self.git("clean", "-ffdxq")
        self.tip = self.git("rev-parse", "HEAD").strip()
        return self.tip

    def require_tip(self) -> str:
        """The tip, or a UserInputError saying the branch or the whole repo is missing."""
        if self.tip is not None:
            return self.tip
        heads = self.remote_git("ls-remote", "--heads", "origin")
        names = sorted(line.split("refs/heads/", 1)[1] for line in heads.splitlines() if "refs/heads/" in line)
        url = self.settings.url
        if not names:
            raise UserInputError(
                f"manifest repo {url} is empty", hint="run 'devmesh manifests init' to write the layout"
            )
        raise UserInputError(
            f"branch {self.settings.branch!r} does not exist in manifest repo {url} (it has: {', '.join(names)})",
            hint="set manifests.branch in devmesh.yaml, or run 'devmesh manifests init' to start it",
        )

    def reset_to_remote(self) -> None:
        """Drop anything local: back to the fetched remote tip (used after a failure)."""
        branch = self.settings.branch
        remote_ref = f"refs/remotes/origin/{branch}"
        try:
            self.git("rev-parse", "--verify", "--quiet", remote_ref)
        except DevmeshError:
            self._reset_unborn(branch, remote_ref)
            return
        self._clear_state()
        self.git("checkout", "--quiet", "--force", "-B", branch, remote_ref)
        self.git("clean", "-ffdxq")

    def _reset_unborn(self, branch: str, remote_ref: str) -> None:
        self._clear_state()
        self.git("symbolic-ref", "HEAD", f"refs/heads/{branch}")
        for ref in (f"refs/heads/{branch}", remote_ref):
            self.git("update-ref", "-d", ref)
        self.git("read-tree", "--empty")
        self.git("clean", "-ffdxq")

    def _repair_if_dirty(self, remote_ref: str) -> None:
        stale = self._clear_state()
        changed = self.git("status", "--porcelain", "--untracked-files=all").strip()
        ahead = ""
        if self._head_exists():
            ahead = self.git("rev-list", "--max-count=1", f"{remote_ref}..HEAD").strip()
        if stale or changed or ahead:
            self.notify(
                f"the cached clone {self.workdir} had local changes or commits; "
                f"reset it to origin/{self.settings.branch}"
            )

    def _head_exists(self) -> bool:
        return self.run("rev-parse", "--verify", "--quiet", "HEAD").status == 0

    def _is_shallow(self) -> bool:
        return (self.workdir / ".git" / "shallow").is_file()

    def _clear_state(self) -> bool:
        """Remove what an interrupted git left (we hold the lock, so it is stale)."""
        gitdir = self.workdir / ".git"
        found = False
        for name in _GIT_STATE:
            target = gitdir / name
            if target.is_dir():
                shutil.rmtree(target)
                found = True
            elif target.exists():
                target.unlink()
                found = True
        return found


def require_app(layout: Layout, app: str | None) -> str:
    """The app ``layout`` holds; a UserInputError when it is not ``app`` (None: any app)."""
    existing = layout.app(app)
    if app is not None and existing != app:
        raise UserInputError(
            f"{layout.display} holds app {existing!r}, not {app!r}: use another manifests.path for this app",
            hint=f"or set app: {app} in {layout.tiers_file.name} there if the layout is this project's",
        )
    return existing


def _identity(checkout: Checkout) -> dict[str, str]:
    """The user's git identity; a fallback only when none is configured anywhere."""
    if all(checkout.run("config", "--get", f"user.{key}").status == 0 for key in ("email", "name")):
        return {}
    if os.environ.get("GIT_AUTHOR_EMAIL") and os.environ.get("GIT_COMMITTER_EMAIL"):
        return {}
    user = getpass.getuser()
    host = socket.gethostname() or "localhost"
    return {
        "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", user),
        "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", f"{user}@{host}"),
        "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", user),
        "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", f"{user}@{host}"),
    }


def _initialise(workdir: Path, url: str) -> None:
    """An empty repository whose origin is ``url``; the first fetch fills it."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    with git.Repo.init(workdir, initial_branch="devmesh-unborn") as repo:
        with repo.config_writer() as config:
            config.set_value('remote "origin"', "url", url)
            config.set_value('remote "origin"', "fetch", "+refs/heads/*:refs/remotes/origin/*")
            config.set_value("gc", "auto", "0")


def _is_healthy(workdir: Path, url: str) -> bool:
    if not (workdir / ".git").is_dir():
        return False
    try:
        with git.Repo(workdir) as repo:
            return bool(repo.git.config("--get", "remote.origin.url") == url)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
        return False


def remove_stale_locks(workdir: Path, notify: Notify) -> list[Path]:
    """Delete the ``*.lock`` files an interrupted git left in the clone's .git.

    Only call this holding the cache lock: every git that works in the clone runs under it,
    so any lock file found then belongs to a git that is no longer running.
    """
    gitdir = workdir / ".git"
    if not gitdir.is_dir():
        return []
    removed: list[Path] = []
    for folder in _LOCK_FOLDERS:
        base = gitdir / folder
        if not base.is_dir():
            continue
        candidates = base.rglob("*.lock") if folder else base.glob("*.lock")
        for lock in sorted(candidates):
            if lock.is_file() or lock.is_symlink():
                lock.unlink(missing_ok=True)
                removed.append(lock)
                notify(f"removed {lock}, a lock file left by a git that was interrupted")
    return removed


@contextmanager
def _locked(lock_path: Path, notify: Notify, timeout: float) -> Iterator[None]:
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        notify("waiting for another devmesh process that is using the manifest cache…")
        started = time.monotonic()
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise DevmeshError(
                f"the manifest cache is still locked after {time.monotonic() - started:.0f}s "
                f"by another devmesh process ({lock_path})"
            ) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def open_checkout(
    settings: ManifestSettings,
    *,
    cache: Path | None = None,
    notify: Notify = _quiet,
    lock_timeout: float = LOCK_TIMEOUT,
) -> Iterator[Checkout]:
    """Lock the cached clone of the manifest repo, fetch, and check out the remote tip.

    Any exception inside the block resets the clone to the remote tip before it propagates.
    """
    workdir = clone_dir(settings.url, cache)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(workdir.with_name(workdir.name + ".lock"), notify, lock_timeout):
        remove_stale_locks(workdir, notify)
        if not _is_healthy(workdir, settings.url):
            if workdir.exists():
                notify(f"the cached clone {workdir} was broken; starting it again")
            _initialise(workdir, settings.url)
        with git.Repo(workdir) as repo:
            checkout = Checkout(settings, workdir, repo, notify)
            try:
                checkout.sync()
                yield checkout
            except BaseException:
                try:
                    checkout.reset_to_remote()
                except DevmeshError:
                    pass  # the original failure is the one to report
                raise
