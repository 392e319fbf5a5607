"""Branch name → environment name.

An environment name is a DNS-1123 label of at most 40 characters, the same on every run.
Whenever the branch name had to be changed to fit (case, '/', unicode, length), a hash of
the original name is appended, so ``feature/Foo``, ``feature-foo`` and ``FEATURE/foo`` never
share an environment. The hash has 64 bits (16 hex digits): long branch names cut to the same
prefix are told apart by the hash alone, and among a million such names the chance that two
share one is about 3 in 100 million (birthday bound n²/2⁶⁵). A branch whose name already looks
like an altered one (it ends in '-' and sixteen hex digits) is altered too: otherwise it could
take the name another branch was given.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from devmesh.errors import UserInputError

MAX_LEN = 40
HASH_LEN = 16
BASELINE_ENV = "baseline"

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_BAD_RUN = re.compile(r"[^a-z0-9]+")
_ALTERED_SHAPE = re.compile(rf"-[0-9a-f]{{{HASH_LEN}}}\Z")


def branch_name_problems(branch: str) -> list[str]:
    """Why git would refuse ``branch`` as a branch name (``git check-ref-format --branch``)."""
    if not branch or not branch.strip():
        return ["it is empty"]
    problems = []
    if branch == "HEAD":
        problems.append("'HEAD' names the current commit, not a branch (a detached HEAD?)")
    if branch.startswith("-"):
        problems.append("starts with '-'")
    if ".." in branch:
        problems.append("contains '..'")
    if "@{" in branch or branch == "@":
        problems.append("contains '@{' or is '@'")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in branch):
        problems.append("contains a control character")
    bad = sorted({ch for ch in branch if ch in " ~^:?*[\\"})
    if bad:
        problems.append("contains " + " ".join(repr(ch) for ch in bad))
    if branch.endswith("."):
        problems.append("ends with '.'")
    if branch.startswith("/") or branch.endswith("/") or "//" in branch:
        problems.append("starts or ends with '/', or has an empty part between slashes")
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        problems.append("has a part that starts with '.' or ends with '.lock'")
    return problems


def check_branch_name(branch: str) -> None:
    """Refuse names git itself refuses, saying why."""
    if not branch or not branch.strip():
        raise UserInputError(
            "branch name is empty",
            hint="check out a branch, or name one with --branch",
        )
    problems = branch_name_problems(branch)
    if problems:
        raise UserInputError(
            f"{branch!r} is not a valid git branch name: {'; '.join(problems)}"
        )


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LEN]


def _fold(text: str) -> str:
    """Lower-case ASCII approximation: 'Café' → 'cafe'; what cannot be folded becomes '-'."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_only = decomposed.encode("ascii", "ignore").decode("ascii")
    return _BAD_RUN.sub("-", ascii_only.lower()).strip("-")


def env_name(branch: str, *, baseline_branch: str | None = None) -> str:
    """The environment name for ``branch``; the baseline branch's is always ``baseline``."""
    check_branch_name(branch)
    if baseline_branch is not None and branch == baseline_branch:
        return BASELINE_ENV
    # Names that could be mistaken for another branch's environment are altered too:
    # "baseline", "detached-…", and anything shaped like an altered name ("…-" + 6 hex).
    reserved = (
        branch == BASELINE_ENV
        or branch.startswith("detached-")
        or _ALTERED_SHAPE.search(branch) is not None
    )
    if not reserved and len(branch) <= MAX_LEN and _LABEL.fullmatch(branch):
        return branch
    suffix = _short_hash(branch)
    body = _fold(branch)[: MAX_LEN - HASH_LEN - 1].rstrip("-")
    return f"{body}-{suffix}" if body else f"b-{suffix}"


def detached_env_name(commit_sha: str) -> str:
    """A detached HEAD has no branch: its environment is named after the commit."""
    if not re.fullmatch(r"[0-9a-f]{7,64}", commit_sha):
        raise UserInputError(f"not a commit id: {commit_sha!r}")
    return f"detached-{commit_sha[:12]}"


def is_env_name(name: str) -> bool:
    return len(name) <= MAX_LEN and bool(_LABEL.fullmatch(name))
