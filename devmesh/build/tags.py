"""A service's content tag: a digest of exactly what a build reads, and the build context that
is sent with it.

The tag covers every file of the build context that Docker would send (``.dockerignore``
applied by Docker's rules), the Dockerfile, and the build arguments. Same sources → same tag →
no build; any change → a new tag.

devmesh sends the build context itself, as a tar made from the same walk that the tag is
computed from, so the tag describes the bytes the builder received: a file saved while the
context is being sent yields a new tag, never a stale image under an old one. The tar is
normalised so that two checkouts of the same sources give the same image: owner root, files
0644 or 0755 (by their execute bit), directories 0755.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from devmesh.dockerignore import IGNORE_FILE, ContextEntry, IgnoreRules, walk_context
from devmesh.errors import DevmeshError, UserInputError

if TYPE_CHECKING:
    from devmesh.config import Project

REGISTRY_HOST = "devmesh.local"
TAG_LENGTH = 16
# Bumped whenever what goes into a tag changes, so old tags are never reused wrongly.
_TAG_SCHEME = b"devmesh-content-tag-v1\0"


@dataclass(frozen=True)
class Sources:
    """Where a service's build reads from, resolved against one checkout."""

    service: str
    context: Path
    dockerfile: Path
    display: str  # the Dockerfile's path relative to the checkout, for messages
    inside: str | None  # the Dockerfile's path in the context, None when it lies outside
    rules: IgnoreRules
    build_args: dict[str, str]


def sources_of(project: Project, service: str, root: Path | None,
             build_args_override: Mapping[str, str] | None) -> Sources:
    if service not in project.services:
        raise UserInputError(f"no service {service!r} in {project.path.name}; "
                             f"services: {', '.join(sorted(project.services))}")
    svc = project.services[service]
    base = Path(root) if root is not None else project.root
    context = Path(os.path.normpath(base / svc.context))
    dockerfile = Path(os.path.normpath(context / svc.dockerfile))
    base_norm = os.path.normpath(base)
    try:
        display = dockerfile.relative_to(base_norm).as_posix()
    except ValueError:
        raise UserInputError(
            f"services.{service}.dockerfile: {svc.dockerfile!r} lies outside the project "
            f"({base_norm}); keep the Dockerfile inside the project"
        ) from None
    if not context.is_dir():
        raise UserInputError(f"services.{service}.context: build context {svc.context!r} "
                             f"does not exist (looked in {context})")
    if not dockerfile.is_file():
        raise UserInputError(f"services.{service}.dockerfile: {display} does not exist")
    try:
        inside: str | None = dockerfile.relative_to(context).as_posix()
    except ValueError:
        inside = None
    rules = IgnoreRules.read(context, source=(Path(svc.context) / IGNORE_FILE).as_posix())
    keep = [IGNORE_FILE] + ([inside] if inside else [])
    args = {**svc.build_args, **(build_args_override or {})}
    return Sources(service, context, dockerfile, display, inside, rules.keeping(keep), args)


class _TeeReader:
    """Reads a file and feeds what was read to a hash: the tar gets exactly what is hashed."""

    def __init__(self, raw: IO[bytes], digest: Any) -> None:
        self._raw = raw
        self._digest = digest

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        return data


def _tar_mode(entry: ContextEntry) -> int:
    if entry.kind == "file":
        return 0o755 if entry.executable else 0o644
    return 0o755 if entry.kind == "dir" else 0o777


def _external_dockerfile_name(content: bytes) -> str:
    return f".devmesh-dockerfile-{hashlib.sha256(content).hexdigest()[:12]}"


def content_digest(src: Sources, tar: tarfile.TarFile | None = None) -> tuple[str, str]:
    """The content tag of ``src`` and the Dockerfile's name in the context; with ``tar``, also
    write the build context into it (the tag then describes exactly the bytes written)."""
    outer = hashlib.sha256(_TAG_SCHEME)
    entries = walk_context(src.context, src.rules)
    ignore_text: bytes | None = None
    for entry in entries:
        encoded = entry.path.encode("utf-8", "surrogateescape")
        full = src.context / entry.path
        if entry.kind == "dir":
            outer.update(b"d\0" + encoded + b"\0")
            if tar is not None:
                info = tarfile.TarInfo(entry.path)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(entry.mtime)
                tar.addfile(info)
        elif entry.kind == "symlink":
            outer.update(b"l\0" + encoded + b"\0" + entry.target.encode("utf-8", "surrogateescape") + b"\0")
            if tar is not None:
                info = tarfile.TarInfo(entry.path)
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                info.mode, info.mtime = 0o777, int(entry.mtime)
                tar.addfile(info)
        else:
            content = hashlib.sha256()
            try:
                with open(full, "rb") as fh:
                    if tar is None:
                        while chunk := fh.read(1 << 20):
                            content.update(chunk)
                    else:
                        size = os.fstat(fh.fileno()).st_size
                        info = tarfile.TarInfo(entry.path)
                        info.size, info.mode, info.mtime = size, _tar_mode(entry), int(entry.mtime)
                        if entry.path == IGNORE_FILE and src.inside is None:
                            ignore_text = fh.read(size)
                            content.update(ignore_text)
                        else:
                            tar.addfile(info, _TeeReader(fh, content))
            except FileNotFoundError:
                continue  # removed since the walk (an editor's temporary file): not sent
            except OSError as exc:
                if exc.errno is None:  # tarfile: the file shrank while it was being sent
                    raise DevmeshError(f"{full} changed while the build context of "
                                       f"{src.service} was being sent; try again") from None
                raise UserInputError(f"cannot read {full} in the build context of "
                                     f"{src.service}: {exc.strerror or exc}") from None
            mark = b"x" if entry.executable else b"-"
            outer.update(b"f\0" + encoded + b"\0" + mark + b"\0" + content.digest())
    if src.inside is not None:
        dockerfile = src.inside
        outer.update(b"dockerfile-in-context\0" + dockerfile.encode("utf-8", "surrogateescape") + b"\0")
    else:
        text = src.dockerfile.read_bytes()
        dockerfile = name = _external_dockerfile_name(text)
        outer.update(b"dockerfile\0" + hashlib.sha256(text).digest())
        if tar is not None:
            _add_bytes(tar, name, text)
            # The builder drops what .dockerignore names from what COPY sees: name the
            # Dockerfile devmesh adds there (as the Docker CLI and docker-py do).
            if ignore_text is None:
                ignore_text = IGNORE_FILE.encode() + b"\n"
            elif not ignore_text.endswith(b"\n"):
                ignore_text += b"\n"
            _add_bytes(tar, IGNORE_FILE, ignore_text + name.encode() + b"\n")
    for key in sorted(src.build_args):
        outer.update(b"arg\0" + key.encode() + b"\0" + src.build_args[key].encode() + b"\0")
    return outer.hexdigest()[:TAG_LENGTH], dockerfile


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def content_tag(project: Project, service: str, root: Path | None = None, *,
                build_args_override: Mapping[str, str] | None = None) -> str:
    """The tag of ``service``'s image built from the checkout at ``root`` (default: the
    project's own directory): a digest of the files Docker would send, each with its path,
    execute bit and content, of the Dockerfile and of the sorted build arguments."""
    return content_digest(sources_of(project, service, root, build_args_override))[0]


def context_paths(project: Project, service: str, root: Path | None = None) -> list[str]:
    """The paths (relative to the build context) Docker would send for ``service``."""
    src = sources_of(project, service, root, None)
    return [e.path for e in walk_context(src.context, src.rules)]


def image_ref(project: Project, service: str, tag: str) -> str:
    """The local image reference of ``service`` at ``tag``."""
    return f"{REGISTRY_HOST}/{project.app}/{service}:{tag}"


def context_tar(src: Sources) -> tuple[IO[bytes], str, str, int]:
    """The build context as a tar in a temporary file, its tag, the Dockerfile's name in it,
    and its size in bytes."""
    spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller
    try:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tag, dockerfile = content_digest(src, tar)
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool, tag, dockerfile, size
