"""What a landed manifest change says to the person who made it.

Apart from devmesh.gitops.land so that front ends can import it without Git.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devmesh.gitops.land import Landed


def landed_message(landed: Landed, what: str, *, joiner: str = "\n", races: bool = True) -> str:
    """``what`` happened, and where it landed: the commit pushed to the manifest branch, or
    the proposal branch with the page that opens its pull request.

    ``joiner`` goes before the pull-request page (a new line on a terminal, ``"; "`` where
    the message must stay on one line); ``races`` says how many push races were retried.
    """
    commit = (landed.commit or "")[:10]
    if landed.proposed:
        text = f"proposed {what} on branch {landed.branch} (commit {commit})"
        return text + (f"{joiner}open a pull request: {landed.compare_url}" if landed.compare_url else "")
    retries = f" after {landed.attempts - 1} push race(s)" if races and landed.attempts > 1 else ""
    return f"{what}: commit {commit} pushed to {landed.branch}{retries}"
