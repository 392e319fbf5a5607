"""Putting built images where the cluster pulls them: the kind runtime's side of the one push
(devmesh.gitops.publish), which sends only the layers the registry lacks and pins by digest.

Here: the ``ImagePublisher`` seam the runtime talks to, the names of built images
(``devmesh.local/<app>/<service>:<tag>``) in the cluster's registry, and how a built image
starts under devmesh's supervisor (``image_launch``: its ENTRYPOINT then CMD, as the engine
stores them, unless it has no ``/bin/sh`` or names no command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from devmesh.build import REGISTRY_HOST
from devmesh.events import Sink, Step, discard
from devmesh.gitops.publish import push_image
from devmesh.plan.supervisor import SHELL, Launch

if TYPE_CHECKING:
    import docker

UNREACHABLE_HINT = ("is the registry running? 'devmesh cluster status' checks it, "
                    "'devmesh cluster up' starts it")
NO_SHELL = f"its image has no {SHELL} to run devmesh's supervisor"
NO_COMMAND = "its image names no command (ENTRYPOINT or CMD)"


def image_launch(engine: docker.DockerClient, image: str) -> Launch:
    """How a container of the local ``image`` starts under the supervisor, or why it cannot."""
    import docker.errors

    api = engine.api
    config = api.inspect_image(image).get("Config") or {}  # type: ignore[no-untyped-call]
    command = (*(config.get("Entrypoint") or ()), *(config.get("Cmd") or ()))
    if not command:
        return Launch(why=NO_COMMAND)
    # A container made (never started) to look for the shell in the image's filesystem.
    created = api.create_container(image=image, labels={"devmesh.dev/role": "probe"})["Id"]
    try:
        api.get_archive(created, SHELL)
    except docker.errors.NotFound:
        return Launch(why=NO_SHELL)
    finally:
        api.remove_container(created, force=True)
    return Launch(tuple(str(part) for part in command))


class ImagePublisher(Protocol):
    """Makes a locally built image pullable by the cluster."""

    def publish(self, local_ref: str, *, sink: Sink = discard) -> str:
        """The digest-pinned reference (``registry/app/service@sha256:…``) of ``local_ref``."""
        ...

    def launch(self, local_ref: str) -> Launch:
        """How a container of ``local_ref`` starts under devmesh's supervisor, or why not."""
        ...


def remote_repository(local_ref: str, registry: str) -> tuple[str, str]:
    """``devmesh.local/shop/api:1a2b`` → (``127.0.0.1:5001/shop/api``, ``1a2b``)."""
    name, _, tag = local_ref.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"not a tagged image reference: {local_ref!r}")
    path = name.removeprefix(f"{REGISTRY_HOST}/")
    return f"{registry}/{path}", tag


class DockerPublisher:
    """Pushes with the Docker engine that built the image, once per image and process."""

    def __init__(self, client: docker.DockerClient, registry: str) -> None:
        self.client = client
        self.registry = registry
        self._done: dict[str, str] = {}

    def publish(self, local_ref: str, *, sink: Sink = discard) -> str:
        if local_ref in self._done:
            return self._done[local_ref]
        repository, tag = remote_repository(local_ref, self.registry)
        service = repository.rsplit("/", 1)[-1]
        pushed = push_image(self.client, local_ref, repository, tag, unreachable_hint=UNREACHABLE_HINT)
        pinned = str(pushed.ref)
        layers = f"{pushed.sent} layer(s) sent, {pushed.present} already there"
        sink(Step(f"pushed {service}: {pinned} ({layers})", service=service, changed=pushed.sent > 0))
        self._done[local_ref] = pinned
        return pinned

    def launch(self, local_ref: str) -> Launch:
        return image_launch(self.client, local_ref)
