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
