"""A service's image, found by its content tag or built with the Docker SDK (progress to a
sink), never left under the tag of a failed build."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
import requests.exceptions

from devmesh.build.engine import DockerfileError, engine_error
from devmesh.build.log import BuildLog
from devmesh.build.tags import content_digest, context_tar, image_ref, sources_of
from devmesh.events import BuildDone, BuildProgress, Sink, Warning, discard
from devmesh.plan.k8s import APP_LABEL, MANAGED_BY, SERVICE_LABEL
from devmesh.units import byte_size

if TYPE_CHECKING:
    from devmesh.config import Project

_PARSE_ERROR_RE = re.compile(r"dockerfile parse error (?:on )?line (\d+): (.*)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class BuiltImage:
    service: str
    ref: str
    tag: str
    cached: bool
    seconds: float


def image_labels(project: Project, service: str) -> dict[str, str]:
    """The labels on every image devmesh builds (garbage collection selects by them)."""
    return {MANAGED_BY: "devmesh", APP_LABEL: project.app, SERVICE_LABEL: service}


def _image_exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def _remove_image(client: docker.DockerClient, ref: str) -> None:
    try:
        client.api.remove_image(ref, force=True)
    except docker.errors.ImageNotFound:
        pass


def _cached(client: docker.DockerClient, service: str, ref: str, tag: str, sink: Sink,
            started: float) -> BuiltImage | None:
    try:
        exists = _image_exists(client, ref)
    except (requests.exceptions.RequestException, docker.errors.DockerException) as exc:
        raise engine_error(exc) from exc
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
    started = time.monotonic()
    src = sources_of(project, service, root, build_args_override)
    tag = content_digest(src)[0]
    ref = image_ref(project, service, tag)
    if (found := _cached(client, service, ref, tag, sink, started)) is not None:
        return found

    spool, sent_tag, dockerfile, size = context_tar(src)
    with spool:
        if sent_tag != tag:  # a file changed since the tag was computed: what is sent decides
            tag, ref = sent_tag, image_ref(project, service, sent_tag)
            if (found := _cached(client, service, ref, tag, sink, started)) is not None:
                return found
        labels = image_labels(project, service)
        log = BuildLog(service, sink, src.build_args, label_steps=len(labels))
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
            raise engine_error(exc) from exc
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
