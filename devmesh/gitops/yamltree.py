"""A bounded YAML reader for the manifest repo's files: a node tree with exact offsets.

PyYAML's parser yields events; this module composes them into a tree itself so that:

- size, nesting and alias expansion are bounded while reading, before anything is built
  (an alias bomb or ``[[[[…`` is a one-line error, not minutes of CPU or a RecursionError);
- every node keeps the character offsets of its text, its anchor, and whether it is an
  alias, which in-place edits need (``yaml.compose`` drops both anchors and aliases);
- constructing plain data never raises anything but UserInputError naming the line
  (PyYAML lets ValueError out for ``2001-13-45`` or a 5000-digit integer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devmesh.errors import UserInputError

MAX_BYTES = 1024 * 1024  # a tier file for thousands of services is well under this
MAX_DEPTH = 64  # nesting, counting what aliases bring in
MAX_NODES = 100_000  # nodes as written
MAX_EXPANDED = 200_000  # nodes once every alias is replaced by what it names

MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
STR = "tag:yaml.org,2002:str"
MERGE = "tag:yaml.org,2002:merge"


@dataclass(eq=False)
class Node:
    """A scalar, sequence, mapping, or an alias (``target`` set) as written in the text.

    ``start``/``end`` are character offsets of the node's text, anchor and tag included.
    A mapping's ``children`` alternate key, value.
    """

    kind: str  # "scalar", "seq", "map" or "alias"
    tag: str
    start: int
    end: int
    line: int  # 1-based
    anchor: str | None = None
    style: str | None = None  # scalars: None (plain), "'", '"', "|" or ">"
    flow: bool = False
    value: str = ""
    children: list[Node] = field(default_factory=list)
    target: Node | None = None  # aliases: the anchored node
    aliases: list[Node] = field(default_factory=list)  # anchored nodes: the aliases naming them
    height: int = 1
    size: int = 1

    @property
    def resolved(self) -> Node:
        """The node itself, or for an alias the node it names."""
        return self.target if self.target is not None else self

    @property
    def pairs(self) -> list[tuple[Node, Node]]:
        return list(zip(self.children[::2], self.children[1::2]))


def decode(raw: bytes, where: str) -> str:
    """UTF-8 text of ``raw``, line breaks untouched; other encodings are refused by line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise UserInputError(f"{where}:{line}: not UTF-8 text (byte {exc.start})") from None


def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, max(0, index)) + 1


def _yaml_error(exc: Exception, text: str, where: str) -> UserInputError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(getattr(exc, "position", None), int):
        line = _line_of(text, getattr(exc, "position"))
    else:
        line = 0
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    at = f"{where}:{line}" if line else where
    return UserInputError(f"{at}: invalid YAML: {' '.join(str(problem).split())}")


def _mark(event: Any, which: str) -> Any:
    """An event's start or end mark (the parser always sets them)."""
    return getattr(event, which)


class _Composer:
    """Events → Node tree, checking every bound as nodes complete."""

    def __init__(self, text: str, where: str, loader: Any) -> None:
        self.text, self.where, self.loader = text, where, loader
        self.anchors: dict[str, Node] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[Node] = []
        self.root: Node | None = None
        self.documents = 0
        self.nodes = 0

    def fail(self, line: int, problem: str) -> UserInputError:
        return UserInputError(f"{self.where}:{line}: {problem}")

    def _node(self, kind: str, tag: str, event: Any) -> Node:
        self.nodes += 1
        line = event.start_mark.line + 1
        if self.nodes > MAX_NODES:
            raise self.fail(line, f"more than {MAX_NODES} YAML nodes; not a file devmesh reads")
        return Node(kind, tag, event.start_mark.index, event.end_mark.index, line)

    def _anchor(self, node: Node, anchor: str | None) -> None:
        if anchor is None:
            return
        if anchor in self.anchors or anchor in self.open_anchors:
            first = self.anchors[anchor].line if anchor in self.anchors else node.line
            raise self.fail(node.line, f"anchor &{anchor} is defined twice (first on line {first})")
        node.anchor = anchor

    def _done(self, node: Node) -> None:
        """``node`` is complete: check the bounds, register its anchor, attach it."""
        if node.kind in ("seq", "map"):
            node.height = 1 + max((c.height for c in node.children), default=0)
            node.size = 1 + sum(c.size for c in node.children)
        if node.height > MAX_DEPTH:
            raise self.fail(node.line, f"nested more than {MAX_DEPTH} levels deep (aliases included)")
        if node.size > MAX_EXPANDED:
            raise self.fail(node.line, f"aliases expand to more than {MAX_EXPANDED} nodes; not a file devmesh reads")
        if node.anchor is not None:
            self.open_anchors.discard(node.anchor)
            self.anchors[node.anchor] = node
        if self.stack:
            self.stack[-1].children.append(node)
        else:
            self.root = node

    def feed(self, event: Any) -> None:
        import yaml

        line = _mark(event, "start_mark").line + 1
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.fail(line, "more than one YAML document; a tier file holds one")
        elif isinstance(event, yaml.AliasEvent):
            node = self._node("alias", "", event)
            anchor = str(event.anchor)
            target = self.anchors.get(anchor)
            if target is None:
                inside = anchor in self.open_anchors
                why = "inside the node it names" if inside else "undefined alias"
                raise self.fail(node.line, f"{why} *{anchor}")
            node.target, node.tag = target, target.tag
            node.height, node.size = target.height, target.size
            target.aliases.append(node)
            self._done(node)
        elif isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            node = self._node("scalar", tag, event)
            node.value, node.style = event.value, event.style or None
            self._anchor(node, event.anchor)
            self._done(node)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            kind = "seq" if isinstance(event, yaml.SequenceStartEvent) else "map"
            tag = event.tag
            if tag is None or tag == "!":
                tag = SEQ if kind == "seq" else MAP
            node = self._node(kind, tag, event)
            node.flow = bool(event.flow_style)
            self._anchor(node, event.anchor)
            if event.anchor is not None:
                self.open_anchors.add(event.anchor)
            if len(self.stack) >= MAX_DEPTH:
                raise self.fail(node.line, f"nested more than {MAX_DEPTH} levels deep")
            self.stack.append(node)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            node = self.stack.pop()
            node.end = _mark(event, "end_mark").index
            self._done(node)


def parse_tree(text: str, where: str) -> Node | None:
    """The one document in ``text`` as a Node tree (None when it has none)."""
    import yaml

    # libyaml (10-20x faster) counts offsets in bytes; they are characters only for ASCII.
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if text.isascii() else yaml.SafeLoader
    loader = None
    try:
        loader = loader_class(text)  # the pure reader checks for control characters here
        composer = _Composer(text, where, loader)
        while loader.check_event():
            composer.feed(loader.get_event())
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, where) from None
    finally:
        if loader is not None:
            loader.dispose()
    return composer.root


class _Builder:
    """Node tree → plain data. Aliases share the object they name, so memory stays bounded."""

    def __init__(self, where: str) -> None:
        import yaml.constructor

        self.where = where
        self.scalars = yaml.constructor.SafeConstructor()
        self.built: dict[int, Any] = {}

    def fail(self, node: Node, problem: str) -> UserInputError:
        return UserInputError(f"{self.where}:{node.line}: {problem}")

    def build(self, written: Node) -> Any:
        node = written.resolved
        if id(node) in self.built:
            return self.built[id(node)]
        if node.kind == "scalar":
            data = self._scalar(node)
        elif node.kind == "seq":
            if node.tag != SEQ:
                raise self.fail(node, f"unsupported tag {node.tag!r} on a sequence")
            data = [self.build(child) for child in node.children]
        else:
            data = self._mapping(node)
        self.built[id(node)] = data
        return data

    def _scalar(self, node: Node) -> Any:
        import yaml

        if node.tag == MERGE:  # '<<' anywhere but as a key is just text
            return node.value
        try:
            return self.scalars.construct_object(yaml.ScalarNode(node.tag, node.value, style=node.style), deep=True)
        except (yaml.YAMLError, ValueError, OverflowError, TypeError) as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            raise self.fail(node, f"invalid value {node.value[:40]!r}: {' '.join(problem.split())[:200]}") from None

    def _mapping(self, node: Node) -> dict[Any, Any]:
        if node.tag != MAP:
            raise self.fail(node, f"unsupported tag {node.tag!r} on a mapping")
        out: dict[Any, Any] = {}
        lines: dict[Any, int] = {}
        merged: list[dict[Any, Any]] = []
        for key_node, value_node in node.pairs:
            key = key_node.resolved
            if key.kind != "scalar":
                raise self.fail(key_node, "a mapping key must be a plain value, not a list or mapping")
            if key.tag == MERGE:
                if "<<" in lines:
                    raise self.fail(key_node, f"merge key << appears twice (first on line {lines['<<']})")
                lines["<<"] = key_node.line
                merged.extend(self._merge_sources(value_node))
                continue
            name = self.build(key_node)
            if name in lines:
                raise self.fail(key_node, f"key {name!r} appears twice (first on line {lines[name]})")
            lines[name] = key_node.line
            out[name] = self.build(value_node)
        # Merge keys: explicit keys win, then earlier sources over later ones.
        for source in reversed(merged):
            for name, value in source.items():
                if name not in lines:
                    out[name] = value
        return out

    def _merge_sources(self, value_node: Node) -> list[dict[Any, Any]]:
        value = value_node.resolved
        items = value.children if value.kind == "seq" else [value_node]
        sources = []
        for item in items:
            data = self.build(item)
            if not isinstance(data, dict):
                raise self.fail(item, "merge key << takes a mapping or a list of mappings")
            sources.append(data)
        return sources


def to_data(root: Node | None, where: str) -> Any:
    """Plain data (dicts, lists, scalars) of ``root``; None for an empty document."""
    return None if root is None else _Builder(where).build(root)
