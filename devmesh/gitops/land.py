"""Land one change on the manifest branch: commit, push, and on a push race start again.

When the remote moved under us, the change is not merged or rebased: the clone is reset to
the new tip and the change is computed again from scratch, so every rule is checked against
what the branch holds now. History stays linear; a change lands once or not at all.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from devmesh.errors import DevmeshError, UserInputError
from devmesh.gitops.cache import Checkout
from devmesh.gitops.remote import first_line, remote_error, remote_messages
from devmesh.gitops.settings import is_local_repo

DEFAULT_ATTEMPTS = 12


@dataclass(frozen=True)
class Change:
    """A commit to make: files (relative to the work tree) and the message."""

    message: str
    paths: list[str]
    proposal_branch: str  # the branch used in pull-request mode


@dataclass(frozen=True)
class Unchanged:
    """Nothing to commit, and why."""

    reason: str


@dataclass(frozen=True)
class Landed:
    commit: str | None  # None when nothing changed
    branch: str  # where it was pushed (the manifest branch, or the proposal branch)
    attempts: int
    unchanged: str | None = None
    proposed: bool = False  # pushed to a new branch for review (pull-request mode)
    compare_url: str | None = None


Apply = Callable[[Checkout], Change | Unchanged]


def compare_url(url: str, base: str, branch: str) -> str | None:
    """The web page that opens a pull request from ``branch`` into ``base``, if there is one."""
    if is_local_repo(url):
        return None
    match = re.match(r"^(?:https?://(?:[^@/]+@)?|ssh://(?:[^@/]+@)?|[^@/]+@)([^/:]+)(?::\d+)?[:/](.+?)(?:\.git)?/?$", url)
    if not match:
        return None
    host, path = match.groups()
    return f"https://{host}/{path}/compare/{base}...{branch}?expand=1"


def _remote_tip(checkout: Checkout, ref: str) -> str | None:
    """The commit ``ref`` points at in the remote now (None: no such ref)."""
    out = checkout.remote_git("ls-remote", "origin", ref)
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        if name.strip() == ref:
            return sha.strip()
    return None


def _refusal(checkout: Checkout, stdout: str, stderr: str) -> DevmeshError:
    """The push was refused (a hook, a protection rule): say so in the remote's own words."""
    rejected = [line for line in stdout.splitlines() if line.startswith("!")]
    reason = rejected[0].split("\t")[-1].strip() if rejected else first_line(stderr)
    said = [m for m in remote_messages(stderr) if not m.startswith("error: hook declined")]
    text = f"manifest repo {checkout.settings.url} refused the push: {reason}"
    if said:
        text += ": " + " / ".join(said)
    return DevmeshError(text, hint="nothing was pushed; the repository's hooks or branch protection decide this")


def _push(checkout: Checkout, ref: str, base: str | None) -> tuple[bool, str]:
    """Push HEAD to ``ref``; (True, "") when it landed, (False, why) when the remote moved.

    Whether a rejection is a race is read from the remote itself, never from the wording of
    the rejection (a hook may say anything): when ``ref`` no longer points at ``base``, the
    commit we built on, someone else pushed first; otherwise the remote refused the change.
    """
    done = checkout.run_remote("push", "--porcelain", "--quiet", "origin", f"HEAD:{ref}")
    if done.status == 0:
        return True, ""
    if not any(line.startswith("!") for line in done.stdout.splitlines()):
        raise remote_error(checkout.settings.url, done.stderr)  # never reached the ref update
    now = _remote_tip(checkout, ref)
    if now != base:
        return False, f"{ref.removeprefix('refs/heads/')} is at {now[:10] if now else 'nothing'} now"
    raise _refusal(checkout, done.stdout, done.stderr)


def _propose(checkout: Checkout, change: Change, attempt: int) -> Landed:
    """Pull-request mode: the change goes to a new branch; the manifest branch is untouched."""
    settings = checkout.settings
    target = change.proposal_branch
    url = compare_url(settings.url, settings.branch, target)
    if checkout.remote_git("ls-remote", "--heads", "origin", f"refs/heads/{target}").strip():
        checkout.reset_to_remote()
        return Landed(None, target, attempt, unchanged=f"already proposed on branch {target}", compare_url=url)
    commit = checkout.commit(change.message, change.paths)
    if commit is None:
        checkout.reset_to_remote()
        return Landed(None, settings.branch, attempt, unchanged="the files did not change")
    pushed, _ = _push(checkout, f"refs/heads/{target}", None)
    checkout.reset_to_remote()
    if not pushed:
        raise UserInputError(f"branch {target!r} appeared in manifest repo {settings.url} meanwhile: already proposed")
    return Landed(commit, target, attempt, proposed=True, compare_url=url)


def land(
    checkout: Checkout,
    apply: Apply,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> Landed:
    """Apply, commit and push; on a push race, fetch and apply again on the new tip.

    Whatever fails (a refusal, git, the network), the clone is reset to the remote tip.
    """
    try:
        return _land(checkout, apply, attempts, sleep)
    except BaseException:
        try:
            checkout.reset_to_remote()
        except DevmeshError:
            pass  # report the original failure
        raise


def _land(checkout: Checkout, apply: Apply, attempts: int, sleep: Callable[[float], None]) -> Landed:
    settings = checkout.settings
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            checkout.reset_to_remote()  # drop our unpushed commit quietly: it is not a stray one
            checkout.sync()
        outcome = apply(checkout)
        if isinstance(outcome, Unchanged):
            return Landed(None, settings.branch, attempt, unchanged=outcome.reason)
        if settings.mode == "pull-request":
            return _propose(checkout, outcome, attempt)
        commit = checkout.commit(outcome.message, outcome.paths)
        if commit is None:
            return Landed(None, settings.branch, attempt, unchanged="the files did not change")
        pushed, why = _push(checkout, f"refs/heads/{settings.branch}", checkout.tip)
        if pushed:
            checkout.tip = commit
            return Landed(commit, settings.branch, attempt)
        checkout.notify(f"the manifest repo moved while pushing ({why}); trying again on the new tip")
        sleep(random.uniform(0.0, 0.05 * attempt))
    raise DevmeshError(
        f"gave up after {attempts} attempts: manifest repo {settings.url} kept moving under "
        f"each push; nothing was pushed, try again"
    )

