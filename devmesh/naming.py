"""Branch name → environment name.

An environment name is a DNS-1123 label of at most 40 characters, the same on every run.
Whenever the branch name had to be changed to fit (case, '/', unicode, length), a short hash
of the original name is appended, so ``feature/Foo``, ``feature-foo`` and ``FEATURE/foo``
never share an environment.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from devmesh.errors import UserInputError

MAX_LEN = 40
HASH_LEN = 6
BASELINE_ENV = "baseline"

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_BAD_RUN = re.compile(r"[^a-z0-9]+")


def check_branch_name(branch: str) -> None:
    """Refuse names git itself refuses (the rules of ``git check-ref-format --branch``)."""
    if not branch or not branch.strip():
        raise UserInputError("branch name is empty")
    problems = []
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
    if branch.endswith(".") or branch.endswith("/") or branch.startswith("/") or "//" in branch:
        problems.append("starts or ends with '/' or ends with '.', or has an empty part")
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        problems.append("has a part that starts with '.' or ends with '.lock'")
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
    reserved = branch == BASELINE_ENV or branch.startswith("detached-")
    if not reserved and len(branch) <= MAX_LEN and _LABEL.match(branch):
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
    return len(name) <= MAX_LEN and bool(_LABEL.match(name))
