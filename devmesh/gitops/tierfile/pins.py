"""The ``images:`` pins of a tier file: an entry repinned to a digest, added or removed as a text
splice, and the edited text checked to change that one pin and nothing else.
"""

from __future__ import annotations

from devmesh.errors import UserInputError
from devmesh.gitops.images import ImageRef
from devmesh.gitops.tierfile.document import Entry, TierFile, find_pair, parse_tier
from devmesh.gitops.tierfile.editor import (
    REST_OF_LINE,
    Editor,
    add_key,
    after_line,
    column_of,
    fill_empty,
    line_start,
    quoted,
)
from devmesh.gitops.yamltree import MERGE, Node


def _entry_lines(name: str, ref: ImageRef, dash: int, key: int) -> list[str]:
    gap = " " * max(1, key - dash - 1)
    return [
        f"{' ' * dash}-{gap}name: {quoted(name)}",
        f"{' ' * key}newName: {quoted(ref.name)}",
        f"{' ' * key}digest: {quoted(ref.digest)}",
    ]


def _item_columns(ed: Editor, seq: Node) -> tuple[int, int]:
    """(dash column, key column) the sequence's block-mapping items use."""
    for item in seq.children:
        if item.kind == "map" and not item.flow and item.children:
            dash = ed.text.rfind("-", 0, item.start)
            first_key = item.children[0]
            if dash >= 0 and line_start(ed.text, dash) == line_start(ed.text, first_key.start):
                return column_of(ed.text, dash), column_of(ed.text, first_key.start)
    dash = column_of(ed.text, ed.text.rfind("-", 0, seq.children[-1].start))
    return dash, dash + 2


def _repin(ed: Editor, entry: Entry, ref: ImageRef) -> None:
    doc, node = ed.doc, entry.node
    what = f"the images: entry for {entry.name}"
    if entry.item.kind == "alias":
        raise ed.fail(entry.item.line, f"{what} is an alias (*{node.anchor}) of line {node.line}; write it out to let devmesh edit it")
    ed.not_shared(node, what)
    if doc.images is not None:
        ed.not_shared(doc.images, "images:")
    merge = next((k for k, _ in node.pairs if k.resolved.tag == MERGE), None)
    if merge is not None:
        raise ed.fail(merge.line, f"{what} uses a merge key (<<); write its fields out to let devmesh edit it")
    missing: list[str] = []
    for key, value in (("newName", ref.name), ("digest", ref.digest)):
        pair = find_pair(node, key)
        if pair is None:
            missing.append(f"{key}: {quoted(value)}")
        else:
            ed.set_scalar(pair[1], value, f"{entry.name}'s {key}")
    tag = find_pair(node, "newTag")
    if tag is not None:  # a digest pins the image; a tag beside it only confuses
        _remove_pair(ed, node, tag)
    if missing:
        _add_pairs(ed, entry, missing)


def _remove_pair(ed: Editor, mapping: Node, pair: tuple[Node, Node]) -> None:
    key, value = pair
    ed.not_shared(value, f"{key.value}")
    index = mapping.children.index(key)
    following = mapping.children[index + 2] if index + 2 < len(mapping.children) else None
    if mapping.flow:
        if following is not None:
            start, end = key.start, following.start
        else:
            start, end = mapping.children[index - 1].end, value.end
    elif not ed.text[line_start(ed.text, key.start) : key.start].strip(" \t"):
        start, end = ed.whole_lines(line_start(ed.text, key.start), after_line(ed.text, ed.entry_end(value)))
    elif following is not None:  # the first key, on the dash's line: the next key moves up
        start, end = key.start, following.start
    else:
        raise ed.fail(key.line, f"cannot remove {key.value} without reformatting; edit it by hand")
    ed.keeps_anchors(start, end)
    ed.splices.append((start, end, ""))


def _add_pairs(ed: Editor, entry: Entry, pairs: list[str]) -> None:
    node = entry.node
    last = node.children[-1]
    if node.flow:
        ed.splices.append((last.end, last.end, "".join(f", {p}" for p in pairs)))
        return
    column = column_of(ed.text, node.children[0].start)
    rest = REST_OF_LINE.match(ed.text, last.end)
    if rest is None and ed.text[last.end - 1 : last.end] not in ("\r", "\n"):
        raise ed.fail(last.line, f"something follows {entry.name}'s last field on its line; edit it by hand")
    ed.insert_lines(after_line(ed.text, last.end), [" " * column + p for p in pairs])


def _remove(ed: Editor, entry: Entry) -> None:
    doc = ed.doc
    images = doc.images
    assert images is not None and doc.images_key is not None
    seq = images.resolved
    if images.kind == "alias" or seq.flow:
        raise ed.fail(images.line, "images: is not a block list ('- name: …' lines); edit it by hand")
    ed.not_shared(seq, "images:")
    start, end = ed.block_item_span(entry.item)
    if len(seq.children) == 1:  # the last pin: the images: key goes too
        key = doc.images_key
        if ed.text[line_start(ed.text, key.start) : key.start].strip(" \t"):
            raise ed.fail(key.line, "images: does not start its line; edit it by hand")
        start, end = ed.whole_lines(line_start(ed.text, key.start), end)
    ed.keeps_anchors(start, end)
    ed.splices.append((start, end, ""))


def _add(ed: Editor, name: str, ref: ImageRef) -> None:
    doc, root = ed.doc, ed.doc.root
    if root.flow:
        raise ed.fail(root.line, "the file is one flow mapping ({…}); edit it by hand")
    images = doc.images
    if images is not None and images.kind != "alias" and images.resolved.kind == "seq" and images.resolved.children:
        seq = images.resolved
        if seq.flow:
            raise ed.fail(images.line, "images: is a flow list ([…]); devmesh adds entries to block lists only")
        ed.not_shared(seq, "images:")
        dash, key_column = _item_columns(ed, seq)
        _, end = ed.block_item_span(seq.children[-1])
        ed.insert_lines(end, _entry_lines(name, ref, dash, key_column))
        return
    def lines(dash: int) -> list[str]:
        return _entry_lines(name, ref, dash, dash + 2)

    if images is not None and doc.images_key is not None:  # images: with no entries (~, [] or nothing)
        fill_empty(ed, doc.images_key, images, lines)
    else:
        add_key(ed, "images", lines)


def edit_pin(doc: TierFile, name: str, ref: ImageRef | None) -> str:
    """The text of ``doc`` with image ``name`` pinned to ``ref`` (None: its entry removed)."""
    ed = Editor(doc)
    entry = doc.entry(name)
    if entry is not None and ref is not None:
        _repin(ed, entry, ref)
    elif entry is not None:
        if entry.item.kind == "alias" or entry.node.aliases:
            ed.not_shared(entry.node, f"the images: entry for {name}")
        _remove(ed, entry)
    elif ref is not None:
        _add(ed, name, ref)
    return ed.result()


def verify_edit(before: TierFile, text: str, name: str, ref: ImageRef | None) -> None:
    """Refuse (UserInputError) unless ``text`` reads, pins ``name`` to ``ref``, and changes nothing else."""
    where = before.where
    try:
        after = parse_tier(text, where)
    except UserInputError as exc:
        raise UserInputError(f"{exc.message} (the edited file would not be valid; nothing was written)") from None
    old, new = before.effective(), after.effective()
    wanted = None if ref is None else (ref.name, None, ref.digest)
    if new.get(name) != wanted:
        raise UserInputError(f"{where}: editing {name} would give it {new.get(name)!r}, not {wanted!r}; nothing was written")
    for other in sorted(set(old) | set(new)):
        if other != name and old.get(other) != new.get(other):
            raise UserInputError(
                f"{where}: editing {name} would also change {other} ({old.get(other)!r} → {new.get(other)!r}); "
                "nothing was written"
            )
    rest_before = {k: v for k, v in before.data.items() if k != "images"}
    rest_after = {k: v for k, v in after.data.items() if k != "images"}
    if repr(rest_before) != repr(rest_after):
        raise UserInputError(f"{where}: editing {name} would change more than its images: entry; nothing was written")
