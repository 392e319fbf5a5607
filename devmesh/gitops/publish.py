"""Push a local image to a registry and pin it by the digest the registry gave.

The one push for both of its users: promoting a local image into the first tier
(``publish_image``) and the kind runtime, whose ``DockerPublisher``
(devmesh.runtime.kind.publish) pushes every image it runs. A push sends only the layers the
registry lacks (unlike ``kind load``, which copies whole images into every node); the digest is
what manifests and Deployments name, so what runs is exactly the bytes that were pushed,
whatever happens to the tag later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker
import requests.exceptions
from docker.errors import APIError, DockerException, ImageNotFound

from devmesh.errors import DevmeshError, MissingDependency, UserInputError
from devmesh.gitops.images import ImageRef, check_digest
from devmesh.gitops.layout import image_name


class PushFailed(DevmeshError):
    """The registry did not take an image."""


@dataclass(frozen=True)
class Pushed:
    """An image in the registry, pinned by digest, and how many of its layers the push sent."""

    ref: ImageRef
    sent: int
    present: int  # layers the registry already had


def push_image(client: docker.DockerClient, local: str, repository: str, tag: str, *,
               unreachable_hint: str | None = None) -> Pushed:
    """Tag ``local`` as ``repository:tag``, push it, and pin it by the digest the registry
    reported (or, when the push's output named none, the one the engine recorded).

    A failed push is a PushFailed naming the image; ``unreachable_hint`` is its hint when the
    registry could not be reached at all.
    """
    digest = ""
    sent = present = 0
    error = ""
    try:
        client.api.tag(local, repository, tag)
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                error = str(detail.get("message") or chunk.get("error") or "unknown error")
                break
            status = str(chunk.get("status") or "")
            if status == "Pushed":
                sent += 1
            elif status == "Layer already exists":
                present += 1
            aux = chunk.get("aux") or {}
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
    except APIError as exc:
        error = str(exc.explanation or exc)
    except requests.exceptions.RequestException as exc:
        error = str(exc)
    if error:
        unreachable = any(sign in error.lower() for sign in ("connection refused", "no such host"))
        raise PushFailed(f"pushing {repository}:{tag} failed: {error.strip()}",
                         hint=unreachable_hint if unreachable else None)
    if not digest:
        digest = _digest_from_engine(client, repository, tag)
    return Pushed(ImageRef(repository, check_digest(digest)), sent, present)


def _digest_from_engine(client: docker.DockerClient, repository: str, tag: str) -> str:
    """The digest the engine recorded for ``repository`` after pushing ``repository:tag``."""
    info = client.images.get(f"{repository}:{tag}").attrs
    for entry in info.get("RepoDigests") or ():
        name, _, digest = str(entry).partition("@")
        if name == repository and digest:
            return digest
    raise PushFailed(f"pushing {repository}:{tag}: the registry returned no digest")


def registry_repository(registry: str, app: str, service: str) -> str:
    """Where ``service``'s images live in ``registry``."""
    return f"{registry.rstrip('/')}/{image_name(app, service)}"


def publish_image(local: str, registry: str, app: str, service: str, client: Any | None = None) -> ImageRef:
    """Tag ``local`` for ``registry``, push it, and pin it by the pushed digest.

    The tag is derived from the image id, so pushing the same image twice is the same push.
    """
    own = client is None
    try:
        if client is None:
            client = docker.from_env()
            client.ping()
    except DockerException as exc:
        raise MissingDependency(
            f"pushing {local!r} needs a Docker engine, and none answered ({exc})",
            hint="start Docker, or give --image NAME@sha256:<digest> of an image already in a registry",
        ) from None
    try:
        try:
            image = client.images.get(local)
        except ImageNotFound:
            raise UserInputError(
                f"no local image {local!r}: give NAME@sha256:<digest>, or a tag listed by 'docker images'"
            ) from None
        tag = "devmesh-" + str(image.id).removeprefix("sha256:")[:12]
        return push_image(client, local, registry_repository(registry, app, service), tag).ref
    finally:
        if own:
            client.close()
