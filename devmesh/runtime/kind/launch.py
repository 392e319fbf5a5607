"""How the kind runtime starts the backends it live-syncs: under devmesh's supervisor with the
command of the image it built, unless that image cannot run it. What the image holds is the
publisher's to read (``ImagePublisher.launch``, ``devmesh.runtime.kind.publish``): it has the
engine that built it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devmesh.plan.launch import live_synced
from devmesh.plan.routing import Backend
from devmesh.plan.supervisor import Launch

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.runtime.kind.publish import ImagePublisher


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
