"""``devmesh manifests init`` adding a new service to hand-written tier files.

The only bytes that change in a tier file are the added ``resources:`` entries (or the
``resources:`` key with them): line endings, offsets, comments, a ``...`` end marker, a
missing final newline and the pins stay exactly as they were. What cannot be added that way
is refused naming the file and line, and nothing is pushed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.gitops.gitops_helpers import SERVICES, git, log_subjects, write_project

PIN = "sha256:" + "a" * 64
WEB = "sha256:" + "b" * 64


def _show(remote: Path, path: str) -> bytes:
    """A file at the remote's tip, as bytes (no newline translation)."""
    done = subprocess.run(["git", "show", f"main:{path}"], cwd=remote, capture_output=True, check=True)
    return done.stdout


def _hand_edit(remote: Path, tmp_path: Path, tiers: dict[str, bytes]) -> None:
    """Commit and push tier files written by hand, as a person editing the repo would."""
    work = tmp_path / "human"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    for tier, raw in tiers.items():
        (work / "tiers" / tier / "kustomization.yaml").write_bytes(raw)
    git(work, "commit", "--quiet", "-am", "hand edit")
    git(work, "push", "--quiet", "origin", "main")


def _traffic_too(added: bytes, *services: str) -> bytes:
    """The entries init adds for new services: their bases, then their traffic files, alike."""
    traffic = added
    for service in services:
        traffic = traffic.replace(f"../../base/{service}".encode(), f"traffic/{service}.yaml".encode())
    return added + traffic


def _init_with(devmesh: Any, tmp_path: Path, remote: Path, *new: str) -> Any:
    """Add services ``new`` to the project and run ``devmesh manifests init``."""
    write_project(tmp_path / "shop", str(remote), SERVICES + new)
    return devmesh(tmp_path / "shop", "manifests", "init")


CASES = {
    "crlf": (
        b"apiVersion: kustomize.config.k8s.io/v1beta1\r\nkind: Kustomization\r\n"
        b"resources:\r\n  - ../../base/api\r\n  - ../../base/web  # the shop front\r\n"
        b"images:\r\n  - name: shop/api\r\n    newName: r.example/shop/api\r\n    digest: " + PIN.encode() + b"\r\n",
        b"  - ../../base/web  # the shop front\r\n",
        b"  - ../../base/cart\r\n",
    ),
    "four-space-offset": (
        b"kind: Kustomization\n"
        b"resources:\n    -   ../../base/api\n    -   ../../base/web\n"
        b"images:\n    -   name: shop/api\n        newName: r.example/shop/api\n        digest: " + PIN.encode() + b"\n",
        b"    -   ../../base/web\n",
        b"    -   ../../base/cart\n",
    ),
    "document-end-marker": (
        b"kind: Kustomization\nresources:\n- ../../base/api\n- ../../base/web\n...\n# the end of the tier\n",
        b"- ../../base/web\n",
        b"- ../../base/cart\n",
    ),
    "no-final-newline": (
        b"kind: Kustomization\nimages:\n  - name: shop/api\n    newName: r.example/shop/api\n    digest: "
        + PIN.encode() + b"\nresources:\n  - ../../base/api\n  - ../../base/web",
        b"  - ../../base/web",
        b"\n  - ../../base/cart",
    ),
    "flow-list": (
        b"kind: Kustomization\nresources: [ ../../base/api , '../../base/web' ]   # every base\n",
        b"'../../base/web'",
        b", '../../base/cart'",
    ),
    "flow-list-over-lines": (
        b"kind: Kustomization\nresources: [\n    ../../base/api,\n    ../../base/web,  # the front\n]\n",
        b"    ../../base/web,  # the front\n",
        b"    ../../base/cart,\n",
    ),
    "quoted-block-items": (
        b"kind: Kustomization\nresources:\n  - \"../../base/api\"\n  - \"../../base/web\"\n# more by hand\n",
        b"  - \"../../base/web\"\n",
        b"  - \"../../base/cart\"\n",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_init_adds_the_new_service_to_a_hand_written_tier_and_changes_no_other_byte(
    case: str, laid_out: Any, remote: Path, tmp_path: Path, devmesh: Any
) -> None:
    before, after_line, added = CASES[case]
    assert before.count(after_line) == 1
    generated = _show(remote, "tiers/beta/kustomization.yaml")
    _hand_edit(remote, tmp_path, {"dev": before})
    result = _init_with(devmesh, tmp_path, remote, "cart")
    assert result.code == 0, result.err
    cut = before.index(after_line) + len(after_line)
    assert _show(remote, "tiers/dev/kustomization.yaml") == before[:cut] + _traffic_too(added, "cart") + before[cut:]
    last = b"  - traffic/worker.yaml\n"
    assert _show(remote, "tiers/beta/kustomization.yaml") == generated.replace(
        last, last + b"  - ../../base/cart\n  - traffic/cart.yaml\n")


@pytest.mark.parametrize(
    ("before", "added"),
    [
        (  # the new key goes after the last one, in the offset the file's lists use
            b"kind: Kustomization\r\nimages:\r\n    - name: shop/api\r\n      newName: r.example/shop/api\r\n"
            b"      digest: " + PIN.encode() + b"  # pinned\r\n...\r\n# end\r\n",
            b"resources:\r\n    - ../../base/cart\r\n    - ../../base/queue\r\n"
            b"    - traffic/cart.yaml\r\n    - traffic/queue.yaml\r\n",
        ),
        (  # an empty value is filled in below its key
            b"kind: Kustomization\r\nresources: ~  # none yet\r\nimages:\r\n- name: shop/api\r\n  digest: " + PIN.encode() + b"\r\n",
            None,
        ),
        (  # an empty flow list is filled in place
            b"kind: Kustomization\nresources: []  # none yet\n",
            None,
        ),
    ],
    ids=["no-resources-key", "empty-value", "empty-flow-list"],
)
def test_init_adds_resources_to_a_tier_that_lists_none(
    before: bytes, added: bytes | None, laid_out: Any, remote: Path, tmp_path: Path, devmesh: Any
) -> None:
    _hand_edit(remote, tmp_path, {"dev": before})
    result = _init_with(devmesh, tmp_path, remote, "cart", "queue")
    assert result.code == 0, result.err
    after = _show(remote, "tiers/dev/kustomization.yaml")
    if b"resources: ~" in before:
        expected = before.replace(
            b"resources: ~  # none yet\r\n", b"resources:   # none yet\r\n- ../../base/cart\r\n- ../../base/queue\r\n"
            b"- traffic/cart.yaml\r\n- traffic/queue.yaml\r\n"
        )
    elif b"[]" in before:
        expected = before.replace(b"[]", b"[../../base/cart, ../../base/queue, traffic/cart.yaml, traffic/queue.yaml]")
    else:
        assert added is not None
        expected = before.replace(b"...\r\n", added + b"...\r\n")
    assert after == expected


def test_init_skips_a_resource_the_tier_already_lists(
    laid_out: Any, remote: Path, tmp_path: Path, devmesh: Any
) -> None:
    before = b"kind: Kustomization\r\nresources:\r\n  - ../../base/api\r\n  - ../../base/cart/  # by hand\r\n"
    _hand_edit(remote, tmp_path, {"dev": before})
    result = _init_with(devmesh, tmp_path, remote, "cart")
    assert result.code == 0, result.err
    assert _show(remote, "tiers/dev/kustomization.yaml") == before + b"  - traffic/cart.yaml\r\n"  # only what it lacked
    assert b"../../base/cart" in _show(remote, "tiers/prod/kustomization.yaml")


@pytest.mark.parametrize(
    ("before", "line", "problem"),
    [
        (b"kind: Kustomization\nresources: ../../base/api\n", 2, "resources: expected a list"),
        (b"kind: Kustomization\nresources:\n  api: ../../base/api\n", 3, "resources: expected a list"),
        (b"{kind: Kustomization}\n", 1, "flow mapping"),
        (
            b"kind: Kustomization\nbases: &all\n- ../../base/api\nresources: *all\n",
            4,
            "alias",
        ),
        (
            b"kind: Kustomization\nresources: &all\n- ../../base/api\ncomponents: *all\n",
            2,
            "anchor &all",
        ),
        (b"kind: Kustomization\nresources:\n  ~\n", 2, "not on one line"),
        (b"resources: [../../base/api,\n  ../../base/web]\nimages:\n- name: shop/api\n- name: shop/api\n", 5, "twice"),
    ],
    ids=["string", "mapping", "flow-root", "alias", "shared-anchor", "value-below-key", "bad-file"],
)
def test_init_refuses_a_tier_it_cannot_extend_without_reformatting_and_pushes_nothing(
    before: bytes, line: int, problem: str, laid_out: Any, remote: Path, tmp_path: Path, devmesh: Any
) -> None:
    _hand_edit(remote, tmp_path, {"dev": before})
    subjects = log_subjects(remote)
    result = _init_with(devmesh, tmp_path, remote, "cart")
    assert result.code == 2, (result.out, result.err)
    first = result.err.strip().splitlines()[0]
    assert f"tiers/dev/kustomization.yaml:{line}: " in first and problem in first, first
    assert log_subjects(remote) == subjects
    assert _show(remote, "tiers/dev/kustomization.yaml") == before
