"""A container's file system in memory, and a Transport that applies syncs to it.

It follows the rules the real engine follows, so tests can say what a sync does without a
Docker engine, and property tests can check where every write lands:

- tar extraction as Docker's archive API does it (``put_archive`` at ``/``): folders above a
  member are created when missing (following symbolic links on the way, as the kernel does);
  an existing entry is replaced unless both are folders (a folder member replaces a link);
  a link member is written as a link, never through one;
- deletions as the guarded delete script does them: skipped when a folder between the rule's
  destination and the path is a link, else ``rm -rf`` of the path (not following a final
  link).

Every write and every removal is recorded with its *resolved* location.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field

from devmesh.sync.archive import Archive
from devmesh.sync.changes import Deletion
from devmesh.sync.transport import DELETE_SCRIPT, Target, TargetGone, TransportError

assert "rm -rf" in DELETE_SCRIPT  # the model below mirrors that script


@dataclass
class Node:
    kind: str  # dir, file, link
    data: bytes = b""
    target: str = ""
    mode: int = 0o755


class LoopError(Exception):
    pass


@dataclass
class ContainerFS:
    """Paths are absolute, normalised, without a trailing slash ("/" is the root)."""

    nodes: dict[str, Node] = field(default_factory=lambda: {"/": Node("dir")})
    writes: list[str] = field(default_factory=list)  # resolved locations written
    removals: list[str] = field(default_factory=list)  # resolved locations removed

    # --- building ---------------------------------------------------------------------------

    def mkdir(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            self.nodes.setdefault("/" + "/".join(parts[:i]), Node("dir"))

    def put(self, path: str, node: Node) -> None:
        self.mkdir(posixpath.dirname(path))
        self.nodes[path] = node

    # --- resolution -------------------------------------------------------------------------

    def resolve(self, path: str, *, follow_last: bool = True, depth: int = 0) -> str:
        """``path`` with every link followed (the last one only with ``follow_last``);
        components that do not exist are kept as they are."""
        if depth > 40:
            raise LoopError(path)
        parts = [p for p in path.split("/") if p]
        current = "/"
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == ".":
                continue
            if part == "..":
                current = posixpath.dirname(current) if current != "/" else "/"
                continue
            candidate = posixpath.join(current, part)
            node = self.nodes.get(candidate)
            if node is not None and node.kind == "link" and (follow_last or not last):
                target = node.target if node.target.startswith("/") else posixpath.join(current, node.target)
                current = self.resolve(target, depth=depth + 1)
            else:
                current = candidate
        return current

    def is_link(self, path: str) -> bool:
        """``[ -L path ]``: the parents are followed, the last component is not."""
        try:
            where = self.resolve(path, follow_last=False)
        except LoopError:
            return False
        node = self.nodes.get(where)
        return node is not None and node.kind == "link"

    def _remove_tree(self, where: str) -> None:
        for key in [k for k in self.nodes if k == where or k.startswith(where.rstrip("/") + "/")]:
            if key != "/":
                del self.nodes[key]
        self.removals.append(where)

    # --- what the engine does -----------------------------------------------------------------

    def extract(self, data: bytes) -> None:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar.getmembers():
                name = "/" + member.name.lstrip("/")
                if ".." in name.split("/"):
                    raise TransportError(f"breakout: {member.name}")  # what Docker refuses
                parent = self.resolve(posixpath.dirname(name))
                if self.nodes.get(parent) is None:
                    self.mkdir(parent)
                    self.writes.append(parent)
                elif self.nodes[parent].kind != "dir":
                    raise TransportError(f"not a directory: {parent}")
                where = posixpath.join(parent, posixpath.basename(name))
                existing = self.nodes.get(where)
                if member.isdir():
                    if existing is not None and existing.kind != "dir":
                        self._remove_tree(where)
                    if existing is None or existing.kind != "dir":
                        self.nodes[where] = Node("dir")
                    self.writes.append(where)
                    continue
                if existing is not None:
                    self._remove_tree(where)
                if member.issym():
                    self.nodes[where] = Node("link", target=member.linkname)
                else:
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    self.nodes[where] = Node("file", extracted.read(), mode=member.mode)
                self.writes.append(where)

    def delete(self, dest: str, path: str) -> bool:
        """One (dest, path) pair of the delete script; False when it refuses."""
        if not path.startswith(dest.rstrip("/") + "/") or path == dest:
            return False
        rest = path[len(dest.rstrip("/")) + 1:].split("/")
        at = dest.rstrip("/")
        for part in rest[:-1]:
            at = f"{at}/{part}"
            if self.is_link(at):
                return False
        try:
            where = self.resolve(path, follow_last=False)
        except LoopError:
            return True
        if where in self.nodes:
            self._remove_tree(where)
        return True

    # --- reading ------------------------------------------------------------------------------

    def read(self, path: str) -> bytes | None:
        node = self.nodes.get(self.resolve(path))
        return node.data if node is not None and node.kind == "file" else None

    def kind(self, path: str) -> str | None:
        node = self.nodes.get(path)
        return node.kind if node is not None else None


@dataclass
class FakeContainer:
    name: str
    fs: ContainerFS = field(default_factory=ContainerFS)
    state: str = "running"
    restarts: int = 0
    signals: list[str] = field(default_factory=list)
    commands: list[tuple[str, ...]] = field(default_factory=list)


class FakeTransport:
    """The Transport protocol over in-memory containers; failures can be injected."""

    name = "fake"

    def __init__(self, containers: Sequence[FakeContainer] = ()) -> None:
        self.containers = {c.name: c for c in containers}
        self.fail_next: list[BaseException] = []
        self.applied = 0

    def targets(self, env: str, service: str) -> list[Target]:
        return [Target(c.name, c.name, service, env, c.state) for c in self.containers.values()]

    def _get(self, target: Target) -> FakeContainer:
        found = self.containers.get(target.name)
        if found is None:
            raise TargetGone(f"container {target.name} is gone")
        return found

    def apply(self, target: Target, archive: Archive | None, deletions: Sequence[Deletion]) -> None:
        container = self._get(target)
        if self.fail_next:
            raise self.fail_next.pop(0)
        refused = [d for d in deletions if not container.fs.delete(str(d.dest), str(d.path))]
        if archive is not None:
            container.fs.extract(archive.read_all())
        self.applied += 1
        if refused:
            raise TransportError(f"not removing {refused[0].path}: a symbolic link on the way")

    def restart(self, target: Target) -> None:
        container = self._get(target)
        container.restarts += 1
        container.state = "running"

    def signal(self, target: Target, signal: str) -> None:
        self._get(target).signals.append(signal)

    def run(self, target: Target, argv: Sequence[str]) -> None:
        self._get(target).commands.append(tuple(argv))
