"""Reading devmesh's YAML files (``devmesh.yaml`` and presets): one document, bounded in size
and depth, turned into plain data with the 1-based line of every key and list item.

The bounds make a hostile file fail fast with a one-line error instead of exhausting memory or
the stack: aliases may not expand the document past :data:`MAX_VALUES` values (the "billion
laughs"), nor refer to the node that contains them; nesting stops at :data:`MAX_DEPTH` levels;
integers stop at :data:`MAX_DIGITS` digits (Python refuses to convert ones past 4,300).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import Node, ScalarNode
from ruamel.yaml.reader import ReaderError

from devmesh.config.diagnostics import Loc, describe, dotted, line_for
from devmesh.errors import ConfigError

MAX_VALUES = 100_000
MAX_DEPTH = 100
MAX_DIGITS = 100

_INT_TAG = "tag:yaml.org,2002:int"


class _LimitError(MarkedYAMLError):
    """A document beyond devmesh's bounds; its problem is the whole message."""


def _too_much(problem: str, mark: Any) -> _LimitError:
    return _LimitError(None, None, problem, mark)


class _BoundedComposer(Composer):
    """ruamel's composer, counting the values aliases expand to and the nesting depth.

    Each anchored node's expanded size is known once it is composed; an alias adds that size to
    the running total, so the total is the size of the fully expanded document without ever
    expanding it. An alias to an anchored node still being composed is a recursive alias.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._values = 0
        self._sizes: dict[int, int] = {}  # id of a finished anchored node → its expanded size

    def _grow(self, by: int, mark: Any) -> None:
        self._values += by
        if self._values > MAX_VALUES:
            raise _too_much(
                f"aliases expand the file to more than {MAX_VALUES} values; devmesh reads at "
                "most that many", mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is ruamel's error to report
                size = self._sizes.get(id(target))
                if size is None:
                    raise _too_much(
                        f"alias *{event.anchor} is used inside the node it names (a recursive "
                        "alias); devmesh does not read recursive data", event.start_mark)
                self._grow(size, event.start_mark)
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise _too_much(
                f"nested more than {MAX_DEPTH} levels deep; devmesh reads at most {MAX_DEPTH}",
                event.start_mark)
        self._grow(1, event.start_mark)
        before = self._values - 1
        node: Node = super().compose_node(parent, index)
        if isinstance(node, ScalarNode) and getattr(node.tag, "value", node.tag) == _INT_TAG:
            digits = sum(ch.isdigit() for ch in str(node.value))
            if digits > MAX_DIGITS:
                raise _too_much(
                    f"a number with {digits} digits; devmesh reads numbers of at most "
                    f"{MAX_DIGITS} digits (quote it if it is text)", node.start_mark)
        if getattr(event, "anchor", None) is not None:
            self._sizes[id(node)] = self._values - before
        return node


class _MarkedConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor; a value it cannot build (a timestamp such as
    ``2024-13-45``) becomes a YAML error at that value's line instead of a bare ValueError."""

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        try:
            return super().construct_non_recursive_object(node, tag)
        except YAMLError:
            raise
        except (ValueError, TypeError, OverflowError, ArithmeticError) as exc:
            value = node.value if isinstance(node.value, str) else ""
            raise _too_much(
                f"invalid YAML: cannot read the value {json.dumps(value)} ({exc})",
                node.start_mark) from None


def read_text(path: Path, display: str) -> str:
    """The UTF-8 text of a YAML file; a file that is not UTF-8 is a ConfigError at the line of
    its first bad byte. OSErrors (a missing file) are left to the caller."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            display, line, None, f"not UTF-8 text ({exc.reason}); save the file as UTF-8"
        ) from None


def _key_line(node: Any, key: Any) -> int | None:
    """The 1-based line of ``key`` in a ruamel mapping, following ``<<`` merges."""
    pos = node.lc.data.get(key) if isinstance(node.lc.data, dict) else None
    if pos:
        return int(pos[0]) + 1
    for source in getattr(node, "merge", None) or ():
        if isinstance(source, tuple):  # older ruamel: (position, mapping)
            source = source[-1]
        if hasattr(source, "lc") and key in source:
            return _key_line(source, key)
    return None


def _plain(node: Any, loc: Loc, lines: dict[Loc, int], display: str) -> Any:
    """Turn ruamel's round-trip nodes into plain data, noting each key's 1-based line.

    Every key in devmesh's files is a name, so a key YAML reads as something else (``true:``,
    ``null:``, ``1:``) is an error at its own line rather than a confusing one later.
    """
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key in node:
            line = _key_line(node, key)
            if not isinstance(key, str):
                shown = describe(key)
                hint = (f"; quote it ({json.dumps(shown)}) to use it as one"
                        if key is None or isinstance(key, (bool, int, float)) else "")
                raise ConfigError(display, line or line_for(loc, lines), dotted((*loc, shown)),
                                  f"expected a name, got {shown}{hint}")
            sub = (*loc, str(key))
            if line is not None:
                lines[sub] = line
            out[str(key)] = _plain(node[key], sub, lines, display)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, item in enumerate(node):
            sub = (*loc, i)
            lines[sub] = node.lc.item(i)[0] + 1
            items.append(_plain(item, sub, lines, display))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


# What an unclosed construct is called, by the parser's context.
_UNCLOSED = {
    "while parsing a flow sequence": "a '[' list",
    "while parsing a flow mapping": "a '{' mapping",
    "while scanning a quoted scalar": "a quoted string",
}


def _unclosed_bracket(text: str) -> tuple[str, int] | None:
    """The first '[' or '{' never closed in ``text`` (outside quotes and comments), and its line."""
    stack: list[tuple[str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        quote = ""
        for i, ch in enumerate(line):
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "'\"" and (i == 0 or line[i - 1] in " \t[{,:"):
                quote = ch
            elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
                break
            elif ch in "[{":
                stack.append((ch, number))
            elif ch in "]}" and stack:
                stack.pop()
    return stack[0] if stack else None


def _yaml_problem(exc: Any, text: str) -> tuple[int | None, str]:
    """A YAML syntax error as (line, what is wrong), in words a user can act on."""
    problem = str(exc.problem or exc.context or "invalid YAML")
    context = str(exc.context or "")
    pline = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
    cline = exc.context_mark.line + 1 if exc.context_mark is not None else None
    if isinstance(exc, _LimitError):
        return pline, problem
    line, words = _problem_words(problem, context, pline, cline, text)
    return line, f"invalid YAML: {words}"


def _problem_words(problem: str, context: str, pline: int | None, cline: int | None,
                   text: str) -> tuple[int | None, str]:
    if "'\\t'" in problem:
        return pline, "a tab character where YAML expects spaces; indent with spaces only"
    at_end = "<stream end>" in problem or "end of stream" in problem
    if at_end and "flow" in context:
        opener = _unclosed_bracket(text)
        if opener is not None:
            what = _UNCLOSED["while parsing a flow sequence" if opener[0] == "[" else "while parsing a flow mapping"]
            return opener[1], f"{what} starts here and is never closed"
    if at_end and context in _UNCLOSED:
        return cline or pline, f"{_UNCLOSED[context]} starts here and is never closed"
    duplicate = re.search(r'found duplicate key "([^"]*)"', problem)
    if duplicate:
        return pline, f"duplicate key {json.dumps(duplicate.group(1))}; each key may appear once"
    if "found another document" in problem:
        return pline, "a second document ('---'); the file must hold exactly one"
    if "mapping values are not allowed here" in problem:
        return pline, "mapping values are not allowed here; quote a value that contains ': '"
    if "found undefined alias" in problem:
        return pline, problem.replace("found undefined alias", "undefined alias")
    if context and cline is not None and cline != pline:
        return pline, f"{problem} ({context.removeprefix('while ')} that starts on line {cline})"
    return pline or cline, " ".join(problem.split())


def parse_yaml(text: str, display: str) -> tuple[Any, dict[Loc, int]]:
    """Parse YAML text into plain data and the line of each key; any problem, syntax or
    bounds, is a ConfigError with its line."""
    yaml = YAML(typ="rt")
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _MarkedConstructor
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        line, problem = _yaml_problem(exc, text)
        raise ConfigError(display, line, None, problem) from exc
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(exc.position, int) else None
        code = exc.character if isinstance(exc.character, int) else 0
        raise ConfigError(display, line, None,
                          f"invalid YAML: the character U+{code:04X} is not allowed in a YAML "
                          "file (only printable text is)") from exc
    except YAMLError as exc:
        raise ConfigError(display, None, None, f"invalid YAML: {' '.join(str(exc).split())}") from exc
    except RecursionError:  # a bound above should come first; never a traceback regardless
        raise ConfigError(display, None, None,
                          f"nested too deeply; devmesh reads at most {MAX_DEPTH} levels") from None
    lines: dict[Loc, int] = {}
    return _plain(data, (), lines, display), lines
