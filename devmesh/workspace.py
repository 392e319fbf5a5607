"""The developer's git working tree: current branch, baseline branch, what a branch changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.naming import BASELINE_ENV, check_branch_name, detached_env_name, env_name

if TYPE_CHECKING:
    import git

    from devmesh.config import Project


@contextmanager
def open_repo(path: Path) -> Iterator[git.Repo]:
    """The git repository holding ``path``, closed afterwards (GitPython leaks otherwise)."""
    import git

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UserInputError(
            f"{path} is not inside a git repository; devmesh names environments after branches",
            hint="run 'git init' and commit your project first",
        ) from None
    try:
        if not repo.head.is_valid():
            raise UserInputError(f"the git repository at {repo.working_dir} has no commits yet",
                                 hint="commit your project first")
        yield repo
    finally:
        repo.close()


@dataclass(frozen=True)
class Branch:
    """A branch (or a detached HEAD) and the environment it maps to."""

    name: str | None
    commit: str
    env: str
    is_current: bool

    @property
    def label(self) -> str:
        return self.name if self.name is not None else f"(detached at {self.commit[:12]})"


def _default_branch(repo: git.Repo) -> str:
    try:
        ref = repo.git.symbolic_ref("--quiet", "--short", "refs/remotes/origin/HEAD")
        return str(ref).split("/", 1)[1]
    except Exception:  # no origin, or origin/HEAD not set
        pass
    names = {head.name for head in repo.heads}
    for candidate in ("main", "master", "trunk", "develop"):
        if candidate in names:
            return candidate
    raise UserInputError(
        "cannot tell the baseline branch: no origin/HEAD and no main or master branch",
        hint="set 'baseline: BRANCH' in devmesh.yaml",
    )


def baseline_branch(project: Project, repo: git.Repo) -> str:
    """The branch the shared baseline runs: ``baseline:`` in devmesh.yaml, else the default branch."""
    name = project.baseline or _default_branch(repo)
    if _resolve(repo, name) is None:
        raise UserInputError(
            f"baseline branch {name!r} does not exist in {repo.working_dir}",
            hint="create it, or set 'baseline:' in devmesh.yaml to an existing branch",
        )
    return name


def _resolve(repo: git.Repo, name: str) -> str | None:
    for ref in (f"refs/heads/{name}", f"refs/remotes/origin/{name}"):
        try:
            return str(repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}"))
        except Exception:
            continue
    return None


def resolve_branch(project: Project, repo: git.Repo, name: str | None) -> Branch:
    """The named branch, or the checked-out one (``name`` None), with its environment name."""
    base = baseline_branch(project, repo)
    if name is None:
        if repo.head.is_detached:
            sha = repo.head.commit.hexsha
            return Branch(None, sha, detached_env_name(sha), True)
        name = repo.active_branch.name
        return Branch(name, repo.head.commit.hexsha, env_name(name, baseline_branch=base), True)
    check_branch_name(name)
    found = _resolve(repo, name)
    if found is None:
        raise UserInputError(f"no branch named {name!r} in {repo.working_dir}")
    current = not repo.head.is_detached and repo.active_branch.name == name
    return Branch(name, found, env_name(name, baseline_branch=base), current)


def _changed_paths(repo: git.Repo, base: str, branch: Branch) -> set[str]:
    if branch.is_current:
        # Against the working tree: committed, staged and unstaged changes, plus new files.
        diff = repo.git.diff("--name-only", "--no-renames", base)
        untracked = repo.untracked_files
    else:
        diff = repo.git.diff("--name-only", "--no-renames", base, branch.commit)
        untracked = []
    return {line for line in str(diff).splitlines() if line} | set(untracked)


def _inside(path: str, folder: str) -> bool:
    if folder in ("", "."):
        return True
    return PurePosixPath(path).is_relative_to(PurePosixPath(folder))


def changed_services(project: Project, branch: Branch) -> list[str]:
    """Services whose build context or Dockerfile differ from the merge-base with the baseline."""
    if branch.env == BASELINE_ENV:
        return []
    with open_repo(project.root) as repo:
        base_name = baseline_branch(project, repo)
        base_sha = _resolve(repo, base_name)
        try:
            merge_base = str(repo.git.merge_base(base_sha, branch.commit))
        except Exception:
            raise UserInputError(
                f"branch {branch.label} shares no history with the baseline branch {base_name!r}"
            ) from None
        top = Path(repo.working_dir).resolve()
        changed = _changed_paths(repo, merge_base, branch)
    forked = []
    for name in project.services:
        context = project.context_dir(name).resolve().relative_to(top).as_posix()
        dockerfile = project.dockerfile_path(name).resolve().relative_to(top).as_posix()
        if any(_inside(p, context) or p == dockerfile for p in changed):
            forked.append(name)
    return forked


def current_branch(project: Project, name: str | None = None) -> Branch:
    """The branch to work on: ``name`` or the checked-out one."""
    with open_repo(project.root) as repo:
        return resolve_branch(project, repo, name)


def baseline_commit(project: Project) -> tuple[str, str]:
    """The baseline branch and the commit it points at."""
    with open_repo(project.root) as repo:
        name = baseline_branch(project, repo)
        sha = _resolve(repo, name)
        assert sha is not None  # baseline_branch checked it
        return name, sha


def checkout(project: Project, commit: str, slot: str = "baseline") -> Path:
    """A git worktree of ``commit`` (never the developer's working tree).

    The worktree lives inside the repository's git directory under ``slot``, is reused across
    runs and moved to ``commit`` when the branch advanced. Returns the project root inside it.
    """
    with open_repo(project.root) as repo:
        top = Path(repo.working_dir).resolve()
        tree = Path(repo.git_dir).resolve() / "devmesh" / "worktrees" / slot
        if (tree / ".git").exists():
            from git import Repo

            with Repo(tree) as wt:
                if wt.head.commit.hexsha != commit:
                    wt.git.checkout("--detach", "--force", commit)
                    wt.git.clean("-fdx")
        else:
            repo.git.worktree("prune")
            tree.parent.mkdir(parents=True, exist_ok=True)
            repo.git.worktree("add", "--detach", "--force", str(tree), commit)
    return tree / project.root.resolve().relative_to(top)
