"""Service images: content-addressed tags, and builds with the Docker SDK.

The parts: :mod:`.engine` (the Docker engine's client, and the errors of talking to it and of
builds); :mod:`.tags` (a service's content tag, and the build context sent with it);
:mod:`.log` (following a build's output); :mod:`.images` (finding or building an image).
"""

from __future__ import annotations

from devmesh.build.engine import (
    BaseImageUnavailable,
    BuildFailed,
    DockerfileError,
    DockerUnavailable,
    docker_client,
)
from devmesh.build.images import BuiltImage, ensure_image, image_labels
from devmesh.build.tags import REGISTRY_HOST, TAG_LENGTH, content_tag, context_paths, image_ref

__all__ = [
    "REGISTRY_HOST", "TAG_LENGTH", "BaseImageUnavailable", "BuildFailed", "BuiltImage",
    "DockerUnavailable", "DockerfileError", "content_tag", "context_paths", "docker_client",
    "ensure_image", "image_labels", "image_ref",
]
