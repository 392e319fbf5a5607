"""Push a local image to the registry and return it pinned by the digest the registry gave."""

from __future__ import annotations

from typing import Any

from devmesh.errors import DevmeshError, MissingDependency, UserInputError
from devmesh.gitops.images import ImageRef, check_digest
from devmesh.gitops.layout import image_name


def registry_repository(registry: str, app: str, service: str) -> str:
    """Where ``service``'s images live in ``registry``."""
    return f"{registry.rstrip('/')}/{image_name(app, service)}"


def publish_image(local: str, registry: str, app: str, service: str, client: Any | None = None) -> ImageRef:
    """Tag ``local`` for ``registry``, push it, and pin it by the pushed digest.

    The tag is derived from the image id, so pushing the same image twice is the same push.
    """
    import docker
    from docker.errors import APIError, DockerException, ImageNotFound

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
        repository = registry_repository(registry, app, service)
        tag = "devmesh-" + str(image.id).removeprefix("sha256:")[:12]
        image.tag(repository, tag)
        digest = None
        try:
            for event in client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in event:
                    raise DevmeshError(f"pushing {repository}:{tag} failed: {event['error']}".strip())
                aux = event.get("aux") or {}
                if aux.get("Digest"):
                    digest = str(aux["Digest"])
        except APIError as exc:
            raise DevmeshError(f"pushing {repository}:{tag} failed: {exc.explanation or exc}") from None
        if digest is None:
            raise DevmeshError(f"pushing {repository}:{tag}: the registry {registry} returned no digest")
        return ImageRef(repository, check_digest(digest))
    finally:
        if own:
            client.close()
