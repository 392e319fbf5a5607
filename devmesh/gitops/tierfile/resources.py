"""The ``resources:`` list of a tier file (which ``manifests init`` adds to): new paths appended
as a text splice in the list's own style, and the edited text checked to add just those.
"""

from __future__ import annotations

import posixpath
import re

from devmesh.errors import UserInputError
from devmesh.gitops.tierfile.document import TierFile, find_pair, parse_tier
from devmesh.gitops.tierfile.editor import Editor, add_key, column_of, fill_empty, line_start, quoted
from devmesh.gitops.yamltree import MERGE, Node

_FLOW_LINE_END = re.compile(r"([ \t]*,)?[ \t]*(?:#[^\r\n]*)?(?:\r\n|\r|\n)")


def _item_style(item: Node) -> str | None:
    """The quotes a list's item is written in (None: plain), for new items to match."""
    return item.style if item.kind == "scalar" and item.style in ("'", '"') else None


def _append_block(ed: Editor, seq: Node, paths: list[str]) -> None:
    """New ``- path`` lines after the last item, in its column, gap after the dash and quotes."""
    last = seq.children[-1]
    _, end = ed.block_item_span(last, "the last resources: entry")
    dash = ed.text.rfind("-", 0, last.start)
    gap = ed.text[dash + 1 : last.start]
    if not gap or "\n" in gap or "\r" in gap:
        gap = " "
    prefix = " " * column_of(ed.text, dash) + "-" + gap
    ed.insert_lines(end, [prefix + quoted(p, _item_style(last)) for p in paths])


def _append_flow(ed: Editor, seq: Node, paths: list[str]) -> None:
    """New items inside ``[…]``: on lines of their own when the last item has one, else inline."""
    if not seq.children:
        close = seq.end - 1
        if ed.text[close : close + 1] != "]":
            raise ed.fail(seq.line, "resources: does not end with ']' where expected; edit it by hand")
        ed.splices.append((close, close, ", ".join(quoted(p) for p in paths)))
        return
    last = seq.children[-1]
    style = _item_style(last)
    end = last.end
    start_of_line = line_start(ed.text, last.start)
    indent = ed.text[start_of_line : last.start]
    rest = _FLOW_LINE_END.match(ed.text, end)
    if rest is not None and not indent.strip(" \t"):  # one item a line: keep it so
        trailing = rest.group(1) is not None
        if not trailing:
            ed.splices.append((end, end, ","))
        items = [indent + quoted(p, style) + "," for p in paths]
        if not trailing:
            items[-1] = items[-1][:-1]
        ed.insert_lines(rest.end(), items)
        return
    ed.splices.append((end, end, "".join(f", {quoted(p, style)}" for p in paths)))


def _same_path(a: str, b: str) -> bool:
    return posixpath.normpath(a) == posixpath.normpath(b)


def add_resources(doc: TierFile, paths: list[str]) -> tuple[str, list[str]]:
    """(text, paths added): ``doc`` with those of ``paths`` its ``resources:`` list lacks
    appended to it, in the list's own style and line endings (the key is added when there is
    none). What cannot be added without reformatting is a UserInputError naming the line."""
    pair = find_pair(doc.root, "resources")
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
    ed = Editor(doc)

    def lines(dash: int) -> list[str]:
        return [" " * dash + "- " + quoted(p) for p in new]

    if key is None or value is None:
        add_key(ed, "resources", lines)
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
        fill_empty(ed, key, value, lines)
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
