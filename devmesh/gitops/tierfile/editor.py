"""Text splices on a tier file: offsets and columns in its text, YAML scalars written to read
back as the same string, and the ``Editor`` that collects splices and refuses those that would
reach other places through an anchor or could not be made without reformatting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import yaml

from devmesh.errors import UserInputError
from devmesh.gitops.tierfile.document import TierFile
from devmesh.gitops.yamltree import STR, Node


def line_start(text: str, i: int) -> int:
    """The offset where the line ``i`` is on starts."""
    return max(text.rfind("\n", 0, i), text.rfind("\r", 0, i)) + 1


def after_line(text: str, i: int) -> int:
    """The offset just past the line break ending the line ``i`` is on (or the text's end)."""
    if i > 0 and text[i - 1] in "\r\n":
        return i  # already at a line start (a block scalar ends after its line break)
    match = re.compile(r"[^\r\n]*(\r\n|\r|\n)?").match(text, i)
    assert match is not None
    return match.end()


def column_of(text: str, i: int) -> int:
    """The column of offset ``i`` in its line."""
    return i - line_start(text, i)


def _newline(text: str) -> str:
    match = re.search(r"\r\n|\r|\n", text)
    return match.group(0) if match else "\n"


REST_OF_LINE = re.compile(r"[ \t]*(#[^\r\n]*)?(\r\n|\r|\n|\Z)")
_PROPERTIES = re.compile(r"(?:[&!][^\s]*[ \t]+)+")


def quoted(value: str, style: str | None = None) -> str:
    """``value`` as a YAML scalar in ``style`` if that reads back as the same string."""
    if style is None and re.fullmatch(r"[A-Za-z0-9./][A-Za-z0-9._/@:+-]*", value) and not value.endswith(":"):
        resolver: Any = yaml.resolver.Resolver()
        if resolver.resolve(yaml.ScalarNode, value, (True, False)) == STR:
            return value
    if style == "'" and "\n" not in value:
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)  # a JSON string is a YAML double-quoted scalar


Splice = tuple[int, int, str]  # replace text[start:end] with the string


class Editor:
    """The splices of one edit of ``doc``, applied together by ``result``."""

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
            self.splices.append((value_node.start, value_node.end, quoted(value)))
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
            self.splices.append((start, start, (" " if self.text[start - 1 : start] == ":" else "") + quoted(value)))
            return
        self.splices.append((start, value_node.end, quoted(value, value_node.style)))

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
        if dash < 0 or between.strip(" \t\r\n") or self.text[line_start(self.text, dash) : dash].strip(" \t"):
            raise self.fail(item.line, f"{what} does not start a line with '- '; edit it by hand")
        end = self.entry_end(item)
        rest = REST_OF_LINE.match(self.text, end)
        if rest is None and not self.text[end - 1 : end] in ("\r", "\n"):
            raise self.fail(item.line, f"something follows {what} on its line; edit it by hand")
        return self.whole_lines(line_start(self.text, dash), after_line(self.text, end))

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


def _seq_offset(ed: Editor) -> int:
    """How far the file indents a block sequence's dashes from its key (2 when it has none)."""
    for key, value in ed.doc.root.pairs:
        seq = value.resolved
        if value.kind == "seq" and not seq.flow and seq.children:
            dash = ed.text.rfind("-", 0, seq.children[0].start)
            return max(0, column_of(ed.text, dash) - column_of(ed.text, key.start))
    return 2


def fill_empty(ed: Editor, key: Node, value: Node, lines: Callable[[int], list[str]]) -> None:
    """Replace the empty value of ``key`` (``~``, ``[]`` or nothing) by a block list of
    ``lines(dash column)`` below it, indented as the file's other lists are."""
    what = f"{key.value}:"
    empty = value.resolved
    if value.kind == "alias" or value.anchor or empty.children or empty.kind == "map":
        raise ed.fail(value.line, f"{what} is not an empty value or a block list; edit it by hand")
    rest = REST_OF_LINE.match(ed.text, value.end)
    if rest is None or "\n" in ed.text[key.end : value.start] or "\r" in ed.text[key.end : value.start]:
        raise ed.fail(key.line, f"{what} and its value are not on one line; edit it by hand")
    ed.splices.append((value.start, value.end, ""))
    ed.insert_lines(after_line(ed.text, value.end), lines(column_of(ed.text, key.start) + _seq_offset(ed)))


def add_key(ed: Editor, name: str, lines: Callable[[int], list[str]]) -> None:
    """Add ``name:`` after the file's last key, with a block list of ``lines(dash column)``."""
    root = ed.doc.root
    if root.flow:
        raise ed.fail(root.line, "the file is one flow mapping ({…}); edit it by hand")
    last_key, last_value = root.pairs[-1]
    column = column_of(ed.text, root.children[0].start)
    end = ed.entry_end(last_value) if last_value.kind != "alias" else last_value.end
    if REST_OF_LINE.match(ed.text, end) is None and ed.text[end - 1 : end] not in ("\r", "\n"):
        raise ed.fail(last_key.line, "something follows the last field on its line; edit it by hand")
    ed.insert_lines(after_line(ed.text, end), [" " * column + f"{name}:", *lines(column + _seq_offset(ed))])
