"""`.dockerignore`: which files of a build context Docker sends, by Docker's own rules.

The rules, as the Docker CLI applies them (``docker build``, not docker-py, whose matcher
differs, e.g. it ignores case):

- a line starting with ``#`` (in column 1) is a comment; other lines are trimmed, and blank
  lines are skipped;
- ``!`` makes an exception: the *last* line that matches a path decides whether it is sent;
- a pattern is cleaned like Go's ``filepath.Clean`` and a leading ``/`` is dropped, so
  ``/foo``, ``./foo`` and ``foo/`` all mean ``foo``; ``.`` is ignored;
- globs follow Go's ``filepath.Match``: ``*`` and ``?`` never cross ``/``, ``[a-z]`` is a
  class negated with ``^``, ``\\`` escapes the next character; in addition ``**`` matches any
  number of directories (including none) and a trailing ``**`` matches everything below;
- a pattern excludes a path when it matches the path itself or any of its parent
  directories, so ``node_modules`` excludes everything under it;
- an excluded directory is not even walked unless an exception pattern starts with its path
  (``build`` + ``!build/keep.txt`` sends ``build/keep.txt``; ``!**/keep.txt`` does not reach
  into an excluded ``build``), exactly as Docker does;
- ``.dockerignore`` and the Dockerfile are always sent, even when excluded (the builder
  reads them, then drops them from what ``COPY`` sees).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devmesh.errors import UserInputError

IGNORE_FILE = ".dockerignore"


def clean_path(path: str) -> str:
    """Go's ``path.Clean``: drop empty and ``.`` parts, resolve ``..``; ``""`` becomes ``.``."""
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_patterns(text: str) -> list[tuple[int, str]]:
    """The patterns of a ``.dockerignore`` text as (line number, pattern), as Docker reads them.

    Exceptions keep their ``!``; patterns are cleaned and lose a leading ``/``.
    """
    patterns: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if number == 1:
            raw = raw.removeprefix("\ufeff")
        if raw.startswith("#"):
            continue
        pattern = raw.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append((number, "!" + pattern if invert else pattern))
    return patterns


_Kind = Literal["exact", "prefix", "suffix", "regex"]


def _class_end(pattern: str, start: int) -> int:
    """The index of the ``]`` closing the class that opens at ``pattern[start] == '['``, or -1."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    first = True
    while i < len(pattern):
        ch = pattern[i]
        if ch == "]" and not first:
            return i
        if ch == "]":
            return -1  # "[]" and "[^]" are malformed in Go's filepath.Match
        if ch == "\\":
            i += 1
        first = False
        i += 1
    return -1


def _class_regex(body: str) -> str:
    """A ``filepath.Match`` class body (without brackets) as a Python regex class."""
    negate = body.startswith("^")
    if negate:
        body = body[1:]
    items: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            i += 1
            ch = body[i]
        if i + 2 < len(body) and body[i + 1] == "-":
            hi = body[i + 2]
            j = i + 2
            if hi == "\\" and j + 1 < len(body):
                j += 1
                hi = body[j]
            if hi < ch:
                raise ValueError(f"character range {ch}-{hi} runs backwards")
            items.append(f"{re.escape(ch)}-{re.escape(hi)}")
            i = j + 1
            continue
        items.append(re.escape(ch))
        i += 1
    return "[" + ("^" if negate else "") + "".join(items) + "]"


@dataclass(frozen=True)
class Pattern:
    """One cleaned pattern; ``exclusion`` for a ``!`` line (it re-includes what it matches)."""

    text: str
    exclusion: bool
    line: int
    kind: _Kind
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, text: str, exclusion: bool, line: int = 0) -> Pattern:
        """Translate like Docker's pattern matcher; ValueError for a malformed pattern."""
        kind: _Kind = "exact"
        regex = "^"
        i, n = 0, len(text)
        while i < n:
            ch = text[i]
            if ch == "*":
                if i + 1 < n and text[i + 1] == "*":
                    at_start = i == 0
                    i += 2
                    if i < n and text[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regex += ".*"
                            kind = "regex"
                    else:
                        regex += "(.*/)?"
                        kind = "regex"
                    if at_start:
                        kind = "suffix"
                    continue
                regex += "[^/]*"
                kind = "regex"
            elif ch == "?":
                regex += "[^/]"
                kind = "regex"
            elif ch == "\\":
                if i + 1 >= n:
                    raise ValueError("a trailing '\\' escapes nothing")
                i += 1
                regex += re.escape(text[i])
                kind = "regex"
            elif ch == "[":
                end = _class_end(text, i)
                if end < 0:
                    raise ValueError("'[' without a matching ']'")
                regex += _class_regex(text[i + 1:end])
                kind = "regex"
                i = end
            else:
                regex += re.escape(ch)
            i += 1
        compiled = re.compile(regex + r"\Z", re.DOTALL) if kind == "regex" else None
        return cls(text, exclusion, line, kind, compiled)

    def match(self, path: str) -> bool:
        """Whether the pattern matches ``path`` itself (a clean, relative, /-separated path)."""
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None


class IgnoreRules:
    """The patterns of one ``.dockerignore``, applied the way Docker applies them."""

    def __init__(self, patterns: Sequence[Pattern] = (), source: str = IGNORE_FILE) -> None:
        self.patterns = tuple(patterns)
        self.source = source
        self.has_exceptions = any(p.exclusion for p in self.patterns)

    @classmethod
    def parse(cls, text: str, source: str = IGNORE_FILE) -> IgnoreRules:
        """Rules from the text of a ``.dockerignore``; a malformed line is a UserInputError
        naming ``source`` and the line (Docker refuses such a file too)."""
        compiled: list[Pattern] = []
        for line, raw in read_patterns(text):
            exclusion = raw.startswith("!")
            body = raw[1:] if exclusion else raw
            if exclusion and not body:
                raise UserInputError(f"{source}:{line}: '!' needs a pattern after it")
            try:
                compiled.append(Pattern.compile(body, exclusion, line))
            except ValueError as exc:
                raise UserInputError(f"{source}:{line}: bad pattern {raw!r}: {exc}") from None
        return cls(compiled, source)

    @classmethod
    def read(cls, context: Path, source: str | None = None) -> IgnoreRules:
        """The rules of ``context/.dockerignore``; no file means no rules."""
        path = context / IGNORE_FILE
        try:
            text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return cls((), source or str(path))
        return cls.parse(text, source or str(path))

    def excludes(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, /-separated) is left out of the context."""
        path = clean_path(path)
        if path == ".":
            return False
        parent = path.rpartition("/")[0]
        parents = parent.split("/") if parent else []
        matched = False
        for pattern in self.patterns:
            # An exception only matters once something matched, an exclusion only until then.
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit:
                hit = any(pattern.match("/".join(parents[:i + 1])) for i in range(len(parents)))
            if hit:
                matched = not pattern.exclusion
        return matched

    def must_walk(self, directory: str) -> bool:
        """Whether an excluded ``directory`` must still be walked: an exception pattern starts
        with its path (Docker's literal prefix test, so wildcards do not reach inside)."""
        prefix = clean_path(directory) + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)

    def keeping(self, paths: Iterable[str]) -> IgnoreRules:
        """These rules plus an exception for each of ``paths`` they exclude — what the Docker
        CLI does for ``.dockerignore`` and the Dockerfile, which the builder always needs."""
        extra = [Pattern.compile(clean_path(p), True) for p in paths if self.excludes(p)]
        if not extra:
            return self
        return IgnoreRules((*self.patterns, *extra), self.source)


EntryKind = Literal["dir", "file", "symlink"]


@dataclass(frozen=True)
class ContextEntry:
    """One path Docker would send: a directory, a regular file or a symbolic link."""

    path: str  # relative to the context, /-separated
    kind: EntryKind
    mode: int  # st_mode
    size: int = 0
    mtime: float = 0.0
    target: str = ""  # for a symlink

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


def walk_context(context: Path, rules: IgnoreRules) -> list[ContextEntry]:
    """Every directory, regular file and symlink under ``context`` that ``rules`` let through,
    sorted by path. Symlinks are not followed; sockets, FIFOs and devices are left out."""
    entries: list[ContextEntry] = []

    def visit(directory: str, prefix: str) -> None:
        try:
            with os.scandir(directory) as it:
                items = sorted(it, key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            if not prefix:
                raise
            return  # removed while walking
        for item in items:
            rel = prefix + item.name
            try:
                is_dir = item.is_dir(follow_symlinks=False)
                if rules.excludes(rel):
                    if is_dir and rules.has_exceptions and rules.must_walk(rel):
                        visit(item.path, rel + "/")
                    continue
                st = item.stat(follow_symlinks=False)
                target = os.readlink(item.path) if stat.S_ISLNK(st.st_mode) else ""
            except FileNotFoundError:
                continue  # removed while walking (an editor's temporary file)
            if is_dir:
                entries.append(ContextEntry(rel, "dir", st.st_mode, 0, st.st_mtime))
                visit(item.path, rel + "/")
            elif stat.S_ISREG(st.st_mode):
                entries.append(ContextEntry(rel, "file", st.st_mode, st.st_size, st.st_mtime))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(ContextEntry(rel, "symlink", st.st_mode, 0, st.st_mtime, target))

    visit(str(context), "")
    entries.sort(key=lambda e: e.path)
    return entries
