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
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from devmesh.config import CONFIG_NAME, load_text
from devmesh.errors import MissingDependency, UserInputError
from devmesh.config.presets import presets_root

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


def _initial_commit(root: Path, message: str) -> tuple[str, str]:
    """``git init -b main`` and commit everything; returns the commit id and its author."""
    try:
        import git
    except ImportError as exc:  # GitPython refuses to import when no git executable is found
        raise MissingDependency(f"the starter is a git repository, but git is not usable: {exc}",
                                hint="install git (apt-get install git) and run this again") from None

    repo = git.Repo.init(root, initial_branch="main")
    try:
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
            f"git could not make the first commit in {root}: {detail[-1] if detail else exc}"
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
    preset_reason: str  # the file that decided the preset, or what was missing
    workdir: str | None = None
    entry: bool = False


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


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    try:
        text = dockerfile.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The instructions of the last build stage: what the running container gets."""
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    return instructions[starts[-1]:] if starts else instructions


def exposed_port(dockerfile: Path) -> int | None:
    """The first literal port of the final stage's EXPOSE, if any."""
    for word, args in _final_stage(_instructions(dockerfile)):
        if word != "EXPOSE":
            continue
        for item in args.split():
            number = item.split("/")[0]
            if number.isdigit() and 1 <= int(number) <= 65535:
                return int(number)
    return None


def _workdir(dockerfile: Path) -> str | None:
    """The final stage's last WORKDIR when it is a plain absolute path (no variables)."""
    found = None
    for word, args in _final_stage(_instructions(dockerfile)):
        if word == "WORKDIR":
            path = args.strip().strip('"')
            found = path if path.startswith("/") and "$" not in path else None
    return found


def _preset_for(folder: Path) -> tuple[str, str]:
    for marker in ("requirements.txt", "pyproject.toml"):
        if (folder / marker).is_file():
            return "python-web", marker
    if (folder / "package.json").is_file():
        return "node-web", "package.json"
    return "container", "no requirements.txt, pyproject.toml or package.json"


def scan(root: Path) -> list[ServiceGuess]:
    """One ServiceGuess per Dockerfile folder under ``root``, with the entry chosen."""
    root = root.resolve()
    guesses: list[ServiceGuess] = []
    taken: set[str] = set()
    for folder in find_dockerfiles(root):
        rel = folder.relative_to(root)
        base = dns_label(folder.name, _SERVICE_MAX)
        name, n = base, 2
        while name in taken:  # two folders called 'api' in different places
            suffix = f"-{n}"
            name, n = base[: _SERVICE_MAX - len(suffix)].rstrip("-") + suffix, n + 1
        taken.add(name)
        port = exposed_port(folder / "Dockerfile")
        preset, reason = _preset_for(folder)
        guesses.append(ServiceGuess(
            name=name,
            context=rel.as_posix() if rel.parts else ".",
            port=port or DEFAULT_PORT,
            port_source="EXPOSE" if port else "no EXPOSE: a guess",
            preset=preset,
            preset_reason=reason,
            workdir=_workdir(folder / "Dockerfile") if preset != "container" else None,
        ))
    if not guesses:
        return []
    entry = next((g.name for key in ENTRY_NAMES for g in guesses if g.name == key), guesses[0].name)
    return [replace(g, entry=g.name == entry) for g in guesses]


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
        lines.append(f"  {_quote(g.name)}:")
        lines.append(f"    context: {_quote(g.context)}")
        lines.append(f"    preset: {g.preset}")
        if g.entry:
            lines.append("    entry: true  # the service behind the preview URL")
        lines.append("    values:")
        lines.append(f"      port: {g.port}")
        if g.workdir and g.workdir != "/app":
            lines.append(f"      workdir: {_quote(g.workdir)}  # WORKDIR in the Dockerfile")
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
