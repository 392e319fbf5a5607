"""Round-trip YAML: edits keep a file's comments, key order, quoting and indentation."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from devmesh.errors import UserInputError

_SEQ_ITEM = re.compile(r"^( *)- ")
_KEY = re.compile(r"^( *)[^\s#-][^:]*:(\s|$)")


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as the file already uses them."""
    mapping = 2
    lines = text.splitlines()
    for i, line in enumerate(lines):
        key = _KEY.match(line)
        if key and line.rstrip().endswith(":") and i + 1 < len(lines):
            nxt = lines[i + 1]
            child = _KEY.match(nxt)
            if child and len(child.group(1)) > len(key.group(1)):
                mapping = len(child.group(1)) - len(key.group(1))
                break
    for i, line in enumerate(lines):
        key = _KEY.match(line)
        if key and line.rstrip().endswith(":") and i + 1 < len(lines):
            item = _SEQ_ITEM.match(lines[i + 1])
            if item:
                offset = len(item.group(1)) - len(key.group(1))
                return mapping, offset + 2, offset
    return mapping, mapping + 2, mapping


def round_trip_yaml(text: str = "") -> YAML:
    """A ruamel loader/dumper set to the indentation ``text`` uses (2/4/2 for new files)."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = _guess_indent(text) if text else (2, 4, 2)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _fast_loader() -> type:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_data(path: Path, display: str) -> Any:
    """Plain data from a YAML file, for reading only (libyaml when present: 10-20x faster)."""
    import yaml

    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_fast_loader())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{display}:{mark.line + 1}" if mark is not None else display
        raise UserInputError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None


def compose(text: str) -> Any:
    """The node graph of ``text``, with each node's character offsets (for in-place splices)."""
    import yaml

    # libyaml's offsets are only trusted for ASCII text; the pure loader counts characters.
    loader = _fast_loader() if text.isascii() else yaml.SafeLoader
    return yaml.compose(text, Loader=loader)


def load_file(path: Path, display: str) -> tuple[Any, YAML]:
    """Load ``path`` for editing; the YAML object dumps it back in the same style."""
    text = path.read_text(encoding="utf-8")
    yaml = round_trip_yaml(text)
    try:
        return yaml.load(text), yaml
    except Exception as exc:  # ruamel raises several unrelated types for bad input
        raise UserInputError(f"{display}: invalid YAML: {exc}".splitlines()[0]) from None


def dump(data: Any, yaml: YAML | None = None, header: str = "") -> str:
    out = io.StringIO()
    (yaml or round_trip_yaml()).dump(data, out)
    return header + out.getvalue()


def write_file(path: Path, data: Any, yaml: YAML | None = None, header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(data, yaml, header), encoding="utf-8")
