"""Which backends run under devmesh's supervisor, and with what command.

A backend devmesh live-syncs (a branch's, of a service whose ``sync`` is not ``[]``) starts
under the supervisor (``devmesh.plan.supervisor``), which needs the image's command: the kind
runtime reads it from the image it built (``devmesh.runtime.kind.publish.image_launch``); ``devmesh render``,
which builds nothing, from the Dockerfile, when the Dockerfile settles it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devmesh.dockerfile import DockerfileError, read_image
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend
from devmesh.plan.supervisor import Launch

if TYPE_CHECKING:
    from devmesh.config import Project

UNSETTLED = ("its Dockerfile names no ENTRYPOINT, so its command depends on the base image: "
             "'devmesh up' reads it from the image it builds")


def live_synced(project: Project, backend: Backend) -> bool:
    """Whether devmesh live-syncs ``backend``: a branch's, of a service that has sync rules
    (given, or read from its Dockerfile; ``sync: []`` turns them off)."""
    return backend.env != BASELINE_ENV and project.services[backend.service].sync != []


def dockerfile_launch(project: Project, backend: Backend) -> Launch | None:
    """The launch ``devmesh render`` shows, from the service's Dockerfile: its command when the
    final stage names an ENTRYPOINT (then the base image's CMD is reset and the Dockerfile's own
    follows), else unsettled; None for a backend devmesh does not live-sync."""
    if not live_synced(project, backend):
        return None
    svc = project.services[backend.service]
    context = project.context_dir(backend.service)
    try:
        image = read_image(project.dockerfile_path(backend.service), context,
                           build_args=svc.build_args)
    except DockerfileError as exc:
        return Launch(why=f"its Dockerfile cannot be read ({exc})")
    if image.stage.base == "scratch":
        return Launch(why="its image is FROM scratch: no /bin/sh to run the supervisor")
    if image.stage.entrypoint is None:
        return Launch(why=UNSETTLED)
    return Launch(image.command)
