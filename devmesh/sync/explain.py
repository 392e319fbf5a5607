"""``devmesh sync --explain PATH``: where a saved file would go, in which service's containers,
or why it would rebuild the image or be left alone. Nothing runs; nothing is contacted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from devmesh.errors import UserInputError
from devmesh.sync.reload import describe, reload_action
from devmesh.sync.rules import ServiceSources, UnsafePath, clean_relative

if TYPE_CHECKING:
    from devmesh.config import Project


def explain(project: Project, path: str, branch: str) -> list[str]:
    """One line per service whose build context holds ``path`` (relative to the current
    folder, or absolute), saying what a change to it does in the environment of ``branch``."""
    absolute = Path(os.path.abspath(path))
    root = project.root.resolve()
    try:
        shown = absolute.relative_to(root).as_posix()
    except ValueError:
        raise UserInputError(f"{path}: not in the project ({root})") from None
    lines = []
    for name in project.services:
        sources = ServiceSources.of(project, name)
        rel = sources.relative(absolute)
        if rel is None:
            continue
        try:
            rel = clean_relative(rel)
        except UnsafePath as exc:
            lines.append(f"{shown}: {name}: refused: {exc}")
            continue
        lines.append(f"{shown}: {name}: {_what(sources, rel, branch)}")
    if not lines:
        raise UserInputError(f"{shown}: in no service's build context; a change to it does nothing",
                             hint="'devmesh sync' watches each service's context folder")
    return lines


def _what(sources: ServiceSources, rel: str, branch: str) -> str:
    kind = sources.classify(rel)
    if kind == "ignored":
        return f"ignored: {sources.ignore_reason(rel)}"
    if kind == "rebuild":
        return f"rebuilds the image: {sources.explain_rebuild(rel)}"
    rule = sources.rule_for(rel)
    assert rule is not None  # classify says "sync" only when a rule covers it
    link = sources.through_link(rel)
    if link is not None:
        return f"refused: it lies below the symbolic link {link}"
    after = describe(reload_action(sources.reload))
    return (f"synced to {rule.target(rel)} in its containers of branch {branch} (rule "
            f"{rule.src or '.'} → {rule.dest}, from {rule.origin}), then {after}")
