"""Hostile tier files: anchors, merge keys, duplicates, line endings, styles, bad values.

Each edit either changes exactly the bytes it was asked to change, or is refused with the
file and line, leaving the file (and the remote) as it was.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from devmesh.errors import UserInputError
from devmesh.gitops.images import ImageRef
from devmesh.gitops.promote import PromotionRequest, promote
from tests.gitops.gitops_helpers import git, log_subjects
from tests.gitops.tier_helpers import make_layout, sha, tier_bytes

WHERE = "tiers/dev/kustomization.yaml"


def _ref(char: str, name: str = "r.example/shop/api") -> ImageRef:
    return ImageRef(name, sha(char))


def _push_tier(remote: Path, tmp_path: Path, text: str, tier: str = "dev") -> None:
    """Commit ``text`` as the tier file by hand, as a person editing the repo would."""
    work = tmp_path / "human"
    if not work.exists():
        git(tmp_path, "clone", "--quiet", str(remote), str(work))
    git(work, "pull", "--quiet")
    (work / "tiers" / tier / "kustomization.yaml").write_bytes(text.encode())
    git(work, "commit", "--quiet", "-am", "hand edit")
    git(work, "push", "--quiet", "origin", "main")


# --- 1. anchors, aliases and merge keys ------------------------------------------------------

ANCHORED_DIGEST = (
    "kind: Kustomization\n"
    "images:\n"
    "  - name: shop/api\n"
    "    newName: r.example/shop/api\n"
    f"    digest: &d {sha('a')}\n"
    "  - name: shop/web\n"
    "    newName: r.example/shop/web\n"
    "    digest: *d\n"
)


def test_promoting_the_entry_whose_digest_others_alias_is_refused_and_nothing_is_pushed(
    checkout: Any, remote: Path, tmp_path: Path
) -> None:
    _push_tier(remote, tmp_path, ANCHORED_DIGEST)
    before = log_subjects(remote)
    with checkout() as co, pytest.raises(UserInputError, match=rf"{WHERE}:5: .*anchor &d.*line 8"):
        promote(co, PromotionRequest("api", "dev", _ref("b")))
    assert log_subjects(remote) == before
    with checkout() as co:  # every command still works
        assert co.layout().pin("dev", "shop", "web") == _ref("a", "r.example/shop/web")


def test_promoting_the_entry_that_uses_an_alias_replaces_the_alias_only(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, ANCHORED_DIGEST)
    layout.set_pin("dev", "shop", "web", _ref("b", "r.example/shop/web"))
    assert tier_bytes(layout).decode() == ANCHORED_DIGEST.replace("digest: *d", f"digest: {sha('b')}")
    assert layout.pin("dev", "shop", "api") == _ref("a")


MERGED = (
    "images:\n"
    "  - &api\n"
    "    name: shop/api\n"
    "    newName: r.example/shop/api\n"
    f"    digest: {sha('a')}\n"
    "  - <<: *api\n"
    "    name: shop/web\n"
)


def test_a_merge_key_entry_is_read_with_the_merged_fields(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, MERGED)
    assert layout.pin("dev", "shop", "web") == _ref("a")


def test_promoting_an_entry_merged_into_another_is_refused(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, MERGED)
    with pytest.raises(UserInputError, match=rf"{WHERE}:2: .*shop/api.*line 6"):
        layout.set_pin("dev", "shop", "api", _ref("b"))
    assert tier_bytes(layout).decode() == MERGED
    assert layout.pin("dev", "shop", "web") == _ref("a")


def test_promoting_an_entry_with_a_merge_key_is_refused(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, MERGED)
    with pytest.raises(UserInputError, match=rf"{WHERE}:6: .*merge key"):
        layout.set_pin("dev", "shop", "web", _ref("b"))
    assert tier_bytes(layout).decode() == MERGED


def test_an_anchor_the_edit_does_not_touch_keeps_working(tmp_path: Path) -> None:
    text = (
        "images:\n"
        "  - name: shop/web\n"
        "    newName: &registry r.example/shop/shared\n"
        f"    digest: &d {sha('c')}\n"
        "  - name: shop/worker\n"
        "    newName: *registry\n"
        "    digest: *d\n"
        "  - name: shop/api\n"
        "    newName: old.example/shop/api\n"
        f"    digest: {sha('d')}\n"
    )
    layout = make_layout(tmp_path, text)
    layout.set_pin("dev", "shop", "api", _ref("b"))
    assert tier_bytes(layout).decode() == text.replace("old.example", "r.example").replace("d" * 64, "b" * 64)
    layout.set_pin("dev", "shop", "api", None)
    assert tier_bytes(layout).decode() == text.split("  - name: shop/api\n")[0]
    layout.set_pin("dev", "shop", "api", _ref("e"))
    assert layout.pins("dev", "shop") == {
        "web": _ref("c", "r.example/shop/shared"),
        "worker": _ref("c", "r.example/shop/shared"),
        "api": _ref("e"),
    }


def test_removing_an_entry_that_holds_an_anchor_used_elsewhere_is_refused(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, ANCHORED_DIGEST)
    with pytest.raises(UserInputError, match=rf"{WHERE}:5: .*&d.*line 8"):
        layout.set_pin("dev", "shop", "api", None)
    assert tier_bytes(layout).decode() == ANCHORED_DIGEST


def test_the_written_file_is_verified_before_anything_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the editor produced, a result that re-pins another service is refused."""
    from devmesh.gitops import tierfile

    text = (
        "images:\n"
        f"  - name: shop/web\n    newName: r/web\n    digest: {sha('c')}\n"
        f"  - name: shop/api\n    newName: r/api\n    digest: {sha('d')}\n"
    )
    layout = make_layout(tmp_path, text)
    real = tierfile.edit_pin

    def sloppy(doc: Any, name: str, ref: ImageRef | None) -> str:
        return real(doc, name, ref).replace("c" * 64, "e" * 64)

    monkeypatch.setattr(tierfile, "edit_pin", sloppy)
    with pytest.raises(UserInputError, match=rf"{WHERE}: .*shop/web"):
        layout.set_pin("dev", "shop", "api", _ref("b"))
    assert tier_bytes(layout).decode() == text

    monkeypatch.setattr(tierfile, "edit_pin", lambda doc, name, ref: real(doc, name, ref) + "images: [\n")
    with pytest.raises(UserInputError, match=rf"{WHERE}:\d+: .*would not be valid"):
        layout.set_pin("dev", "shop", "api", _ref("b"))
    assert tier_bytes(layout).decode() == text


# --- 2. one service listed twice ------------------------------------------------------------

TWICE = (
    "images:\n"
    f"  - name: shop/api\n    newName: r/api\n    digest: {sha('a')}\n"
    f"  - name: shop/api\n    newName: r/api\n    digest: {sha('b')}\n"
)


def test_a_service_listed_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, TWICE)
    with pytest.raises(UserInputError, match=rf"{WHERE}:5: .*shop/api.*twice.*line 2"):
        layout.pins("dev", "shop")
    with pytest.raises(UserInputError, match=rf"{WHERE}:5: "):
        layout.set_pin("dev", "shop", "api", _ref("c", "r/api"))
    assert tier_bytes(layout).decode() == TWICE


def test_promoting_up_from_a_tier_listing_a_service_twice_is_refused(checkout: Any, remote: Path, tmp_path: Path) -> None:
    _push_tier(remote, tmp_path, TWICE)
    before = log_subjects(remote)
    with checkout() as co, pytest.raises(UserInputError, match=rf"{WHERE}:5: "):
        promote(co, PromotionRequest("api", "beta"))
    assert log_subjects(remote) == before


# --- 3. every byte not asked to change is kept -----------------------------------------------


def test_crlf_files_keep_their_line_endings(tmp_path: Path) -> None:
    head = (
        "apiVersion: kustomize.config.k8s.io/v1beta1\r\nkind: Kustomization\r\n"
        "resources:\r\n  - ../../base/api\r\n"
    )
    web = f"  - name: shop/web  # by hand\r\n    newName: r/web\r\n    digest: {sha('c')}\r\n"
    layout = make_layout(tmp_path, head + "images:\r\n" + web)
    layout.set_pin("dev", "shop", "api", _ref("a", "r/api"))
    api = f"  - name: shop/api\r\n    newName: r/api\r\n    digest: {sha('a')}\r\n"
    assert tier_bytes(layout) == (head + "images:\r\n" + web + api).encode()
    layout.set_pin("dev", "shop", "api", _ref("b", "r/api"))
    assert tier_bytes(layout) == (head + "images:\r\n" + web + api.replace("a" * 64, "b" * 64)).encode()
    layout.set_pin("dev", "shop", "web", None)
    assert tier_bytes(layout) == (head + "images:\r\n" + api.replace("a" * 64, "b" * 64)).encode()
    layout.set_pin("dev", "shop", "api", None)
    assert tier_bytes(layout) == head.encode()


FOUR = (
    "images:\n"
    "    -   name: shop/web\n"
    "        newName: r/web     # aligned on purpose\n"
    f"        digest: {sha('c')}\n"
    "    -   name: shop/worker\n"
    "        newName: r/worker\n"
    f"        digest: {sha('d')}\n"
    "resources:\n"
    "    -   ../../base/api\n"
)


def test_a_four_space_offset_style_is_kept_for_added_and_untouched_entries(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, FOUR)
    layout.set_pin("dev", "shop", "api", _ref("a", "r/api"))
    added = f"    -   name: shop/api\n        newName: r/api\n        digest: {sha('a')}\n"
    cut = FOUR.index("resources:")
    assert tier_bytes(layout).decode() == FOUR[:cut] + added + FOUR[cut:]
    layout.set_pin("dev", "shop", "web", None)
    web = FOUR[len("images:\n"): FOUR.index("    -   name: shop/worker")]
    assert tier_bytes(layout).decode() == (FOUR[:cut] + added + FOUR[cut:]).replace(web, "")


DOC_END = (
    "kind: Kustomization\n"
    "resources:\n"
    "- ../../base/api\n"
    "...\n"
    "# the end of the tier\n"
)


def test_a_document_end_marker_and_the_comment_after_it_are_kept(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, DOC_END)
    layout.set_pin("dev", "shop", "api", _ref("a", "r/api"))
    added = f"images:\n- name: shop/api\n  newName: r/api\n  digest: {sha('a')}\n"
    assert tier_bytes(layout).decode() == DOC_END.replace("...\n", added + "...\n")
    layout.set_pin("dev", "shop", "api", None)
    assert tier_bytes(layout).decode() == DOC_END


def test_a_file_without_a_final_newline_stays_without_one(tmp_path: Path) -> None:
    text = f"images:\n- name: shop/web\n  newName: r/web\n  digest: {sha('c')}"
    layout = make_layout(tmp_path, text)
    layout.set_pin("dev", "shop", "api", _ref("a", "r/api"))
    assert tier_bytes(layout).decode() == text + f"\n- name: shop/api\n  newName: r/api\n  digest: {sha('a')}"
    layout.set_pin("dev", "shop", "api", None)
    assert tier_bytes(layout).decode() == text


def test_flow_style_entries_are_re_pinned_in_place_and_a_missing_field_is_added(tmp_path: Path) -> None:
    text = (
        "images:   # pins\n"
        f"  - {{name: shop/web, newName: 'r/web', digest: \"{sha('1')}\"}}  # flow\n"
        f"  - name: shop/api\n    digest: {sha('2')}   # no newName yet\n"
        "  - name: shop/worker\n    newTag: '1.0'   # a tag: dropped for the digest\n"
        "# über-comment\n"
    )
    layout = make_layout(tmp_path, text)
    layout.set_pin("dev", "shop", "web", _ref("a", "r2/web"))
    layout.set_pin("dev", "shop", "api", _ref("b", "r2/api"))
    layout.set_pin("dev", "shop", "worker", _ref("c", "r2/worker"))
    assert tier_bytes(layout).decode() == (
        "images:   # pins\n"
        f"  - {{name: shop/web, newName: 'r2/web', digest: \"{sha('a')}\"}}  # flow\n"
        f"  - name: shop/api\n    digest: {sha('b')}   # no newName yet\n    newName: r2/api\n"
        f"  - name: shop/worker\n    newName: r2/worker\n    digest: {sha('c')}\n"
        "# über-comment\n"
    )


def test_an_edit_that_cannot_keep_the_style_is_refused_not_reformatted(tmp_path: Path) -> None:
    text = f"images: [{{name: shop/web, newName: r/web, digest: '{sha('1')}'}}]\nkind: Kustomization\n"
    layout = make_layout(tmp_path, text)
    with pytest.raises(UserInputError, match=rf"{WHERE}:1: .*flow"):
        layout.set_pin("dev", "shop", "api", _ref("a", "r/api"))
    assert tier_bytes(layout).decode() == text
    layout.set_pin("dev", "shop", "web", _ref("b", "r/web"))  # a re-pin is still a splice
    assert tier_bytes(layout).decode() == text.replace("1" * 64, "b" * 64)


# --- 4. reading errors name the file and the line --------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("images:\n- name: shop/api\n  newName: r/api\n  digest: sha256:xyz\n", 4, "not an image digest"),
        (f"images:\n- name: shop/api\n  newName: r/api\n  digest: |\n    {sha('a')}\n", 4, "not an image digest"),
        (f"images:\n- name: shop/api\n  newName: UPPER/api\n  digest: {sha('a')}\n", 3, "not a valid image name"),
        ("kind: Kustomization\nimages: 5\n", 2, "images: expected a list"),
        ("kind: Kustomization\nimages:\n- just-a-string\n", 3, "expected a mapping"),
        ("images:\n- newName: r/api\n", 2, "no name"),
        ("images:\n- name: shop/api\n  name: shop/web\n", 3, "twice"),
        ("kind: Kustomization\nresources: [\n", 3, "invalid YAML"),
        ("kind: Kustomization\n---\nkind: Kustomization\n", 2, "more than one YAML document"),
        ("a: *nowhere\n", 1, "undefined alias"),
        ("a: &x 1\nb: &x 2\n", 2, "anchor &x"),
        ("a: 2001-13-45\n", 1, "month must be in 1..12"),
        ("a: " + "1" * 5000 + "\n", 1, "integer"),
        ("a: !custom x\n", 1, "tag"),
        ("kind: Kustomization\n\x00\n", 2, "invalid YAML"),
        ("- 1\n", 1, "expected a Kustomization mapping"),
    ],
)
def test_reading_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, problem: str) -> None:
    layout = make_layout(tmp_path, text)
    with pytest.raises(UserInputError) as info:
        layout.pins("dev", "shop")
    assert str(info.value).startswith(f"manifest repo: {WHERE}:{line}: "), str(info.value)
    assert problem in str(info.value)


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, b"kind: Kustomization\nimages:\n- name: caf\xe9\n")
    with pytest.raises(UserInputError, match=rf"{WHERE}:3: not UTF-8"):
        layout.pins("dev", "shop")


# --- 6 (part). bombs are refused quickly ---------------------------------------------------


def _laughs(levels: int, width: int) -> str:
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (_laughs(10, 10), "aliases expand"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
        ("a: " + "{x: " * 3000 + "1" + "}" * 3000 + "\n", "nested"),
        (
            "m0: &m0 {k: v}\n"
            + "".join(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}, *m{i - 1}, *m{i - 1}]}}\n" for i in range(1, 40)),
            "aliases expand",
        ),
        ("x: &x [" + ", ".join(["1"] * 10) + "]\n" + "".join(f"y{i}: &y{i} [*{'x' if i == 0 else f'y{i - 1}'}]\n" for i in range(200)), "nested"),
    ],
    ids=["billion-laughs", "deep-flow-sequence", "deep-flow-mapping", "merge-bomb", "deep-alias-chain"],
)
def test_alias_bombs_and_deep_nesting_are_refused_quickly(tmp_path: Path, text: str, problem: str) -> None:
    layout = make_layout(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(UserInputError, match=rf"{WHERE}:\d+: .*{problem}"):
        layout.pins("dev", "shop")
    assert time.monotonic() - started < 5


def test_a_huge_file_is_refused_without_being_parsed(tmp_path: Path) -> None:
    layout = make_layout(tmp_path, "kind: Kustomization\n" + "# padding\n" * 300_000)
    with pytest.raises(UserInputError, match=rf"{WHERE}: .*larger than"):
        layout.pins("dev", "shop")
