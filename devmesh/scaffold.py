"""Start a project: copy a starter app, or write a devmesh.yaml for an existing repository.

Scanning finds every ``Dockerfile`` (outside VCS, dependency and virtualenv folders) and
makes one service of each folder holding one: named after the folder, port from ``EXPOSE``,
preset guessed from the files beside it. The result is a commented devmesh.yaml that is
validated before it is written.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from devmesh.config import CONFIG_NAME, load_text
from devmesh.config.presets import presets_root
from devmesh.dockerfile import read_image
from devmesh.errors import MissingDependency, UserInputError
from devmesh.dockerfile.infer import Inference, infer

if TYPE_CHECKING:
    import git

DEFAULT_PORT = 8080
ENTRY_NAMES = ("web", "frontend", "gateway")
FALLBACK_AUTHOR = ("devmesh", "devmesh@localhost")

# Folders that never hold a service's own Dockerfile: VCS data, installed dependencies,
# virtualenvs and tool caches (their Dockerfiles belong to someone else's package).
_SKIP_DIRS = frozenset({
    "node_modules", "bower_components", "vendor", "venv", "site-packages", "__pycache__",
})
_LABEL_BAD = re.compile(r"[^a-z0-9]+")
_APP_MAX = 22
_SERVICE_MAX = 30


# --- starters ---------------------------------------------------------------------------


def starters() -> list[str]:
    """Names of the starter apps shipped with devmesh."""
    folder = presets_root() / "starters"
    return sorted(p.name for p in folder.iterdir() if (p / CONFIG_NAME).is_file()) if folder.is_dir() else []


@dataclass(frozen=True)
class StarterResult:
    path: Path
    commit: str
    author: str


def create_starter(name: str, dest: Path, base_image: str | None = None) -> StarterResult:
    """Copy starter ``name`` into ``dest``, a new git repository with one commit on main."""
    available = starters()
    if name not in available:
        raise UserInputError(
            f"unknown starter {name!r}; available: {', '.join(available) or 'none'}"
        )
    if dest.exists() and not dest.is_dir():
        raise UserInputError(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()):
        raise UserInputError(
            f"{dest} is not empty; the starter goes into a new or empty directory",
            hint=f"pick another directory, e.g. 'devmesh init --starter {name} {dest}-2'",
        )
    if base_image is not None and not base_image.strip():
        raise UserInputError("--base-image is empty; give an image name such as python:3.12-slim")
    source = presets_root() / "starters" / name
    shutil.copytree(
        source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    if base_image:
        config = dest / CONFIG_NAME
        config.write_text(with_build_arg(config.read_text(encoding="utf-8"), "BASE_IMAGE", base_image), encoding="utf-8")
    load_text((dest / CONFIG_NAME).read_text(encoding="utf-8"), (dest / CONFIG_NAME).resolve())
    commit, author = _initial_commit(dest, f"Start from the devmesh {name} starter")
    return StarterResult(dest, commit, author)


def with_build_arg(text: str, key: str, value: str) -> str:
    """Add ``build_args: {key: value}`` to every service of a devmesh.yaml, keeping comments.

    The key is appended to each service; ruamel keeps a comment or blank line that follows a
    mapping with its last key, so templates keep ``services`` as the last section.
    """
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    data = yaml.load(text)
    for service in data["services"].values():
        args = service.get("build_args") or {}
        args[key] = value
        service["build_args"] = args
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def with_settings(text: str, settings: dict[tuple[str, ...], object]) -> str:
    """Set top-level fields of a devmesh.yaml (``("routing", "gateway_port"): 8081``), keeping
    its comments; a missing section is added before ``services``, which stays last."""
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    data = yaml.load(text)
    for path, value in settings.items():
        *sections, key = path
        node = data
        for section in sections:
            if section not in node:
                node.insert(list(node).index("services") if "services" in node else len(node),
                            section, CommentedMap())
            node = node[section]
        if key in node:
            node[key] = value
        elif node is data and "services" in data:
            data.insert(list(data).index("services"), key, value)
        else:
            # What follows the last field (a blank line, a comment) moves below the new one.
            last = list(node)[-1] if node else None
            if last in node.ca.items:
                node.ca.items[key] = node.ca.items.pop(last)
            node[key] = value
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def _initial_commit(root: Path, message: str) -> tuple[str, str]:
    """``git init -b main`` and commit everything; returns the commit id and its author."""
    return commit_all(root, message, init=True)


def commit_all(root: Path, message: str, *, init: bool = False, branch: str | None = None) -> tuple[str, str]:
    """Commit everything in ``root`` (a new repository on ``main`` when ``init``; on a new
    branch ``branch`` when given); returns the commit id and its author."""
    try:
        import git
    except ImportError as exc:  # GitPython refuses to import when no git executable is found
        raise MissingDependency(f"the starter is a git repository, but git is not usable: {exc}",
                                hint="install git (apt-get install git) and run this again") from None

    repo = git.Repo.init(root, initial_branch="main") if init else git.Repo(root)
    try:
        if branch is not None:
            repo.git.checkout("--quiet", "-b", branch)
        repo.git.add("--all")
        env = {}
        if not _has_identity(repo):
            # A fresh machine often has no git identity; the first commit must not fail on that.
            name, email = FALLBACK_AUTHOR
            env = {
                "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
            }
        with repo.git.custom_environment(**env):
            repo.git.commit("--quiet", "-m", message)
        head = repo.head.commit
        return head.hexsha, f"{head.author.name} <{head.author.email}>"
    except git.CommandError as exc:
        detail = (exc.stderr or "").strip().splitlines()
        raise UserInputError(
            f"git could not commit in {root}: {detail[-1] if detail else exc}"
        ) from None
    finally:
        repo.close()


def _has_identity(repo: git.Repo) -> bool:
    """Whether git knows who commits: from the environment or any config level."""
    import git

    for key in ("name", "email"):
        if os.environ.get(f"GIT_AUTHOR_{key.upper()}") and os.environ.get(f"GIT_COMMITTER_{key.upper()}"):
            continue
        try:
            if not repo.git.config("--get", f"user.{key}").strip():
                return False
        except git.GitCommandError:  # exit status 1: not set anywhere
            return False
    return True


# --- scanning an existing repository ----------------------------------------------------


@dataclass(frozen=True)
class ServiceGuess:
    """One service found from a Dockerfile, with what was guessed and why."""

    name: str
    context: str  # POSIX path relative to the project root; "." for the root
    port: int
    port_source: str  # why this port: "EXPOSE" or "no EXPOSE: a guess"
    preset: str  # python-web, node-web or container
    preset_reason: str  # what the Dockerfile runs, or the file that decided
    entry: bool = False
    entry_reason: str = ""
    sync: tuple[str, ...] = ()  # the rules read from the Dockerfile, as "src → dest (file:line)"
    notes: tuple[str, ...] = ()  # what of the Dockerfile devmesh does not sync, and why


def dns_label(text: str, max_len: int) -> str:
    """A DNS-1035 label (a letter first) from any text: 'My_API' → 'my-api', '8080' → 'svc-8080'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    label = _LABEL_BAD.sub("-", ascii_text.lower()).strip("-")
    if not label[:1].isalpha():
        # Kubernetes Service names must start with a letter.
        label = f"svc-{label}".rstrip("-")
    return label[:max_len].rstrip("-")


def find_dockerfiles(root: Path) -> list[Path]:
    """Folders under ``root`` holding a file named Dockerfile, sorted, root first."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        # Hidden folders (.git, .venv, .devcontainer, .tox …) and virtualenvs are skipped.
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and d not in _SKIP_DIRS and not (here / d / "pyvenv.cfg").exists()
        )
        if "Dockerfile" in files:
            found.append(here)
    return sorted(found, key=lambda p: (len(p.relative_to(root).parts), p.relative_to(root).as_posix()))


def exposed_port(dockerfile: Path) -> int | None:
    """The first port of the final stage's EXPOSE, if any."""
    exposed = read_image(dockerfile, dockerfile.parent).stage.exposed
    return exposed[0] if exposed else None


def _preset_for(folder: Path, inference: Inference) -> tuple[str, str]:
    if inference.preset != "container" or inference.language == "compiled":
        return inference.preset, inference.language_reason
    for marker in ("requirements.txt", "pyproject.toml"):
        if (folder / marker).is_file():
            return "python-web", marker
    if (folder / "package.json").is_file():
        return "node-web", "package.json"
    return "container", f"{inference.language_reason}; no requirements.txt, pyproject.toml or package.json"


def scan(root: Path) -> list[ServiceGuess]:
    """One ServiceGuess per Dockerfile folder under ``root``, with the entry chosen."""
    root = root.resolve()
    guesses: list[ServiceGuess] = []
    folders: dict[str, Path] = {}
    taken: set[str] = set()
    for folder in find_dockerfiles(root):
        rel = folder.relative_to(root)
        base = dns_label(folder.name, _SERVICE_MAX)
        name, n = base, 2
        while name in taken:  # two folders called 'api' in different places
            suffix = f"-{n}"
            name, n = base[: _SERVICE_MAX - len(suffix)].rstrip("-") + suffix, n + 1
        taken.add(name)
        shown = (rel / "Dockerfile").as_posix()
        image = read_image(folder / "Dockerfile", folder, shown=shown)
        inference = infer(image, folder)
        port = image.stage.exposed[0] if image.stage.exposed else None
        preset, reason = _preset_for(folder, inference)
        guesses.append(ServiceGuess(
            name=name,
            context=rel.as_posix() if rel.parts else ".",
            port=port or DEFAULT_PORT,
            port_source="EXPOSE" if port else "no EXPOSE: a guess",
            preset=preset,
            preset_reason=reason,
            sync=tuple(f"{r.src} → {r.dest} ({shown}:{r.line})" for r in inference.rules)
            if preset != "container" else (),
            notes=inference.notes if preset != "container" else (),
        ))
        folders[name] = folder
    if not guesses:
        return []
    entry, why = choose_entry([g.name for g in guesses], folders, {g.name: g.port for g in guesses})
    return [replace(g, entry=g.name == entry, entry_reason=why if g.name == entry else "") for g in guesses]


# --- which service is the entry ----------------------------------------------------------

# Ports a service that faces people usually listens on.
ENTRY_PORTS = (80, 8080, 3000, 443)
_SOURCE_LIMIT = 512 * 1024  # bytes of one file read for mentions
_SERVICE_BUDGET = 8 * 1024 * 1024  # bytes read per service


def _mention(name: str) -> re.Pattern[str]:
    """How one service's sources name another: its address (``api:8000``, ``//api``) or an
    environment variable for it (``API_URL``, ``API_HOST`` …)."""
    host = re.escape(name)
    var = re.escape(name.upper().replace("-", "_"))
    return re.compile(rf"(?<![\w.-]){host}:\d{{2,5}}\b|//{host}(?![\w-])|"
                      rf"\b{var}_(URL|HOST|ADDR|ADDRESS|ENDPOINT|SERVICE_HOST|SERVICE)\b")


def _source_texts(folder: Path) -> Iterator[str]:
    budget = _SERVICE_BUDGET
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS
                         and not (Path(here) / d / "pyvenv.cfg").exists())
        for file in sorted(files):
            path = Path(here) / file
            try:
                if path.is_symlink() or path.stat().st_size > _SOURCE_LIMIT:
                    continue
                data = path.read_bytes()
            except OSError:
                continue
            if b"\0" in data[:1024]:
                continue  # a binary file
            budget -= len(data)
            if budget < 0:
                return
            yield data.decode("utf-8", errors="replace")


def calls(names: list[str], folders: dict[str, Path]) -> dict[str, set[str]]:
    """For each service, the other services its sources name."""
    patterns = {n: _mention(n) for n in names}
    found: dict[str, set[str]] = {n: set() for n in names}
    for name in names:
        others = [o for o in names if o != name]
        for text in _source_texts(folders[name]):
            for other in others:
                if other not in found[name] and patterns[other].search(text):
                    found[name].add(other)
            if len(found[name]) == len(others):
                break
    return found


def choose_entry(names: list[str], folders: dict[str, Path], ports: dict[str, int]) -> tuple[str, str]:
    """The service behind the preview URL, and why: the one no other service calls and which
    calls others; else a conventional name, else a conventional port, else the first."""
    if len(names) == 1:
        return names[0], "the only service"
    graph = calls(names, folders)
    called = {callee for callees in graph.values() for callee in callees}
    fronts = [n for n in names if n not in called and graph[n]]
    if len(fronts) == 1:
        front = fronts[0]
        return front, f"no other service calls it, and it calls {', '.join(sorted(graph[front]))}"
    pool = fronts or names
    for key in ENTRY_NAMES:
        if key in pool:
            return key, f"named {key}" + (" (no single service calls the others)" if not fronts else "")
    for port in ENTRY_PORTS:
        match = [n for n in pool if ports[n] == port]
        if match:
            return match[0], f"listens on port {port}"
    return pool[0], "the first found (no service calls another)" if not fronts else "the first of those no one calls"


def _quote(text: str) -> str:
    """A YAML scalar for ``text``: bare when YAML reads it back as the same string."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if re.fullmatch(r"[A-Za-z0-9_./-]+", text):
        try:
            # 'null', 'true', '8080' or '1e3' would come back as something other than a string.
            if YAML(typ="safe").load(text) == text:
                return text
        except YAMLError:
            pass
    return json.dumps(text, ensure_ascii=False)


def render_config(app: str, guesses: list[ServiceGuess]) -> str:
    """The text of a commented devmesh.yaml for the scanned services."""
    lines = [
        "# devmesh.yaml: how devmesh builds, runs and routes this app's services.",
        "# Written by 'devmesh init' from the Dockerfiles it found; check the guesses and edit freely.",
        "# Field reference: docs/config.md in the devmesh repository.",
        f"app: {_quote(app)}",
        "",
        "services:",
    ]
    for g in guesses:
        dockerfile = PurePosixPath(g.context) / "Dockerfile" if g.context != "." else PurePosixPath("Dockerfile")
        lines.append(f"  # {dockerfile}: port {g.port} ({g.port_source}), preset {g.preset} ({g.preset_reason})")
        if g.preset != "container":
            synced = "; ".join(g.sync) or "nothing (every change rebuilds)"
            lines.append(f"  # synced, as its COPY places them: {synced}")
            lines += [f"  # {note}" for note in g.notes]
        lines.append(f"  {_quote(g.name)}:")
        lines.append(f"    context: {_quote(g.context)}")
        lines.append(f"    preset: {g.preset}")
        if g.entry:
            lines.append(f"    entry: true  # the service behind the preview URL: {g.entry_reason}")
        lines.append("    values:")
        lines.append(f"      port: {g.port}")
    lines += [
        "",
        "# Requests carrying this header reach a branch's services; everything else reaches the",
        "# baseline. Each service must copy it from incoming requests onto its outbound calls.",
        "routing:",
        "  header: x-devmesh-env",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ScanResult:
    path: Path
    services: list[ServiceGuess]
    is_git_repo: bool


def init_repository(root: Path, force: bool = False) -> ScanResult:
    """Write ``root/devmesh.yaml`` from the Dockerfiles found under ``root``."""
    if not root.is_dir():
        raise UserInputError(f"{root}: no such directory")
    target = root / CONFIG_NAME
    if target.exists() and not force:
        raise UserInputError(
            f"{target} already exists; devmesh init does not overwrite it",
            hint="pass --force to replace it, or edit it by hand",
        )
    guesses = scan(root)
    if not guesses:
        raise UserInputError(
            f"no Dockerfile found under {root} (outside hidden, node_modules and virtualenv folders)",
            hint="devmesh builds each service from its Dockerfile: add one per service, "
            "or try the example app with 'devmesh init --starter shop DIR'",
        )
    text = render_config(dns_label(root.resolve().name, _APP_MAX), guesses)
    # Validate before writing, so a bad guess never leaves a file that the next command rejects.
    load_text(text, target.resolve(), str(target))
    tmp = target.with_name(f".{CONFIG_NAME}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)  # never a half-written file, even if interrupted
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserInputError(f"cannot write {target}: {exc.strerror}") from None
    here = root.resolve()
    in_git = any((folder / ".git").exists() for folder in (here, *here.parents))
    return ScanResult(target, guesses, in_git)
