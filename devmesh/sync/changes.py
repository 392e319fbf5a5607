"""Change sets and the sync plans they turn into.

A change set records which paths (relative to the build context) were added, modified or
deleted since the last successful sync; bursts — an editor's save, a ``git checkout`` — merge
into one. Turning it into a plan reads the file system *now*, so the plan describes the final
state: a path that exists is uploaded (a folder with everything in it), one that is gone is
deleted in the container. Renames need nothing special: the old path is gone, the new one
exists.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from devmesh.sync.rules import Rule, ServiceSources, UnsafePath, clean_relative, inside

ChangeKind = Literal["added", "modified", "deleted"]
UploadKind = Literal["file", "dir", "symlink"]


@dataclass
class ChangeSet:
    """What happened to which paths since the last sync (paths relative to the context)."""

    kinds: dict[str, set[ChangeKind]] = field(default_factory=dict)

    def add(self, path: str, kind: ChangeKind) -> None:
        self.kinds.setdefault(path, set()).add(kind)

    def merge(self, other: ChangeSet) -> None:
        for path, kinds in other.kinds.items():
            self.kinds.setdefault(path, set()).update(kinds)

    def discard(self, paths: Iterable[str]) -> None:
        for path in paths:
            self.kinds.pop(path, None)

    def clear(self) -> None:
        self.kinds.clear()

    def __len__(self) -> int:
        return len(self.kinds)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.kinds))


@dataclass(frozen=True)
class Upload:
    """One tar member: ``path`` in the container; ``local`` is read for a file."""

    path: PurePosixPath
    kind: UploadKind
    mode: int = 0o644
    mtime: float = 0.0
    local: Path | None = None
    link: str = ""


@dataclass(frozen=True)
class Deletion:
    """Remove ``path`` in the container; ``dest`` is its rule's destination, the folder above
    which nothing may be a symbolic link when the deletion happens."""

    path: PurePosixPath
    dest: PurePosixPath


@dataclass(frozen=True)
class Refusal:
    path: str  # as given (relative to the context)
    reason: str


@dataclass(frozen=True)
class SyncPlan:
    """What one change set calls for: a rebuild, or uploads and deletions (refusals aside)."""

    uploads: tuple[Upload, ...] = ()
    deletions: tuple[Deletion, ...] = ()
    refused: tuple[Refusal, ...] = ()
    rebuild: tuple[tuple[str, str], ...] = ()  # (path, why)
    handled: tuple[str, ...] = ()  # the change set's paths this plan accounts for

    @property
    def files(self) -> int:
        """Files and links written (folders are bookkeeping)."""
        return sum(1 for u in self.uploads if u.kind != "dir")

    @property
    def empty(self) -> bool:
        return not (self.uploads or self.deletions or self.rebuild)


def _mode(st: os.stat_result) -> int:
    # As the build normalises the context: 0755 when any execute bit is set, else 0644.
    return 0o755 if st.st_mode & 0o111 else 0o644


class _Planner:
    def __init__(self, sources: ServiceSources) -> None:
        self.sources = sources
        self.uploads: dict[PurePosixPath, Upload] = {}
        self.deletions: dict[PurePosixPath, Deletion] = {}
        self.refused: list[Refusal] = []
        self.rebuild: list[tuple[str, str]] = []

    def refuse(self, path: str, reason: str) -> None:
        self.refused.append(Refusal(path, reason))

    def add_parents(self, rule: Rule, rel: str, path: PurePosixPath) -> None:
        """A folder member for each folder between the destination and ``path``: extracting
        one replaces a symbolic link the container may hold there by a real folder, so that
        nothing below is written through it."""
        parent = path.parent
        rel_parent = PurePosixPath(rel).parent
        while parent != rule.dest and inside(parent, rule.dest):
            if parent not in self.uploads:
                try:
                    mtime = os.lstat(self.sources.context / rel_parent).st_mtime
                except OSError:
                    mtime = 0.0
                self.uploads[parent] = Upload(parent, "dir", 0o755, mtime)
            parent, rel_parent = parent.parent, rel_parent.parent

    def add_existing(self, rule: Rule, rel: str, st: os.stat_result, walk: bool) -> None:
        path = rule.target(rel)
        local = self.sources.context / rel
        upload: Upload | None
        if stat.S_ISREG(st.st_mode):
            upload = Upload(path, "file", _mode(st), st.st_mtime, local)
        elif stat.S_ISLNK(st.st_mode):
            try:
                link = self.sources.link_target(rule, rel, os.readlink(local))
            except UnsafePath as exc:
                self.refuse(rel, str(exc))
                return
            except OSError:
                return  # gone since: its deletion event follows
            upload = Upload(path, "symlink", 0o777, st.st_mtime, link=link)
        elif stat.S_ISDIR(st.st_mode):
            if path != rule.dest:
                upload = Upload(path, "dir", 0o755, st.st_mtime)
            else:
                upload = None  # the destination itself is trusted as it is
            if walk:
                self.walk(rule, rel)
            if upload is None:
                return
        else:
            return  # sockets, FIFOs, devices: never synced (nor sent to the builder)
        self.uploads[path] = upload
        self.add_parents(rule, rel, path)

    def walk(self, rule: Rule, rel: str) -> None:
        """Everything below a new folder: inotify misses what is created before the watch on
        the folder is in place, and a folder moved in reports only itself."""
        try:
            with os.scandir(self.sources.context / rel) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            child = f"{rel}/{entry.name}"
            if self.sources.ignored(child):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            covered = self.sources.rule_for(child)
            if covered is None:
                continue
            self.add_existing(covered, child, st, walk=True)

    def add(self, raw: str, kinds: set[ChangeKind]) -> None:
        try:
            rel = clean_relative(raw)
        except UnsafePath as exc:
            self.refuse(raw, str(exc))
            return
        what = self.sources.classify(rel)
        if what == "ignored":
            return
        if what == "rebuild":
            self.rebuild.append((rel, self.sources.rebuild_reason(rel)))
            return
        rule = self.sources.rule_for(rel)
        assert rule is not None  # classify() said "sync"
        try:
            path = rule.target(rel)
        except UnsafePath as exc:
            self.refuse(rel, str(exc))
            return
        link = self.sources.through_link(rel)
        if link is not None:
            self.refuse(rel, f"it lies below {link}, a symbolic link (links are not followed)")
            return
        try:
            st: os.stat_result | None = os.lstat(self.sources.context / rel)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        if st is None:
            if path == rule.dest:
                self.refuse(rel, f"the sync source itself is gone; {rule.dest} is left as it is")
            else:
                self.deletions[path] = Deletion(path, rule.dest)
            return
        if stat.S_ISDIR(st.st_mode) and "deleted" in kinds and path != rule.dest:
            # Something was here before the folder: clear it, then send the folder whole.
            self.deletions[path] = Deletion(path, rule.dest)
        self.add_existing(rule, rel, st, walk="added" in kinds or "deleted" in kinds)

    def plan(self, changes: ChangeSet) -> SyncPlan:
        for raw in changes:
            self.add(raw, changes.kinds[raw])
        # Parents before children; a deletion below another deletion is redundant.
        uploads = sorted(self.uploads.values(), key=lambda u: u.path.parts)
        deletions: list[Deletion] = []
        for d in sorted(self.deletions.values(), key=lambda d: d.path.parts):
            if not any(inside(d.path, kept.path) for kept in deletions):
                deletions.append(d)
        return SyncPlan(tuple(uploads), tuple(deletions), tuple(self.refused),
                        tuple(self.rebuild), tuple(changes))


def plan_sync(sources: ServiceSources, changes: ChangeSet) -> SyncPlan:
    """The plan for ``changes``, from the file system as it is now."""
    return _Planner(sources).plan(changes)
