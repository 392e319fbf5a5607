"""YAML files of the manifest repo: bounded reading, writing new files, and round-trip edits
that keep a file's comments, key order, quoting and indentation (tier files are edited as
text instead: see the tierfile package)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from devmesh.errors import UserInputError
from devmesh.gitops.yamltree import MAX_BYTES, decode, parse_tree, to_data

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


def read_data(path: Path, display: str) -> Any:
    """Plain data from a YAML file, for reading only, through the bounded loader."""
    return read_tree(path, display)[1]


def read_tree(path: Path, display: str) -> tuple[str, Any]:
    """(text, data) of ``path``: its size, nesting and aliases bounded, errors naming the line."""
    text = read_text(path, display)
    return text, to_data(parse_tree(text, display), display)


def read_text(path: Path, display: str) -> str:
    """The text of ``path`` exactly as stored (no newline translation), bounded in size."""
    with path.open("rb") as handle:
        raw = handle.read(MAX_BYTES + 1)  # never more than the limit in memory
    if len(raw) > MAX_BYTES:
        raise UserInputError(f"{display}: larger than {MAX_BYTES // 1024} KiB; not a file devmesh reads")
    return decode(raw, display)


def dump(data: Any, yaml: YAML | None = None, header: str = "") -> str:
    out = io.StringIO()
    (yaml or round_trip_yaml()).dump(data, out)
    return header + out.getvalue()


def write_file(path: Path, data: Any, yaml: YAML | None = None, header: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump(data, yaml, header), encoding="utf-8")


def documents_text(docs: list[Any], header: str = "") -> str:
    """Several YAML documents as one file's text, ``---`` between them."""
    return header + "---\n".join(dump(doc) for doc in docs)


def write_documents(path: Path, docs: list[Any], header: str = "") -> None:
    """Several YAML documents in one file, ``---`` between them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(documents_text(docs, header), encoding="utf-8")
