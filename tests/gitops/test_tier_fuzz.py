"""Generated tier files: reading one either works or fails with devmesh's own error, naming
the file (and the line, where the input has one); editing one never writes a file that does
not read back with the same pins for the other services."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devmesh.errors import DevmeshError
from devmesh.gitops.images import ImageRef
from devmesh.gitops.layout import Layout
from tests.gitops.tier_helpers import make_layout, sha

WHERE = "manifest repo: tiers/dev/kustomization.yaml"
REF = ImageRef("r.example/shop/api", sha("f"))

# Pieces a hostile tier file is made of: YAML syntax, the fields devmesh reads, and values
# that are valid, nearly valid, or of the wrong kind.
_KEYS = st.sampled_from(["images", "name", "newName", "digest", "newTag", "<<", "kind", "resources", "? x", "- a"])
_VALUES = st.sampled_from(
    [
        "shop/api", "shop/web", "shop/worker", "r/api", sha("a"), "sha256:xyz", f"'{sha('b')}'",
        f'"{sha("c")}"', "&a shop/api", "*a", "&b", "*b", "<<", "[]", "{}", "~", "", "5", "1e999",
        "2001-13-45", "1" * 4400, "!!binary x", "!tag v", "|", ">-", "'unterminated", "[*a, *a]",
        "{<<: *a}", "\t", "#c", "...", "---", "%YAML 1.1", "@", "`", "\u2028", "\x85", "é", "\ufeff",
    ]
)
_LINE = st.builds(
    lambda indent, dash, key, value: f"{' ' * indent}{'- ' if dash else ''}{key}: {value}",
    st.integers(0, 6), st.booleans(), _KEYS, _VALUES,
)
_DOCUMENTS = st.lists(st.one_of(_LINE, _VALUES), max_size=12).map("\n".join)


def _check(layout: Layout, error: DevmeshError) -> None:
    text = str(error)
    assert text.startswith(WHERE), text
    assert "\n" not in text, text


def _read(tmp_path: Path, raw: bytes) -> None:
    layout = make_layout(tmp_path, raw)
    try:
        pins = layout.pins("dev", "shop")
    except DevmeshError as error:
        _check(layout, error)
        return
    # A file that reads may also be edited: the result is refused or reads back the same.
    for service in ("api", "web"):
        for ref in (REF, None):
            before = layout.tier_file("dev").read_bytes()
            try:
                layout.set_pin("dev", "shop", service, ref)
            except DevmeshError as error:
                _check(layout, error)
                assert layout.tier_file("dev").read_bytes() == before
                continue
            after = layout.pins("dev", "shop")
            expected = {k: v for k, v in pins.items() if k != service}
            if ref is not None:
                expected[service] = ref
            assert after == expected
            pins = after


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_DOCUMENTS)
@example(text="a: 2001-13-45")  # a datetime ValueError escaped the reader
@example(text="a: " + "1" * 4400)  # so did int()'s digit limit
@example(text="images:\n- name: shop/api\n  digest: |\n    " + sha("a"))  # "…\n" passed the digest check
@example(text=f"images:\n- &a\n  name: shop/api\n  digest: {sha('a')}\n- <<: *a\n  name: shop/web")
@example(text=f"images:\n- name: shop/api\n  digest: &a {sha('a')}\n- name: shop/web\n  digest: *a")
@example(text="images:\n- name: shop/api\n- name: shop/api")
@example(text="images:\n- {name: shop/api, name: shop/web}")
@example(text="images: [")
@example(text="a: !!python/object:os.system x")
def test_generated_documents(tmp_path: Path, text: str) -> None:
    _read(tmp_path, text.encode("utf-8", "surrogatepass"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
@example(raw=b"images:\n- name: caf\xe9\n")
@example(raw=b"\xff\xfe" + "images: []\n".encode("utf-16-le"))
@example(raw=b"kind: x\x00\n")
def test_generated_bytes(tmp_path: Path, raw: bytes) -> None:
    _read(tmp_path, raw)


@pytest.mark.parametrize(
    "text",
    [
        "images:\n- name: shop/api\n  newName: r/api\n  digest: sha256:xyz\n",
        "kind: Kustomization\nimages: 5\n",
        "a: b\n  c: d\n",
    ],
)
def test_errors_with_a_line_say_which(tmp_path: Path, text: str) -> None:
    layout = make_layout(tmp_path, text)
    with pytest.raises(DevmeshError) as info:
        layout.pins("dev", "shop")
    assert re.match(rf"{re.escape(WHERE)}:\d+: ", str(info.value)), str(info.value)


# --- generated well-formed tier files in many styles: edits keep every other line ------------


@st.composite
def _styled_tier(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A tier file in a drawn style (line ending, indentation, quoting, flow entries,
    comments, anchors and aliases, a tag beside the digest, an end marker), and the
    services it pins."""
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    offset = draw(st.sampled_from([0, 2, 4]))
    gap = draw(st.sampled_from([1, 3]))
    dash, key = " " * offset, " " * (offset + 1 + gap)
    quote = draw(st.sampled_from(["", "'", '"']))
    services = draw(st.lists(st.sampled_from(["api", "web", "worker"]), unique=True, max_size=3))
    lines = ["kind: Kustomization", "resources:", f"{dash}-{' ' * gap}../../base/api"]
    entries: list[str] = ["images:"]
    anchored = False
    for i, service in enumerate(services):
        digest = f"{quote}{sha('abc'[i])}{quote}"
        style = draw(st.sampled_from(["block", "flow", "anchor", "alias", "tag", "no-newname"]))
        if style == "alias" and anchored:
            digest = "*d"
        elif style == "anchor" and not anchored:
            digest, anchored = f"&d {digest}", True
        if style == "flow":
            entries.append(f"{dash}-{' ' * gap}{{name: shop/{service}, newName: r/{service}, digest: {digest}}}")
            continue
        entries.append(f"{dash}-{' ' * gap}name: shop/{service}" + draw(st.sampled_from(["", "   # pinned"])))
        if style != "no-newname":
            entries.append(f"{key}newName: {quote}r/{service}{quote}")
        if style == "tag":
            entries.append(f"{key}newTag: '1.0'")
        entries.append(f"{key}digest: {digest}")
    body = lines + entries if draw(st.booleans()) else entries + lines
    if len(entries) == 1:
        body = lines
    text = nl.join(body) + nl
    if draw(st.booleans()):
        text += f"...{nl}# the end{nl}"
    if draw(st.booleans()):
        text = text[: -len(nl)]
    return text, services


def _kept_lines(before: str, after: str, skip: range) -> bool:
    """Whether every line of ``before`` outside ``skip`` (1-based) is in ``after``, in order.

    A file without a final newline stays so: the last line may move, its break with it.
    """
    nl = "\r\n" if "\r\n" in before else "\n"
    before, after = (t if t.endswith(("\r", "\n")) or not t else t + nl for t in (before, after))
    old = [line for i, line in enumerate(before.splitlines(keepends=True), 1) if i not in skip]
    new = iter(after.splitlines(keepends=True))
    return all(any(line == candidate for candidate in new) for line in old)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tier=_styled_tier(),
    service=st.sampled_from(["api", "web", "worker"]),
    remove=st.booleans(),
)
def test_edits_of_styled_files_keep_every_other_line(tmp_path: Path, tier: tuple[str, list[str]], service: str, remove: bool) -> None:
    text, _ = tier
    layout = make_layout(tmp_path, text)
    pins = layout.pins("dev", "shop")
    ref = None if remove else ImageRef(f"r2/{service}", sha("e"))
    doc = layout.read_tier("dev")
    entry = doc.entry(f"shop/{service}")
    skip = range(0)
    if entry is not None:
        end_line = text.count("\n", 0, entry.node.end) + 1
        skip = range(entry.item.line, end_line + 1)
    try:
        layout.set_pin("dev", "shop", service, ref)
    except DevmeshError as error:
        _check(layout, error)
        assert layout.tier_file("dev").read_bytes() == text.encode()
        return
    after = layout.tier_file("dev").read_bytes().decode()
    expected = {k: v for k, v in pins.items() if k != service}
    if ref is not None:
        expected[service] = ref
    assert layout.pins("dev", "shop") == expected
    if ref is None and entry is not None and len(doc.entries) == 1:
        skip = range(doc.images_key.line if doc.images_key else skip.start, skip.stop)
    assert _kept_lines(text, after, skip), (text, after)
    assert ("\r\n" in text) == ("\r\n" in after) or not after.strip()
