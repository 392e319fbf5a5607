"""Which files of a service are synced, where each goes in the container, and what is refused.

A service's sources are its build context. Each sync rule maps ``src`` (a folder or a file in
the context) onto ``dest`` (an absolute path in the container); the most specific rule wins.
A changed path is

- *ignored* when it never reaches the image or only churns: VCS folders, ``__pycache__``,
  ``node_modules``, virtualenvs, editor swap and backup files, and what ``.dockerignore``
  leaves out (by Docker's own rules, see ``devmesh.dockerignore``);
- a *rebuild* trigger when it matches ``rebuild_on``, is the Dockerfile or ``.dockerignore``,
  or lies outside every sync rule (a file the image holds but no rule can place);
- *synced* otherwise.

Safety: a path is refused when it is empty, absolute or holds ``..``, when it reaches the
context through a symbolic link, and a symbolic link is refused when it points outside its
rule's source tree (lexically or once resolved on disk). Container paths are built only from
cleaned relative paths under a rule's ``dest``, and checked to lie inside it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from devmesh.dockerfile import read_image
from devmesh.dockerfile.infer import Inference, infer
from devmesh.dockerignore import IGNORE_FILE, IgnoreRules, Pattern, clean_path
from devmesh.errors import UserInputError

if TYPE_CHECKING:
    from devmesh.config import Project, ReloadAction

# Folders never synced, wherever they are: VCS data, dependency trees, virtualenvs, caches.
IGNORED_DIRS = frozenset({
    ".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".virtualenv",
    ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".idea",
})
# Files editors and interpreters write beside the sources: bytecode, vim swap files and its
# write probe "4913", backups ending in "~", emacs lock files, JetBrains' safe-write copies,
# macOS folder metadata.
_IGNORED_FILE = re.compile(r"(\.py[co]|\.sw[a-px]|~|___jb_[a-z]+___)$|^(\.#.*|4913|\.DS_Store)$")
VENV_MARKER = "pyvenv.cfg"

Classification = Literal["ignored", "rebuild", "sync"]


class UnsafePath(ValueError):
    """A path or link target that could place something outside a rule's destination."""


def clean_relative(path: str) -> str:
    """``path`` as a clean relative POSIX path (``a//./b`` → ``a/b``); UnsafePath when it is
    empty, absolute, holds ``..`` or a NUL character."""
    if "\0" in path:
        raise UnsafePath("the path holds a NUL character")
    if path.startswith("/"):
        raise UnsafePath("the path is absolute")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePath("the path holds '..'")
    if not parts:
        raise UnsafePath("the path is empty")
    return "/".join(parts)


def inside(path: PurePosixPath, root: PurePosixPath) -> bool:
    """Whether ``path`` is ``root`` or below it, lexically (both absolute, no ``..``)."""
    norm = PurePosixPath(os.path.normpath(str(path)))
    return norm == root or root in norm.parents


@dataclass(frozen=True)
class Rule:
    """One sync rule, resolved: ``src`` relative to the context ("" for all of it)."""

    src: str
    dest: PurePosixPath
    is_file: bool = False
    origin: str = ""  # where the rule was written: devmesh.yaml's field, or the Dockerfile's line

    def covers(self, rel: str) -> bool:
        if not self.src:
            return True
        return rel == self.src or (not self.is_file and rel.startswith(self.src + "/"))

    def inner(self, rel: str) -> str:
        """``rel`` relative to the rule's source ("" for the source itself)."""
        return rel[len(self.src):].lstrip("/") if self.src else rel

    def target(self, rel: str) -> PurePosixPath:
        """Where ``rel`` (covered by this rule, already clean) goes in the container."""
        inner = self.inner(rel)
        path = self.dest / inner if inner else self.dest
        if not inside(path, self.dest):  # cannot happen for a clean path; checked all the same
            raise UnsafePath(f"{path} lies outside {self.dest}")
        return path


def infer_service(project: Project, service: str, root: Path | None = None) -> Inference:
    """What the Dockerfile of ``service`` (in the checkout at ``root``) says about syncing it."""
    svc = project.services[service]
    base = (root if root is not None else project.root).resolve()
    context = (base / svc.context).resolve()
    path = (context / svc.dockerfile).resolve()
    try:
        shown = path.relative_to(base).as_posix()
    except ValueError:
        shown = str(path)
    return infer(read_image(path, context, build_args=svc.build_args, shown=shown), context)


def _compile_patterns(patterns: Iterable[str], service: str) -> tuple[Pattern, ...]:
    compiled = []
    for i, text in enumerate(patterns):
        cleaned = clean_path(text.strip()).lstrip("/") or "."
        try:
            compiled.append(Pattern.compile(cleaned, False))
        except ValueError as exc:
            raise UserInputError(
                f"services.{service}.rebuild_on[{i}]: bad pattern {text!r}: {exc}") from None
    return tuple(compiled)


def _matches(patterns: Iterable[Pattern], rel: str) -> bool:
    """A pattern matches the path itself or one of its parent folders (as in .dockerignore)."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(p.text == "." or p.match(c) for p in patterns for c in candidates)


@dataclass
class ServiceSources:
    """A service's sources on disk and how they map into its containers."""

    service: str
    context: Path  # absolute, resolved
    rules: tuple[Rule, ...]
    rebuild_on: tuple[Pattern, ...]
    ignore: IgnoreRules
    dockerfile: str | None  # relative to the context; None when it lies outside
    reload: ReloadAction | None = None
    inference: Inference | None = None  # when the rules were read from the Dockerfile
    _venvs: dict[str, bool] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, project: Project, service: str, root: Path | None = None) -> ServiceSources:
        """The sources of ``service`` in the checkout at ``root`` (default: the project's)."""
        svc = project.services[service]
        base = (root if root is not None else project.root).resolve()
        context = (base / svc.context).resolve()
        inference = None
        rebuild_on = list(svc.rebuild_on)
        given = [(r.src, r.dest, f"devmesh.yaml services.{service}.sync[{i}]")
                 for i, r in enumerate(svc.sync or ())]
        if svc.sync is None:
            inference = infer_service(project, service, base)
            given = [(r.src, r.dest, f"{inference.dockerfile}:{r.line}") for r in inference.rules]
            rebuild_on += [r.pattern for r in inference.rebuild_on if r.pattern not in rebuild_on]
        rules = []
        for src_text, dest, origin in given:
            src = clean_path(src_text)
            src = "" if src == "." else src
            rules.append(Rule(src, PurePosixPath(os.path.normpath(dest)),
                              (context / src).is_file() if src else False, origin))
        try:
            dockerfile: str | None = (context / svc.dockerfile).resolve().relative_to(context).as_posix()
        except ValueError:
            dockerfile = None
        ignore = IgnoreRules.read(context, source=(Path(svc.context) / IGNORE_FILE).as_posix())
        # Most specific first, so a rule for a sub-folder wins over one for the whole context.
        rules.sort(key=lambda r: -len(r.src.split("/")) if r.src else 0)
        return cls(service, context, tuple(rules), _compile_patterns(rebuild_on, service),
                   ignore, dockerfile, svc.reload, inference)

    # --- paths ------------------------------------------------------------------------------

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        """``path`` (absolute) relative to the context, or None when it lies outside it."""
        try:
            rel = Path(os.path.normpath(path)).relative_to(self.context)
        except ValueError:
            return None
        text = rel.as_posix()
        return None if text == "." else text

    def rule_for(self, rel: str) -> Rule | None:
        return next((r for r in self.rules if r.covers(rel)), None)

    def _in_venv(self, rel: str) -> bool:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            known = self._venvs.get(folder)
            if known is None:
                known = (self.context / folder / VENV_MARKER).is_file()
                if known:  # remembered, so the virtualenv's deletion is ignored too
                    self._venvs[folder] = True
            if known:
                return True
        return False

    def ignored(self, rel: str) -> bool:
        """Whether a change to ``rel`` (clean, relative to the context) is of no interest."""
        parts = rel.split("/")
        if any(p in IGNORED_DIRS for p in parts) or _IGNORED_FILE.search(parts[-1]):
            return True
        if rel in (IGNORE_FILE, self.dockerfile):
            return False  # always sent to the builder, even when .dockerignore names them
        return self.ignore.excludes(rel) or self._in_venv(rel)

    def classify(self, rel: str) -> Classification:
        """What a change to ``rel`` calls for (``rel`` clean and relative to the context)."""
        if self.ignored(rel):
            return "ignored"
        if rel in (IGNORE_FILE, self.dockerfile) or _matches(self.rebuild_on, rel):
            return "rebuild"
        return "sync" if self.rule_for(rel) is not None else "rebuild"

    def rebuild_reason(self, rel: str) -> str:
        """Why a change to ``rel`` rebuilds, in words."""
        if rel == self.dockerfile:
            return "the Dockerfile"
        if rel == IGNORE_FILE:
            return ".dockerignore"
        if _matches(self.rebuild_on, rel):
            return "matches rebuild_on"
        return "no sync rule covers it"

    def explain_rebuild(self, rel: str) -> str:
        """``rebuild_reason`` with where the trigger comes from."""
        reason = self.rebuild_reason(rel)
        if reason != "matches rebuild_on":
            if reason == "no sync rule covers it" and self.inference is not None and self.inference.notes:
                return f"{reason} ({'; '.join(self.inference.notes)})"
            return reason
        pattern = next(p for p in self.rebuild_on if _matches((p,), rel))
        found = next((r for r in self.inference.rebuild_on if r.pattern == pattern.text), None) \
            if self.inference is not None else None
        if found is not None:
            return (f"the RUN at {self.inference.dockerfile}:{found.run_line} may install from it "  # type: ignore[union-attr]
                    f"(copied at line {found.line})")
        return f"matches rebuild_on {pattern.text!r}"

    def ignore_reason(self, rel: str) -> str:
        """Why a change to ``rel`` is ignored (``ignored(rel)`` is true)."""
        parts = rel.split("/")
        folder = next((p for p in parts if p in IGNORED_DIRS), None)
        if folder is not None:
            return f"{folder}/ is never synced"
        if _IGNORED_FILE.search(parts[-1]):
            return "an editor's or interpreter's own file"
        if self.ignore.excludes(rel):
            return f"{self.ignore.source} leaves it out of the image"
        return "it lies in a virtualenv"

    # --- the local file system --------------------------------------------------------------

    def through_link(self, rel: str) -> str | None:
        """The first folder of ``rel`` (below the context) that is a symbolic link, if any."""
        parts = rel.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            try:
                mode = os.lstat(self.context / folder).st_mode
            except FileNotFoundError:
                return None  # gone: nothing below it exists either
            if stat.S_ISLNK(mode):
                return folder
            if not stat.S_ISDIR(mode):
                return None
        return None

    def link_target(self, rule: Rule, rel: str, target: str) -> str:
        """The target to give, in the container, a symbolic link found at ``rel`` with ``target``
        on disk: relative, and inside the rule's source tree. UnsafePath otherwise."""
        if rule.is_file or not rule.inner(rel):
            raise UnsafePath("the sync source itself is a symbolic link (links are not followed)")
        if "\0" in target or not target:
            raise UnsafePath("the link's target is empty")
        root = self.context / rule.src if rule.src else self.context
        inner = rule.inner(rel)
        here = PurePosixPath(inner).parent
        if target.startswith("/"):
            absolute = Path(os.path.normpath(target))
            for base in (root, Path(os.path.realpath(root))):
                try:
                    within = absolute.relative_to(base).as_posix()
                    break
                except ValueError:
                    continue
            else:
                raise UnsafePath(f"the link points outside {self._display(root)} (-> {target})")
        else:
            within = os.path.normpath((here / target).as_posix())
            if within == ".." or within.startswith("../") or within.startswith("/"):
                raise UnsafePath(f"the link points outside {self._display(root)} (-> {target})")
        # Resolved on disk, through any chain of links, it must stay inside as well.
        real_root = os.path.realpath(root)
        real = os.path.realpath(self.context / rel)
        if os.path.commonpath([real_root, real]) != real_root:
            raise UnsafePath(f"the link leads outside {self._display(root)} (-> {target}, "
                             f"resolved {real})")
        return os.path.relpath(within, here.as_posix())

    def _display(self, path: Path) -> str:
        try:
            return path.relative_to(self.context.parent).as_posix()
        except ValueError:
            return str(path)
