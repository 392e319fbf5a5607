"""Service images: content-addressed tags, and builds with the Docker SDK.

A service's tag is a digest of exactly what a build reads: every file of the build context
that Docker would send (``.dockerignore`` applied by Docker's rules), the Dockerfile, and the
build arguments. Same sources → same tag → no build; any change → a new tag.

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
import re
import tarfile
import tempfile
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from devmesh.dockerignore import IGNORE_FILE, ContextEntry, IgnoreRules, walk_context
from devmesh.errors import DevmeshError, MissingDependency, UserInputError
from devmesh.events import BuildDone, BuildProgress, Sink, Warning, discard
from devmesh.plan.k8s import APP_LABEL, MANAGED_BY, SERVICE_LABEL
from devmesh.units import byte_size

if TYPE_CHECKING:
    import docker

    from devmesh.config import Project

REGISTRY_HOST = "devmesh.local"
TAG_LENGTH = 16
# Bumped whenever what goes into a tag changes, so old tags are never reused wrongly.
_TAG_SCHEME = b"devmesh-content-tag-v1\0"
_DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
_OUTPUT_TAIL = 15

_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_PARSE_ERROR_RE = re.compile(r"dockerfile parse error (?:on )?line (\d+): (.*)", re.IGNORECASE | re.DOTALL)
_UNUSED_ARGS_RE = re.compile(r"\[Warning\] One or more build-args \[(.*)\] were not consumed")
# The classic builder wraps a step's stderr in colour codes.
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Lines of the classic builder's own bookkeeping, not output of the step.
_NOISE_RE = re.compile(r"^( ---> |Removing intermediate container |Successfully (built|tagged) )")


class DockerUnavailable(MissingDependency):
    """The Docker engine cannot be reached."""


class BuildFailed(DevmeshError):
    """An image build failed; the message names the service and the failing step."""

    def __init__(self, message: str, *, service: str, step: int | None = None,
                 steps: int | None = None, instruction: str = "", error: str = "",
                 output: tuple[str, ...] = (), hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.service = service
        self.step = step
        self.steps = steps
        self.instruction = instruction
        self.error = error
        self.output = output


class DockerfileError(BuildFailed):
    """The Dockerfile does not parse; the message gives its path and line."""


class BaseImageUnavailable(BuildFailed):
    """A ``FROM`` image is not on this machine and could not be pulled."""

    def __init__(self, message: str, *, image: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.image = image


@dataclass(frozen=True)
class BuiltImage:
    service: str
    ref: str
    tag: str
    cached: bool
    seconds: float


# --- the Docker engine --------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    """The most specific cause in an exception chain, in a few words."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop()
        if cur in seen:
            continue
        seen.append(cur)
        todo.extend(a for a in getattr(cur, "args", ()) if isinstance(a, BaseException))
        for linked in (cur.__cause__, cur.__context__):
            if linked is not None:
                todo.append(linked)
    for cur in seen:
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).strip() or type(exc).__name__


def _docker_host() -> tuple[str, bool]:
    """The engine address to use, and whether it came from a non-default ``docker context``."""
    host = os.environ.get("DOCKER_HOST")
    if host:
        return host, False
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_current_context()
        if context is not None and context.Name != "default" and context.Host and not context.TLSConfig:
            return str(context.Host), True
    except Exception:  # a broken ~/.docker/config.json must not hide the real problem
        pass
    return _DEFAULT_DOCKER_HOST, False


def _unreachable(host: str, exc: BaseException) -> DockerUnavailable:
    reason = _reason(exc)
    hint = None
    if "ermission denied" in reason and host.startswith("unix://"):
        hint = "add your user to the 'docker' group (then log in again), or set DOCKER_HOST"
    return DockerUnavailable(
        f"cannot reach the Docker engine at {host}: {reason} — start it "
        "(e.g. `sudo systemctl start docker`) or set DOCKER_HOST",
        hint=hint,
    )


def docker_client(*, timeout: int = 60) -> docker.DockerClient:
    """A client for the Docker engine (DOCKER_HOST, else the current docker context, else the
    local socket), checked with a ping; DockerUnavailable when it does not answer."""
    import docker

    host, from_context = _docker_host()
    try:
        if from_context:
            client = docker.DockerClient(base_url=host, timeout=timeout)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as exc:  # docker-py raises DockerException, requests errors, OSError
        raise _unreachable(host, exc) from exc
    return client


# --- content tags -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sources:
    """Where a service's build reads from, resolved against one checkout."""

    service: str
    context: Path
    dockerfile: Path
    display: str  # the Dockerfile's path relative to the checkout, for messages
    inside: str | None  # the Dockerfile's path in the context, None when it lies outside
    rules: IgnoreRules
    build_args: dict[str, str]


def _sources(project: Project, service: str, root: Path | None,
             build_args_override: Mapping[str, str] | None) -> _Sources:
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
    return _Sources(service, context, dockerfile, display, inside, rules.keeping(keep), args)


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


def _digest(src: _Sources, tar: tarfile.TarFile | None = None) -> tuple[str, str]:
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
    return _digest(_sources(project, service, root, build_args_override))[0]


def context_paths(project: Project, service: str, root: Path | None = None) -> list[str]:
    """The paths (relative to the build context) Docker would send for ``service``."""
    src = _sources(project, service, root, None)
    return [e.path for e in walk_context(src.context, src.rules)]


def image_ref(project: Project, service: str, tag: str) -> str:
    """The local image reference of ``service`` at ``tag``."""
    return f"{REGISTRY_HOST}/{project.app}/{service}:{tag}"


def image_labels(project: Project, service: str) -> dict[str, str]:
    """The labels on every image devmesh builds (garbage collection selects by them)."""
    return {MANAGED_BY: "devmesh", APP_LABEL: project.app, SERVICE_LABEL: service}


# --- builds -------------------------------------------------------------------------------


def _image_exists(client: docker.DockerClient, ref: str) -> bool:
    import docker.errors

    try:
        client.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _remove_image(client: docker.DockerClient, ref: str) -> None:
    import docker.errors

    try:
        client.api.remove_image(ref, force=True)
    except docker.errors.ImageNotFound:
        pass


_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _expand(text: str, values: Mapping[str, str]) -> str:
    """``$VAR``, ``${VAR}`` and ``${VAR:-default}`` as the builder expands them in FROM."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        value = values.get(name, "")
        if not value and m.group(2) is not None:
            return m.group(2)
        return value

    return _VAR_RE.sub(sub, text)


def _from_image(instruction: str, args: Mapping[str, str]) -> str:
    """The image a ``FROM`` instruction names, with build arguments expanded."""
    words = [w for w in instruction.split()[1:] if not w.startswith("--")]
    return _expand(words[0], args) if words else ""


class _BuildLog:
    """Follows the builder's output: lines, the current step, what each step printed."""

    def __init__(self, service: str, sink: Sink, build_args: Mapping[str, str],
                 label_steps: int = 0) -> None:
        self.service = service
        # The builder runs each build-time label as one more LABEL step after the Dockerfile's
        # own; steps are counted without them, as in the user's Dockerfile.
        self.label_steps = label_steps
        self.sink = sink
        self.step: int | None = None
        self.steps: int | None = None
        self.instruction = ""
        self.step_output: deque[str] = deque(maxlen=_OUTPUT_TAIL)
        self.global_args: dict[str, str] = {}
        self.build_args = dict(build_args)
        self.seen_from = False
        self.unused_args: list[str] = []
        self._partial = ""

    def feed(self, text: str) -> None:
        text = self._partial + text
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._line(_ANSI_RE.sub("", line).rstrip("\r"))

    def flush(self) -> None:
        if self._partial:
            line, self._partial = self._partial, ""
            self._line(_ANSI_RE.sub("", line).rstrip("\r"))

    def status(self, chunk: Mapping[str, Any]) -> None:
        """A pull progress record: report its state changes, not every byte counter."""
        if chunk.get("progressDetail"):
            return
        text = " ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k))
        if text:
            self._emit(text)

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        m = _STEP_RE.match(line)
        if m:
            step, total = int(m.group(1)), int(m.group(2))
            steps = max(total - self.label_steps, 1)
            self.step, self.steps = min(step, steps), steps
            self.instruction = m.group(3).strip()
            self.step_output.clear()
            self._note_instruction(self.instruction)
            if step > steps:
                line = f"labelling the image: {self.instruction}"
            else:
                line = f"Step {step}/{steps} : {self.instruction}"
        else:
            unused = _UNUSED_ARGS_RE.search(line)
            if unused:
                self.unused_args = unused.group(1).split()
            elif not _NOISE_RE.match(line):
                self.step_output.append(line)
        self._emit(line)

    def _note_instruction(self, instruction: str) -> None:
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            self.seen_from = True
        elif keyword.upper() == "ARG" and not self.seen_from:
            for decl in rest.split():
                name, eq, default = decl.partition("=")
                self.global_args[name] = default.strip("\"'") if eq else ""

    def _emit(self, line: str) -> None:
        self.sink(BuildProgress(f"{self.service}: {line}", service=self.service,
                                step=self.step, steps=self.steps))

    @property
    def where(self) -> str:
        if self.step is None:
            return ""
        return f" at step {self.step}/{self.steps} ({_shorten(self.instruction)})"

    def failure(self, error: str) -> BuildFailed:
        error = error.strip()
        output = tuple(self.step_output)
        message = f"build of {self.service} failed{self.where}: {error}"
        if output:
            message += "\n" + "\n".join(f"    {line}" for line in output)
        kw: dict[str, Any] = dict(service=self.service, step=self.step, steps=self.steps,
                                  instruction=self.instruction, error=error, output=output)
        if self.instruction.split(" ", 1)[0].upper() == "FROM":
            args = {**self.global_args, **self.build_args}
            image = _from_image(self.instruction, args) or self.instruction
            if "BASE_IMAGE" in self.global_args:
                hint = (f"set services.{self.service}.build_args.BASE_IMAGE in devmesh.yaml "
                        "to an image this machine has (docker image ls)")
            else:
                hint = (f"build or load {image} first (docker image ls lists what this machine "
                        f"has), or make the base configurable: 'ARG BASE_IMAGE={image}' and "
                        f"'FROM ${{BASE_IMAGE}}' in the Dockerfile, then set "
                        f"services.{self.service}.build_args.BASE_IMAGE")
            message = (f"build of {self.service} failed{self.where}: base image {image} is not "
                       f"on this machine and could not be pulled: {error}")
            return BaseImageUnavailable(message, image=image, hint=hint, **kw)
        return BuildFailed(message, **kw)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _context_tar(src: _Sources) -> tuple[IO[bytes], str, str, int]:
    """The build context as a tar in a temporary file, its tag, the Dockerfile's name in it,
    and its size in bytes."""
    spool: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller
    try:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tag, dockerfile = _digest(src, tar)
        size = spool.tell()
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool, tag, dockerfile, size


def _engine_error(exc: BaseException) -> DevmeshError:
    """A failure talking to the engine (outside a build's own output) as a DevmeshError."""
    import docker.errors

    if isinstance(exc, docker.errors.APIError):
        return DevmeshError(f"the Docker engine refused a request: {exc.explanation or exc}")
    return _unreachable(_docker_host()[0], exc)


def _cached(client: docker.DockerClient, service: str, ref: str, tag: str, sink: Sink,
            started: float) -> BuiltImage | None:
    import docker.errors
    import requests.exceptions

    try:
        exists = _image_exists(client, ref)
    except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
        raise _engine_error(exc) from exc
    if not exists:
        return None
    seconds = time.monotonic() - started
    sink(BuildDone(f"{service}: {ref} is up to date", service=service, image=ref, cached=True,
                   seconds=seconds))
    return BuiltImage(service, ref, tag, True, seconds)


def ensure_image(client: docker.DockerClient, project: Project, service: str, *,
                 root: Path | None = None, sink: Sink = discard,
                 build_args_override: Mapping[str, str] | None = None) -> BuiltImage:
    """The image of ``service`` from the checkout at ``root``: found by its content tag, or
    built (progress to ``sink``). Raises BuildFailed naming the failing step; a failed build
    leaves no image under the tag."""
    import docker.errors
    import requests.exceptions

    started = time.monotonic()
    src = _sources(project, service, root, build_args_override)
    tag = _digest(src)[0]
    ref = image_ref(project, service, tag)
    if (found := _cached(client, service, ref, tag, sink, started)) is not None:
        return found

    spool, sent_tag, dockerfile, size = _context_tar(src)
    with spool:
        if sent_tag != tag:  # a file changed since the tag was computed: what is sent decides
            tag, ref = sent_tag, image_ref(project, service, sent_tag)
            if (found := _cached(client, service, ref, tag, sink, started)) is not None:
                return found
        labels = image_labels(project, service)
        log = _BuildLog(service, sink, src.build_args, label_steps=len(labels))
        sink(BuildProgress(f"{service}: building {ref} (context {byte_size(size)})", service=service))
        error: str | None = None
        try:
            for chunk in client.api.build(
                fileobj=spool, custom_context=True, dockerfile=dockerfile, tag=ref,
                buildargs=dict(src.build_args), rm=True, forcerm=True, decode=True,
                labels=labels,
            ):
                if "stream" in chunk:
                    log.feed(str(chunk["stream"]))
                elif "error" in chunk or "errorDetail" in chunk:
                    detail = chunk.get("errorDetail") or {}
                    error = str(detail.get("message") or chunk.get("error") or "unknown error")
                    break
                elif "status" in chunk:
                    log.status(chunk)
        except docker.errors.APIError as exc:
            explanation = str(exc.explanation or exc)
            parse = _PARSE_ERROR_RE.search(explanation)
            if parse:
                raise DockerfileError(
                    f"build of {service} failed: {src.display}:{parse.group(1)}: "
                    f"{parse.group(2).strip()}", service=service, error=explanation) from None
            error = explanation
        except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
            raise _engine_error(exc) from exc
        finally:
            log.flush()
        if error is None and not _image_exists(client, ref):
            error = "the builder finished without producing an image"
        if error is not None:
            failure = log.failure(error)
            _remove_image(client, ref)  # never leave an image under the tag of a failed build
            raise failure
    for name in log.unused_args:
        sink(Warning(f"{service}: build argument {name} is not declared in {src.display} "
                     f"(no 'ARG {name}'); it was ignored"))
    seconds = time.monotonic() - started
    sink(BuildDone(f"{service}: built {ref} in {seconds:.1f}s", service=service, image=ref,
                   cached=False, seconds=seconds))
    return BuiltImage(service, ref, tag, False, seconds)
