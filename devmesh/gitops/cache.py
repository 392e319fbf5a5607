"""One cached clone per manifest repo, fetched into (never re-cloned) under a file lock.

The clone lives in ``$XDG_CACHE_HOME/devmesh/manifests/<hash of the URL>`` (or under
``$DEVMESH_CACHE_DIR/manifests``). Nothing in it is trusted: every operation starts by
fetching the branch and resetting the work tree to the remote tip, and a failed operation
resets it again, so a crash or a rejected push never leaves local-only commits behind.
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
from devmesh.gitops.remote import first_line, git_environment, remote_error
from devmesh.gitops.settings import ManifestSettings

Notify = Callable[[str], None]
LOCK_TIMEOUT = 300.0
_GIT_STATE = ("rebase-merge", "rebase-apply", "MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "index.lock")


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

    def git(self, *args: str) -> str:
        """Run git in the clone; a failure becomes a DevmeshError naming the command."""
        try:
            return str(self.repo.git.execute(["git", *args], env=git_environment()))
        except git.GitCommandError as exc:
            raise DevmeshError(
                f"git {args[0]} failed in the manifest cache {self.workdir}: {first_line(str(exc.stderr))}"
            ) from None

    def remote_git(self, *args: str) -> str:
        """Run a git command that talks to the remote; failures name the repo and the cause."""
        try:
            return str(self.repo.git.execute(["git", *args], env=git_environment()))
        except git.GitCommandError as exc:
            raise remote_error(self.settings.url, str(exc.stderr)) from None

    def layout(self) -> Layout:
        """The Kustomize layout in the work tree."""
        where = self.settings.url if self.settings.path == "." else f"{self.settings.url} ({self.settings.path})"
        return Layout(self.root, f"manifest repo {where}")

    def relative(self, path: Path) -> str:
        """``path`` relative to the work tree, as git wants it."""
        return path.relative_to(self.workdir).as_posix()

    def commit(self, message: str, paths: list[str]) -> str | None:
        """Commit ``paths`` (relative to the work tree); None when they did not change."""
        self.git("add", "--all", "--", *paths)
        try:
            self.repo.git.execute(["git", "diff", "--cached", "--quiet"])
            return None
        except git.GitCommandError:
            pass  # there are staged changes
        env = git_environment() | _identity(self.repo)
        try:
            self.repo.git.execute(["git", "commit", "--quiet", "--no-verify", "-m", message], env=env)
        except git.GitCommandError as exc:
            raise DevmeshError(
                f"git commit failed in the manifest cache {self.workdir}: {first_line(str(exc.stderr))}"
            ) from None
        return self.git("rev-parse", "HEAD").strip()

    def sync(self) -> str | None:
        """Fetch the branch and reset the work tree to its tip; None when the branch is missing."""
        branch = self.settings.branch
        remote_ref = f"refs/remotes/origin/{branch}"
        try:
            self.repo.git.execute(
                ["git", "fetch", "--quiet", "--no-tags", "origin", f"+refs/heads/{branch}:{remote_ref}"],
                env=git_environment(),
            )
        except git.GitCommandError as exc:
            stderr = str(exc.stderr)
            if "couldn't find remote ref" not in stderr:
                raise remote_error(self.settings.url, stderr) from None
            self._reset_unborn(branch, remote_ref)
            self.tip = None
            return None
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
        try:
            self.repo.git.execute(["git", "rev-parse", "--verify", "--quiet", "HEAD"])
        except git.GitCommandError:
            return False
        return True

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


def _identity(repo: git.Repo) -> dict[str, str]:
    """The user's git identity; a fallback only when none is configured anywhere."""
    try:
        repo.git.config("--get", "user.email")
        repo.git.config("--get", "user.name")
        return {}
    except git.GitCommandError:
        pass
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
