"""A tier's ``kustomization.yaml`` read: its ``images:`` entries, each with the lines it came
from, and what kustomize would apply for each. Anything devmesh cannot read safely is a
UserInputError naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devmesh.errors import UserInputError
from devmesh.gitops.yamltree import MERGE, Node, parse_tree, to_data

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
        pair = find_pair(self.node, key)
        return pair[0].line if pair else self.line


@dataclass(frozen=True)
class TierFile:
    """A tier file as read: its text, YAML tree, data and ``images:`` entries."""

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


def find_pair(mapping: Node, key: str) -> tuple[Node, Node] | None:
    """The (key, value) nodes of ``key`` written in ``mapping`` itself (not through a merge key)."""
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
    images_pair = find_pair(root.resolved, "images")
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
