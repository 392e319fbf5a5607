"""How the kind runtime starts the backends it live-syncs: under devmesh's supervisor with the
command of the image it built (its ENTRYPOINT then CMD, as the engine stores them), unless the
image has no ``/bin/sh`` to run the supervisor or names no command. What the image holds is the
publisher's to read (``ImagePublisher.launch``): it has the engine that built it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devmesh.plan.launch import live_synced
from devmesh.plan.routing import Backend
from devmesh.plan.supervisor import SHELL, Launch

if TYPE_CHECKING:
    import docker

    from devmesh.config import Project
    from devmesh.runtime.kind.publish import ImagePublisher

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


class ImageLaunches:
    """``launch_for`` for ``render_objects``: the launch of each live-synced backend's built
    image (each image looked at once)."""

    def __init__(self, project: Project, publisher: ImagePublisher, images: dict[Backend, str]) -> None:
        self.project = project
        self.publisher = publisher
        self.images = images
        self._seen: dict[str, Launch] = {}

    def __call__(self, backend: Backend) -> Launch | None:
        if not live_synced(self.project, backend) or backend not in self.images:
            return None
        image = self.images[backend]
        if image not in self._seen:
            self._seen[image] = self.publisher.launch(image)
        return self._seen[image]
