"""The message of a landed manifest change, as the CLI and the TUI print it."""

from __future__ import annotations

from devmesh.gitops.land import Landed
from devmesh.gitops.landed import landed_message

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_a_push_names_the_short_commit_and_the_branch() -> None:
    landed = Landed(SHA, "main", attempts=1)
    assert landed_message(landed, "promoted api to prod") == "promoted api to prod: commit 0123456789 pushed to main"


def test_push_races_are_counted_unless_asked_not_to() -> None:
    landed = Landed(SHA, "main", attempts=3)
    assert landed_message(landed, "done") == "done: commit 0123456789 pushed to main after 2 push race(s)"
    assert landed_message(landed, "done", races=False) == "done: commit 0123456789 pushed to main"


def test_a_proposal_names_its_branch_and_the_pull_request_page() -> None:
    landed = Landed(SHA, "devmesh/promote-api", attempts=2, proposed=True,
                    compare_url="https://example.com/o/r/compare/main...devmesh/promote-api?expand=1")
    expected = ("proposed done on branch devmesh/promote-api (commit 0123456789)\n"
                "open a pull request: https://example.com/o/r/compare/main...devmesh/promote-api?expand=1")
    assert landed_message(landed, "done") == expected
    assert landed_message(landed, "done", joiner="; ") == expected.replace("\n", "; ")


def test_a_proposal_to_a_local_repo_has_no_page() -> None:
    landed = Landed(SHA, "devmesh/promote-api", attempts=1, proposed=True)
    assert landed_message(landed, "done") == "proposed done on branch devmesh/promote-api (commit 0123456789)"
