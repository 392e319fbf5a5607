"""Sync rules, rebuild triggers and the language of a service, read from its Dockerfile.

Every COPY/ADD of the final stage from the build context is a sync rule (a folder's contents
go into the destination, a file to its path or into a folder), unless a later RUN builds from
what it copied (``go build``, ``npm run build``, ``make`` …): then its files rebuild the image.
Dependency manifests (requirements.txt, package.json, go.mod …) that a later RUN can install
from rebuild too. Copies devmesh cannot follow file by file (see ``devmesh.dockerfile``) are
noted with their line, and the files they copy rebuild the image: never a wrong sync.

The language comes from the command the container runs (``python3 app.py`` → python,
``node server.js`` → node; a binary copied from another stage → compiled).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from devmesh.dockerfile import Image

# Files a RUN installs dependencies from: changing one rebuilds the image.
DEPENDENCY_FILES = frozenset({
    "requirements.txt", "requirements-dev.txt", "constraints.txt", "pyproject.toml", "setup.py",
    "setup.cfg", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock", "package.json",
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",
    "go.mod", "go.sum", "Gemfile", "Gemfile.lock", "Cargo.toml", "Cargo.lock", "composer.json",
    "composer.lock", "pom.xml", "build.gradle", "build.gradle.kts",
})
# RUN commands that compile or bundle the sources: what they read cannot be synced as is.
_BUILDS = re.compile(
    r"\b(go (build|install)|cargo (build|install)|(npm|pnpm|yarn|bun) (run )?build|tsc|"
    r"webpack|vite build|next build|make|cmake|ninja|mvn|gradle|javac|dotnet (build|publish)|"
    r"gcc|g\+\+|clang|rustc|zig build|swift build)\b")
_WRAPPERS = frozenset({"tini", "dumb-init", "--", "exec", "env", "catatonit"})
_LANGUAGES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("python", re.compile(r"^(python[0-9.]*|uvicorn|gunicorn|hypercorn|daphne|flask|django-admin|"
                          r"fastapi|granian|waitress-serve)$")),
    ("node", re.compile(r"^(node|nodejs|npm|npx|yarn|pnpm|nodemon|bun|deno|tsx|ts-node)$")),
    ("ruby", re.compile(r"^(ruby|bundle|rails|rackup|puma|unicorn)$")),
    ("php", re.compile(r"^(php|php-fpm|frankenphp)$")),
    ("go", re.compile(r"^go$")),
)
PRESETS = {"python": "python-web", "node": "node-web"}


@dataclass(frozen=True)
class InferredRule:
    src: str  # relative to the context; "." for all of it
    dest: str
    line: int  # of the COPY/ADD in the Dockerfile


@dataclass(frozen=True)
class InferredRebuild:
    pattern: str  # relative to the context
    line: int  # of the COPY/ADD that placed it
    run_line: int  # of the RUN after it that may install from it


@dataclass(frozen=True)
class Inference:
    """What the Dockerfile tells about syncing a service, each part with its reason."""

    dockerfile: str
    rules: tuple[InferredRule, ...]
    rebuild_on: tuple[InferredRebuild, ...]
    notes: tuple[str, ...]
    language: str  # python, node, ruby, php, go, compiled, or unknown
    language_reason: str
    user: str | None

    @property
    def preset(self) -> str:
        """The service preset for the language (``container`` when none fits)."""
        return PRESETS.get(self.language, "container")


def program(command: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The program a command runs (wrappers such as ``tini --`` and ``sh -c 'exec …'`` seen
    through) and its arguments."""
    words = list(command)
    while words:
        head = PurePosixPath(words[0]).name
        if head in ("sh", "bash", "ash", "dash") and len(words) >= 3 and words[1] == "-c":
            try:
                words = shlex.split(words[2])
            except ValueError:
                return head, tuple(words[1:])
            continue
        if head in _WRAPPERS:
            words = words[1:]
            continue
        return words[0], tuple(words[1:])
    return "", ()


def language_of(image: Image) -> tuple[str, str]:
    """The language the container runs, and why devmesh thinks so."""
    command = image.command
    if not command:
        return "unknown", f"{image.dockerfile} has no CMD or ENTRYPOINT (the base image's runs)"
    prog, _ = program(command)
    name = PurePosixPath(prog).name
    shown = " ".join(command)
    for language, pattern in _LANGUAGES:
        if pattern.match(name):
            return language, f"the command runs {name} ({shown})"
    from_other_stage = bool(image.stage.from_stages)
    placed = {str(p.target) for p in image.stage.placements if p.src}
    if prog.startswith("/") and prog not in placed and from_other_stage:
        return "compiled", f"the command runs {prog}, built in another stage"
    if from_other_stage and not image.stage.placements:
        return "compiled", f"the command runs {prog}; the final stage copies only from other stages"
    return "unknown", f"devmesh does not know what {name or shown} is"


def infer(image: Image, context: Path) -> Inference:
    """Sync rules, rebuild triggers, notes and the language of ``image``'s service, built in
    ``context``."""
    rules: list[InferredRule] = []
    rebuild: dict[str, InferredRebuild] = {}
    notes: list[str] = []
    where = image.dockerfile
    for p in image.stage.placements:
        later = image.runs_after(p)
        built = next(((r, m) for r in later if (m := _BUILDS.search(r.command))), None)
        shown = p.src or "."
        if built is not None:
            run, match = built
            notes.append(f"{where}:{p.line}: {shown} is built by the RUN at line {run.line} "
                         f"({match[0]}): a change to it rebuilds")
            continue
        name = PurePosixPath(p.src).name
        if later and name in DEPENDENCY_FILES:
            rebuild.setdefault(p.src, InferredRebuild(p.src, p.line, later[0].line))
            continue
        if later and p.folder:
            top = context / p.src if p.src else context
            for f in sorted(DEPENDENCY_FILES):
                if (top / f).is_file():
                    pattern = f"{p.src}/{f}" if p.src else f
                    rebuild.setdefault(pattern, InferredRebuild(pattern, p.line, later[0].line))
        rules.append(InferredRule(shown, str(p.target), p.line))
    for u in image.stage.unfollowed:
        notes.append(f"{where}:{u.line}: {u.text.splitlines()[0]}: {u.why}; what it copies rebuilds")
    for line, stage in image.stage.from_stages:
        notes.append(f"{where}:{line}: copies from stage {stage}: a change to its sources rebuilds")
    if not image.stage.placements and image.stage.from_stages:
        notes.append(f"{where}: the final stage copies only from other stages, so every change "
                     "rebuilds the image")
    language, reason = language_of(image)
    return Inference(where, tuple(rules), tuple(rebuild.values()), tuple(notes),
                     language, reason, image.stage.user)
