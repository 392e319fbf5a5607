"""A tier's ``kustomization.yaml``: its ``images:`` entries read, and edited as text splices
(as are the ``resources:`` entries ``manifests init`` adds).

Every edit replaces, inserts or removes a span of the text and leaves every other byte as it
was (line endings, indentation, comments, quoting, anchors, a ``...`` end marker). An edit
that cannot be made that way, or that would reach other entries through an anchor or a
merge key, is refused naming the file and line; a file is never reformatted.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from devmesh.errors import UserInputError
from devmesh.gitops.images import ImageRef
from devmesh.gitops.yamltree import MERGE, STR, Node, parse_tree, to_data

Effective = tuple[Any, Any, Any]  # (newName or name, newTag, digest): what kustomize applies


@dataclass(frozen=True)
class Entry:
    """One ``images:`` entry: ``item`` as written (maybe an alias), ``node`` its mapping."""

    name: str
    item: Node
    node: Node
    fields: dict[str, Any]  # after merge keys

    @property
    def line(self) -> int:
        return self.node.line

    @property
    def effective(self) -> Effective:
        f = self.fields
        return (f.get("newName") or f["name"], f.get("newTag"), f.get("digest"))

    def field_line(self, key: str) -> int:
        pair = _pair(self.node, key)
        return pair[0].line if pair else self.line


@dataclass(frozen=True)
class TierFile:
    text: str
    where: str  # "<display>: tiers/<tier>/kustomization.yaml"
    root: Node
    data: dict[str, Any]
    images_key: Node | None
    images: Node | None  # the value as written
    entries: list[Entry]

    def entry(self, name: str) -> Entry | None:
        return next((e for e in self.entries if e.name == name), None)

    def fail(self, line: int, problem: str) -> UserInputError:
        return UserInputError(f"{self.where}:{line}: {problem}")

    def effective(self) -> dict[str, Effective]:
        return {e.name: e.effective for e in self.entries}


def _pair(mapping: Node, key: str) -> tuple[Node, Node] | None:
    for k, v in mapping.pairs:
        if k.resolved.kind == "scalar" and k.resolved.tag != MERGE and k.resolved.value == key:
            return k, v
    return None


def parse_tier(text: str, where: str) -> TierFile:
    """Read a tier file; anything devmesh cannot read safely is a UserInputError with the line."""
    root = parse_tree(text, where)
    data = to_data(root, where)
    if root is None or not isinstance(data, dict):
        raise UserInputError(f"{where}:{root.line if root else 1}: expected a Kustomization mapping")
    images_pair = _pair(root.resolved, "images")
    entries: list[Entry] = []
    if images_pair is not None and data.get("images") is not None:
        key, value = images_pair
        if not isinstance(data["images"], list):
            raise UserInputError(f"{where}:{value.line}: images: expected a list")
        seen: dict[str, int] = {}
        for item, fields in zip(value.resolved.children, data["images"]):
            if not isinstance(fields, dict):
                raise UserInputError(f"{where}:{item.line}: images: expected a mapping with 'name', not {fields!r:.40}")
            name = fields.get("name")
            if not isinstance(name, str) or not name:
                raise UserInputError(f"{where}:{item.line}: images: entry has no name")
            entry = Entry(name, item, item.resolved, fields)
            if name in seen:
                raise UserInputError(
                    f"{where}:{entry.line}: images: {name} is listed twice (also on line {seen[name]}); "
                    "kustomize applies only one of them: keep one"
                )
            seen[name] = entry.line
            entries.append(entry)
    key_node, images_node = images_pair if images_pair else (None, None)
    return TierFile(text, where, root.resolved, data, key_node, images_node, entries)


# --- text positions ----------------------------------------------------------------------------


def _line_start(text: str, i: int) -> int:
    return max(text.rfind("\n", 0, i), text.rfind("\r", 0, i)) + 1


def _after_line(text: str, i: int) -> int:
    """The offset just past the line break ending the line ``i`` is on (or the text's end)."""
    if i > 0 and text[i - 1] in "\r\n":
        return i  # already at a line start (a block scalar ends after its line break)
    match = re.compile(r"[^\r\n]*(\r\n|\r|\n)?").match(text, i)
    assert match is not None
    return match.end()


def _column(text: str, i: int) -> int:
    return i - _line_start(text, i)


def _newline(text: str) -> str:
    match = re.search(r"\r\n|\r|\n", text)
    return match.group(0) if match else "\n"


_REST_OF_LINE = re.compile(r"[ \t]*(#[^\r\n]*)?(\r\n|\r|\n|\Z)")
_PROPERTIES = re.compile(r"(?:[&!][^\s]*[ \t]+)+")


def _quoted(value: str, style: str | None = None) -> str:
    """``value`` as a YAML scalar in ``style`` if that reads back as the same string."""
    import yaml

    if style is None and re.fullmatch(r"[A-Za-z0-9./][A-Za-z0-9._/@:+-]*", value) and not value.endswith(":"):
        resolver: Any = yaml.resolver.Resolver()
        if resolver.resolve(yaml.ScalarNode, value, (True, False)) == STR:
            return value
    if style == "'" and "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


Splice = tuple[int, int, str]  # replace text[start:end] with the string


class _Editor:
    def __init__(self, doc: TierFile) -> None:
        self.doc, self.text = doc, doc.text
        self.nl = _newline(doc.text)
        self.splices: list[Splice] = []

    def fail(self, line: int, problem: str) -> UserInputError:
        return self.doc.fail(line, problem)

    def result(self) -> str:
        out = self.text
        last = len(out) + 1
        for start, end, new in sorted(self.splices, key=lambda s: (s[0], s[1]), reverse=True):
            assert end <= last, "overlapping edits"
            out = out[:start] + new + out[end:]
            last = start
        return out

    # -- guards --

    def not_shared(self, node: Node, what: str) -> None:
        """Refuse to change ``node`` when an alias elsewhere names it: that would change both."""
        target = node.resolved
        if target.aliases:
            use = target.aliases[0]
            raise self.fail(
                target.line,
                f"{what} carries anchor &{target.anchor}, used again on line {use.line}; "
                "an edit here would change that place too: write the value out there first",
            )

    def keeps_anchors(self, start: int, end: int) -> None:
        """Refuse to delete an anchor in text[start:end] that an alias outside it still names."""
        for node in _walk(self.doc.root):
            if node.anchor and start <= node.start < end:
                outside = [a for a in node.aliases if not start <= a.start < end]
                if outside:
                    raise self.fail(
                        node.line,
                        f"removing this would remove anchor &{node.anchor}, used on line {outside[0].line}",
                    )

    # -- pieces --

    def set_scalar(self, value_node: Node, value: str, what: str) -> None:
        if value_node.kind == "alias":  # replace the alias by the value; the anchor stays
            self.splices.append((value_node.start, value_node.end, _quoted(value)))
            return
        self.not_shared(value_node, what)
        start = value_node.start
        if value_node.anchor or self.text[start : start + 1] == "!":
            props = _PROPERTIES.match(self.text, start)
            if props is None:
                raise self.fail(value_node.line, f"{what}: write its anchor or tag on the value's line")
            start = props.end()
        span = self.text[start : value_node.end]
        if value_node.style not in (None, "'", '"') or re.search(r"[\r\n]", span):
            raise self.fail(value_node.line, f"{what} is not written on one line; devmesh edits one-line values")
        if value_node.end == start and value_node.style is None:
            self.splices.append((start, start, (" " if self.text[start - 1 : start] == ":" else "") + _quoted(value)))
            return
        self.splices.append((start, value_node.end, _quoted(value, value_node.style)))

    def entry_end(self, item: Node) -> int:
        """Where a node's text ends: its closing bracket, or its last value (a block
        collection's own end mark lies past the comments that follow it)."""
        node = item
        while node.kind in ("map", "seq") and not node.flow and node.children:
            node = node.children[-1]
        return node.end

    def block_item_span(self, item: Node, what: str = "this images: entry") -> tuple[int, int]:
        """The whole lines of a block-sequence item, from its dash to the end of its last line."""
        dash = self.text.rfind("-", 0, item.start)
        between = self.text[dash + 1 : item.start]
        if dash < 0 or between.strip(" \t\r\n") or self.text[_line_start(self.text, dash) : dash].strip(" \t"):
            raise self.fail(item.line, f"{what} does not start a line with '- '; edit it by hand")
        end = self.entry_end(item)
        rest = _REST_OF_LINE.match(self.text, end)
        if rest is None and not self.text[end - 1 : end] in ("\r", "\n"):
            raise self.fail(item.line, f"something follows {what} on its line; edit it by hand")
        return self.whole_lines(_line_start(self.text, dash), _after_line(self.text, end))

    def whole_lines(self, start: int, end: int) -> tuple[int, int]:
        """Lines to delete; at the end of a file without a final newline, the line break
        before them goes instead, so the file still ends without one."""
        if end == len(self.text) and self.text[end - 1 : end] not in ("\r", "\n") and start > 0:
            start -= 2 if self.text[start - 2 : start] == "\r\n" else 1
        return start, end

    def insert_lines(self, at: int, lines: list[str]) -> None:
        block = self.nl.join(lines)
        if at == len(self.text) and self.text and self.text[-1] not in "\r\n":
            self.splices.append((at, at, self.nl + block))  # keep the missing final newline missing
        else:
            self.splices.append((at, at, block + self.nl))


def _walk(root: Node) -> list[Node]:
    out, todo = [], [root]
    while todo:
        node = todo.pop()
        out.append(node)
        if node.kind != "alias":
            todo.extend(node.children)
    return out


def _entry_lines(name: str, ref: ImageRef, dash: int, key: int) -> list[str]:
    gap = " " * max(1, key - dash - 1)
    return [
        f"{' ' * dash}-{gap}name: {_quoted(name)}",
        f"{' ' * key}newName: {_quoted(ref.name)}",
        f"{' ' * key}digest: {_quoted(ref.digest)}",
    ]


def _item_columns(ed: _Editor, seq: Node) -> tuple[int, int]:
    """(dash column, key column) the sequence's block-mapping items use."""
    for item in seq.children:
        if item.kind == "map" and not item.flow and item.children:
            dash = ed.text.rfind("-", 0, item.start)
            first_key = item.children[0]
            if dash >= 0 and _line_start(ed.text, dash) == _line_start(ed.text, first_key.start):
                return _column(ed.text, dash), _column(ed.text, first_key.start)
    dash = _column(ed.text, ed.text.rfind("-", 0, seq.children[-1].start))
    return dash, dash + 2


def _seq_offset(ed: _Editor) -> int:
    """How far the file indents a block sequence's dashes from its key (2 when it has none)."""
    for key, value in ed.doc.root.pairs:
        seq = value.resolved
        if value.kind == "seq" and not seq.flow and seq.children:
            dash = ed.text.rfind("-", 0, seq.children[0].start)
            return max(0, _column(ed.text, dash) - _column(ed.text, key.start))
    return 2


def _repin(ed: _Editor, entry: Entry, ref: ImageRef) -> None:
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
        pair = _pair(node, key)
        if pair is None:
            missing.append(f"{key}: {_quoted(value)}")
        else:
            ed.set_scalar(pair[1], value, f"{entry.name}'s {key}")
    tag = _pair(node, "newTag")
    if tag is not None:  # a digest pins the image; a tag beside it only confuses
        _remove_pair(ed, node, tag)
    if missing:
        _add_pairs(ed, entry, missing)


def _remove_pair(ed: _Editor, mapping: Node, pair: tuple[Node, Node]) -> None:
    key, value = pair
    ed.not_shared(value, f"{key.value}")
    index = mapping.children.index(key)
    following = mapping.children[index + 2] if index + 2 < len(mapping.children) else None
    if mapping.flow:
        if following is not None:
            start, end = key.start, following.start
        else:
            start, end = mapping.children[index - 1].end, value.end
    elif not ed.text[_line_start(ed.text, key.start) : key.start].strip(" \t"):
        start, end = ed.whole_lines(_line_start(ed.text, key.start), _after_line(ed.text, ed.entry_end(value)))
    elif following is not None:  # the first key, on the dash's line: the next key moves up
        start, end = key.start, following.start
    else:
        raise ed.fail(key.line, f"cannot remove {key.value} without reformatting; edit it by hand")
    ed.keeps_anchors(start, end)
    ed.splices.append((start, end, ""))


def _add_pairs(ed: _Editor, entry: Entry, pairs: list[str]) -> None:
    node = entry.node
    last = node.children[-1]
    if node.flow:
        ed.splices.append((last.end, last.end, "".join(f", {p}" for p in pairs)))
        return
    column = _column(ed.text, node.children[0].start)
    rest = _REST_OF_LINE.match(ed.text, last.end)
    if rest is None and ed.text[last.end - 1 : last.end] not in ("\r", "\n"):
        raise ed.fail(last.line, f"something follows {entry.name}'s last field on its line; edit it by hand")
    ed.insert_lines(_after_line(ed.text, last.end), [" " * column + p for p in pairs])


def _remove(ed: _Editor, entry: Entry) -> None:
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
        if ed.text[_line_start(ed.text, key.start) : key.start].strip(" \t"):
            raise ed.fail(key.line, "images: does not start its line; edit it by hand")
        start, end = ed.whole_lines(_line_start(ed.text, key.start), end)
    ed.keeps_anchors(start, end)
    ed.splices.append((start, end, ""))


def _fill_empty(ed: _Editor, key: Node, value: Node, lines: Callable[[int], list[str]]) -> None:
    """Replace the empty value of ``key`` (``~``, ``[]`` or nothing) by a block list of
    ``lines(dash column)`` below it, indented as the file's other lists are."""
    what = f"{key.value}:"
    empty = value.resolved
    if value.kind == "alias" or value.anchor or empty.children or empty.kind == "map":
        raise ed.fail(value.line, f"{what} is not an empty value or a block list; edit it by hand")
    rest = _REST_OF_LINE.match(ed.text, value.end)
    if rest is None or "\n" in ed.text[key.end : value.start] or "\r" in ed.text[key.end : value.start]:
        raise ed.fail(key.line, f"{what} and its value are not on one line; edit it by hand")
    ed.splices.append((value.start, value.end, ""))
    ed.insert_lines(_after_line(ed.text, value.end), lines(_column(ed.text, key.start) + _seq_offset(ed)))


def _add_key(ed: _Editor, name: str, lines: Callable[[int], list[str]]) -> None:
    """Add ``name:`` after the file's last key, with a block list of ``lines(dash column)``."""
    root = ed.doc.root
    if root.flow:
        raise ed.fail(root.line, "the file is one flow mapping ({…}); edit it by hand")
    last_key, last_value = root.pairs[-1]
    column = _column(ed.text, root.children[0].start)
    end = ed.entry_end(last_value) if last_value.kind != "alias" else last_value.end
    if _REST_OF_LINE.match(ed.text, end) is None and ed.text[end - 1 : end] not in ("\r", "\n"):
        raise ed.fail(last_key.line, "something follows the last field on its line; edit it by hand")
    ed.insert_lines(_after_line(ed.text, end), [" " * column + f"{name}:", *lines(column + _seq_offset(ed))])


def _add(ed: _Editor, name: str, ref: ImageRef) -> None:
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
        _fill_empty(ed, doc.images_key, images, lines)
    else:
        _add_key(ed, "images", lines)


def edit_pin(doc: TierFile, name: str, ref: ImageRef | None) -> str:
    """The text of ``doc`` with image ``name`` pinned to ``ref`` (None: its entry removed)."""
    ed = _Editor(doc)
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


# --- resources: entries ------------------------------------------------------------------------

_FLOW_LINE_END = re.compile(r"([ \t]*,)?[ \t]*(?:#[^\r\n]*)?(?:\r\n|\r|\n)")


def _item_style(item: Node) -> str | None:
    """The quotes a list's item is written in (None: plain), for new items to match."""
    return item.style if item.kind == "scalar" and item.style in ("'", '"') else None


def _append_block(ed: _Editor, seq: Node, paths: list[str]) -> None:
    """New ``- path`` lines after the last item, in its column, gap after the dash and quotes."""
    last = seq.children[-1]
    _, end = ed.block_item_span(last, "the last resources: entry")
    dash = ed.text.rfind("-", 0, last.start)
    gap = ed.text[dash + 1 : last.start]
    if not gap or "\n" in gap or "\r" in gap:
        gap = " "
    prefix = " " * _column(ed.text, dash) + "-" + gap
    ed.insert_lines(end, [prefix + _quoted(p, _item_style(last)) for p in paths])


def _append_flow(ed: _Editor, seq: Node, paths: list[str]) -> None:
    """New items inside ``[…]``: on lines of their own when the last item has one, else inline."""
    if not seq.children:
        close = seq.end - 1
        if ed.text[close : close + 1] != "]":
            raise ed.fail(seq.line, "resources: does not end with ']' where expected; edit it by hand")
        ed.splices.append((close, close, ", ".join(_quoted(p) for p in paths)))
        return
    last = seq.children[-1]
    style = _item_style(last)
    end = last.end
    start_of_line = _line_start(ed.text, last.start)
    indent = ed.text[start_of_line : last.start]
    rest = _FLOW_LINE_END.match(ed.text, end)
    if rest is not None and not indent.strip(" \t"):  # one item a line: keep it so
        trailing = rest.group(1) is not None
        if not trailing:
            ed.splices.append((end, end, ","))
        items = [indent + _quoted(p, style) + "," for p in paths]
        if not trailing:
            items[-1] = items[-1][:-1]
        ed.insert_lines(rest.end(), items)
        return
    ed.splices.append((end, end, "".join(f", {_quoted(p, style)}" for p in paths)))


def _same_path(a: str, b: str) -> bool:
    return posixpath.normpath(a) == posixpath.normpath(b)


def add_resources(doc: TierFile, paths: list[str]) -> tuple[str, list[str]]:
    """(text, paths added): ``doc`` with those of ``paths`` its ``resources:`` list lacks
    appended to it, in the list's own style and line endings (the key is added when there is
    none). What cannot be added without reformatting is a UserInputError naming the line."""
    pair = _pair(doc.root, "resources")
    listed = doc.data.get("resources")
    if pair is None and "resources" in doc.data:
        merge = next(k for k, _ in doc.root.pairs if k.resolved.tag == MERGE)
        raise doc.fail(merge.line, "resources: comes from a merge key (<<); write it out to let devmesh add to it")
    key, value = pair if pair is not None else (None, None)
    if value is not None and listed is not None and not isinstance(listed, list):
        raise doc.fail(value.line, f"resources: expected a list of paths, not {listed!r:.40}")
    have = [p for p in listed or [] if isinstance(p, str)]
    new: list[str] = []
    for path in paths:
        if not any(_same_path(path, p) for p in have + new):
            new.append(path)
    if not new:
        return doc.text, []
    ed = _Editor(doc)

    def lines(dash: int) -> list[str]:
        return [" " * dash + "- " + _quoted(p) for p in new]

    if key is None or value is None:
        _add_key(ed, "resources", lines)
    elif value.kind == "alias":
        target = value.resolved
        raise ed.fail(
            value.line,
            f"resources: is an alias (*{target.anchor}) of line {target.line}; write the list out to let devmesh add to it",
        )
    elif value.kind == "seq":
        ed.not_shared(value, "resources:")
        if value.flow:
            _append_flow(ed, value, new)
        else:
            _append_block(ed, value, new)
    else:
        _fill_empty(ed, key, value, lines)
    return ed.result(), new


def verify_resources(before: TierFile, text: str, added: list[str]) -> None:
    """Refuse (UserInputError) unless ``text`` reads, lists ``added`` after the resources
    ``before`` lists, and changes nothing else: no image pin, no other key."""
    where = before.where
    try:
        after = parse_tier(text, where)
    except UserInputError as exc:
        raise UserInputError(f"{exc.message} (the edited file would not be valid; nothing was written)") from None
    wanted = [*(before.data.get("resources") or []), *added]
    if after.data.get("resources") != wanted:
        raise UserInputError(
            f"{where}: adding {', '.join(added)} would give resources: {after.data.get('resources')!r:.200}; "
            "nothing was written"
        )
    if after.effective() != before.effective():
        raise UserInputError(f"{where}: adding {', '.join(added)} to resources: would change an image pin; nothing was written")
    rest_before = {k: v for k, v in before.data.items() if k != "resources"}
    rest_after = {k: v for k, v in after.data.items() if k != "resources"}
    if repr(rest_before) != repr(rest_after):
        raise UserInputError(f"{where}: adding {', '.join(added)} would change more than resources:; nothing was written")
