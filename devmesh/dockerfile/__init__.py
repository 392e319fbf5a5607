"""What a service's Dockerfile says about the container it runs: the final stage's base,
WORKDIR, ENV, USER, EXPOSE, command, and where each COPY/ADD from the build context puts
files.

The text is parsed by BuildKit's own parser (the ``dockerfile`` package), so line
continuations, escapes, JSON and shell forms and heredocs read exactly as ``docker build``
reads them. Variables are expanded as the builder expands them (``$X``, ``${X}``,
``${X:-word}``, ``${X:+word}``, quotes and backslashes) from ARG defaults, build arguments and
ENV in the order the instructions come; a stage ``FROM`` an earlier stage starts from what that
stage had. Copies devmesh cannot follow file by file (globs, URLs, archives ADD unpacks,
heredocs, another stage's files) are kept with the reason, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import dockerfile

from devmesh.errors import UserInputError

# ADD unpacks local archives of these kinds into the destination.
_ARCHIVES = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz|tar\.zst)$", re.IGNORECASE)
_URL = re.compile(r"^(https?|git|ssh)://|^git@", re.IGNORECASE)
_GLOB = re.compile(r"[*?\[]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INSTRUCTIONS = frozenset({
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
})
# Flags of COPY/ADD that do not change where files land.
_PLAIN_FLAGS = ("--chown", "--chmod", "--link", "--keep-git-dir", "--checksum")


class DockerfileError(UserInputError):
    """A Dockerfile devmesh cannot read: ``path:line: what``."""


@dataclass(frozen=True)
class Placement:
    """One source of a COPY/ADD from the build context, and where it lands.

    ``src`` is relative to the context ("" for all of it); a folder's contents go into
    ``dest``; a file goes to ``dest`` itself, or into it when ``into`` (a destination that ends
    with ``/``, a known folder, or several sources). ``folder``: the source is a folder in the
    context as it is on disk."""

    src: str
    dest: PurePosixPath
    into: bool
    folder: bool
    line: int
    instruction: str
    owner: str | None = None

    @property
    def target(self) -> PurePosixPath:
        """Where the source lands: a folder's contents in ``dest``, a file at or in it."""
        if self.folder or not self.into:
            return self.dest
        return self.dest / PurePosixPath(self.src).name


@dataclass(frozen=True)
class Unfollowed:
    """A copy devmesh does not follow file by file, and why (its files rebuild the image)."""

    line: int
    text: str
    why: str


@dataclass(frozen=True)
class Run:
    line: int
    command: str


@dataclass
class Stage:
    """A build stage, as far as the instructions have come."""

    name: str | None
    base: str
    line: int
    workdir: PurePosixPath = PurePosixPath("/")
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    exposed: tuple[int, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    shell: tuple[str, ...] = ("/bin/sh", "-c")
    placements: tuple[Placement, ...] = ()
    unfollowed: tuple[Unfollowed, ...] = ()
    from_stages: tuple[tuple[int, str], ...] = ()  # (line, stage) of COPY --from
    runs: tuple[Run, ...] = ()
    folders: frozenset[PurePosixPath] = frozenset({PurePosixPath("/")})

    def inherit(self, name: str | None, line: int) -> Stage:
        """A stage ``FROM`` this one: what it had so far, its own ARGs not carried over."""
        return replace(self, name=name, line=line, args={}, env=dict(self.env))


@dataclass(frozen=True)
class Image:
    """The final stage of a Dockerfile: what the running container gets."""

    dockerfile: str  # as shown to people (relative to the project where possible)
    stage: Stage
    stage_count: int

    @property
    def command(self) -> tuple[str, ...]:
        """The argv the container runs (ENTRYPOINT then CMD; a shell form through SHELL)."""
        return (self.stage.entrypoint or ()) + (self.stage.cmd or ())

    def runs_after(self, placement: Placement) -> list[Run]:
        """The RUN instructions after ``placement``: they may build from its files."""
        return [r for r in self.stage.runs if r.line > placement.line]


# --- variables -------------------------------------------------------------------------------


def expand(text: str, env: Mapping[str, str], where: str) -> str:
    """``text`` with quotes, escapes and variables processed as the builder does."""
    out: list[str] = []
    i, quote = 0, ""
    while i < len(text):
        ch = text[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                out.append(ch)
            i += 1
        elif ch == "\\" and i + 1 < len(text) and (not quote or text[i + 1] in '$"\\'):
            out.append(text[i + 1])
            i += 2
        elif ch in "'\"" and (not quote or ch == quote):
            quote = "" if quote else ch
            i += 1
        elif ch == "$":
            value, i = _variable(text, i, env, where)
            out.append(value)
        else:
            out.append(ch)
            i += 1
    if quote:
        raise DockerfileError(f"{where}: unmatched {quote} in {text!r}")
    return "".join(out)


def _variable(text: str, i: int, env: Mapping[str, str], where: str) -> tuple[str, int]:
    if text.startswith("${", i):
        end = text.find("}", i)
        if end < 0:
            raise DockerfileError(f"{where}: missing '}}' in {text!r}")
        body = text[i + 2:end]
        name = _NAME.match(body)
        if name is None:
            raise DockerfileError(f"{where}: bad variable ${{{body}}}")
        rest = body[name.end():]
        value = env.get(name[0])
        if not rest:
            return value or "", end + 1
        for op in (":-", ":+", ":?", "-", "+", "?"):
            if rest.startswith(op):
                word = expand(rest[len(op):], env, where)
                unset = value is None or (op.startswith(":") and value == "")
                if op.endswith("-"):
                    return (word if unset else value or ""), end + 1
                if op.endswith("+"):
                    return ("" if unset else word), end + 1
                if unset:
                    raise DockerfileError(f"{where}: {name[0]} is not set: {word or 'required'}")
                return value or "", end + 1
        raise DockerfileError(f"{where}: devmesh cannot expand ${{{body}}} (only ${{X}}, "
                              "${X:-word} and ${X:+word} forms)")
    name = _NAME.match(text, i + 1)
    if name is None:
        return "$", i + 1
    return env.get(name[0], ""), name.end()


# --- reading ----------------------------------------------------------------------------------


def _clean_source(text: str) -> str | None:
    """A COPY source as a clean path in the context ("" for the context), None outside it."""
    parts: list[str] = []
    for part in text.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _is_folder_dest(dest: str, path: PurePosixPath, stage: Stage) -> bool:
    return dest.endswith("/") or dest in (".", "..") or path in stage.folders


class _Reader:
    def __init__(self, path: Path, shown: str, context: Path, build_args: Mapping[str, str]) -> None:
        self.path = path
        self.shown = shown
        self.context = context
        self.build_args = dict(build_args)
        self.stages: list[Stage] = []
        self.global_args: dict[str, str] = {}

    def where(self, line: int) -> str:
        return f"{self.shown}:{line}"

    def read(self) -> Image:
        try:
            commands = dockerfile.parse_file(str(self.path))
        except dockerfile.GoIOError as exc:
            raise DockerfileError(f"{self.shown}: cannot read it: {exc}") from None
        except dockerfile.GoParseError as exc:
            raise DockerfileError(f"{self.shown}: {exc}") from None
        for command in commands:
            self.instruction(command)
        if not self.stages:
            raise DockerfileError(f"{self.shown}: no FROM instruction")
        return Image(self.shown, self.stages[-1], len(self.stages))

    def instruction(self, c: Any) -> None:
        line = c.start_line
        where = self.where(line)
        if c.cmd is None:
            return  # a lone continuation line
        c = c._replace(cmd=c.cmd.upper())  # instructions are not case-sensitive
        if c.cmd not in _INSTRUCTIONS:
            raise DockerfileError(f"{where}: unknown instruction {c.cmd}")
        if c.cmd == "ARG":
            self._arg(c, where)
            return
        if c.cmd == "FROM":
            self._from(c, where)
            return
        if not self.stages:
            raise DockerfileError(f"{where}: {c.cmd} before the first FROM")
        stage = self.stages[-1]
        env = {**stage.args, **stage.env}
        if c.cmd == "ENV":
            values = list(c.value)
            for key, raw in zip(values[::2], values[1::2], strict=False):
                stage.env[key] = expand(raw, {**stage.args, **stage.env}, where)
        elif c.cmd == "WORKDIR":
            path = stage.workdir / expand(c.value[0], env, where)
            stage.workdir = PurePosixPath(_normal(path))
            stage.folders = stage.folders | {stage.workdir}
        elif c.cmd == "USER":
            stage.user = expand(c.value[0], env, where)
        elif c.cmd == "EXPOSE":
            stage.exposed = stage.exposed + tuple(self._ports(c.value, env, where))
        elif c.cmd == "SHELL":
            stage.shell = tuple(c.value)
        elif c.cmd in ("CMD", "ENTRYPOINT"):
            argv = tuple(c.value) if c.json else (*stage.shell, c.value[0])
            if c.cmd == "CMD":
                stage.cmd = argv
            else:
                stage.entrypoint = argv
                if not c.json:
                    stage.cmd = None  # a shell-form ENTRYPOINT ignores CMD
        elif c.cmd == "RUN":
            stage.runs = stage.runs + (Run(line, " ".join(c.value)),)
        elif c.cmd in ("COPY", "ADD"):
            self._copy(c, stage, env, where)

    def _arg(self, c: Any, where: str) -> None:
        for item in c.value:
            name, eq, default = item.partition("=")
            target = self.stages[-1].args if self.stages else self.global_args
            scope = {**self.stages[-1].args, **self.stages[-1].env} if self.stages else self.global_args
            if name in self.build_args:
                target[name] = self.build_args[name]
            elif eq:
                target[name] = expand(default, scope, where)
            elif self.stages and name in self.global_args:
                target[name] = self.global_args[name]  # a global ARG declared again in a stage

    def _from(self, c: Any, where: str) -> None:
        words = list(c.value)
        name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
        base = expand(words[0], self.global_args, where)
        earlier = next((s for s in reversed(self.stages) if s.name and s.name.lower() == base.lower()), None)
        stage = earlier.inherit(name, c.start_line) if earlier is not None else Stage(name, base, c.start_line)
        self.stages.append(stage)

    def _ports(self, words: tuple[str, ...], env: Mapping[str, str], where: str) -> list[int]:
        ports = []
        for word in words:
            for item in expand(word, env, where).split():
                number = item.split("/")[0]
                if number.isdigit() and 1 <= int(number) <= 65535:
                    ports.append(int(number))
        return ports

    def _copy(self, c: Any, stage: Stage, env: Mapping[str, str], where: str) -> None:
        line = c.start_line
        flags = dict(f.lstrip("-").partition("=")[::2] for f in c.flags)
        if "from" in flags:
            stage.from_stages = stage.from_stages + ((line, flags["from"]),)
            return
        if c.heredocs:
            stage.unfollowed += (Unfollowed(line, c.original, "its content is written in the Dockerfile"),)
            return
        odd = [f for f in c.flags if not f.startswith(_PLAIN_FLAGS)]
        if odd:
            stage.unfollowed += (Unfollowed(line, c.original, f"devmesh does not follow {odd[0]}"),)
            return
        words = [expand(w, env, where) for w in c.value]
        if len(words) < 2:
            raise DockerfileError(f"{where}: {c.cmd} needs a source and a destination")
        *sources, dest = words
        dest_path = PurePosixPath(_normal(stage.workdir / dest))
        into = len(sources) > 1 or _is_folder_dest(dest, dest_path, stage)
        owner = flags.get("chown") or None
        placed: list[Placement] = []
        for text in sources:
            why = self._unfollowable(c.cmd, text)
            if why:
                stage.unfollowed += (Unfollowed(line, c.original, why),)
                continue
            src = _clean_source(text)
            if src is None:
                stage.unfollowed += (Unfollowed(line, c.original, f"{text} lies outside the build context"),)
                continue
            is_folder = src == "" or (self.context / src).is_dir()
            placed.append(Placement(src, dest_path, into, is_folder, line, c.cmd, owner))
        if into or any(p.folder for p in placed):
            stage.folders = stage.folders | {dest_path}
        stage.placements = stage.placements + tuple(placed)

    @staticmethod
    def _unfollowable(instruction: str, text: str) -> str | None:
        if _URL.search(text):
            return f"{text} is fetched from the network"
        if _GLOB.search(text):
            return f"{text} is a pattern; devmesh syncs named files and folders only"
        if instruction == "ADD" and _ARCHIVES.search(text):
            return f"ADD unpacks the archive {text}"
        return None


def _normal(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts[1:]:
        if part == "..":
            if parts:
                parts.pop()
        elif part != ".":
            parts.append(part)
    return "/" + "/".join(parts)


def read_image(dockerfile: Path, context: Path, *, build_args: Mapping[str, str] | None = None,
               shown: str | None = None) -> Image:
    """The final stage of ``dockerfile`` built in ``context``; DockerfileError when unreadable."""
    return _Reader(dockerfile, shown or str(dockerfile), context, build_args or {}).read()
