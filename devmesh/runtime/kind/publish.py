"""Putting built images where the cluster pulls them: push to the registry, pin by digest.

A push sends only the layers the registry lacks (unlike ``kind load``, which copies whole
images into every node). The digest the registry reports is what Deployments name, so a pod
runs exactly the bytes that were built, whatever happens to the tag later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from devmesh.build import REGISTRY_HOST
from devmesh.errors import DevmeshError
from devmesh.events import Sink, Step, discard

if TYPE_CHECKING:
    import docker


class PushFailed(DevmeshError):
    """The registry did not take an image."""


class ImagePublisher(Protocol):
    """Makes a locally built image pullable by the cluster."""

    def publish(self, local_ref: str, *, sink: Sink = discard) -> str:
        """The digest-pinned reference (``registry/app/service@sha256:…``) of ``local_ref``."""
        ...


def remote_repository(local_ref: str, registry: str) -> tuple[str, str]:
    """``devmesh.local/shop/api:1a2b`` → (``127.0.0.1:5001/shop/api``, ``1a2b``)."""
    name, _, tag = local_ref.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"not a tagged image reference: {local_ref!r}")
    path = name.removeprefix(f"{REGISTRY_HOST}/")
    return f"{registry}/{path}", tag


class DockerPublisher:
    """Tags and pushes with the Docker engine that built the image."""

    def __init__(self, client: docker.DockerClient, registry: str) -> None:
        self.client = client
        self.registry = registry
        self._done: dict[str, str] = {}

    def publish(self, local_ref: str, *, sink: Sink = discard) -> str:
        if local_ref in self._done:
            return self._done[local_ref]
        import docker.errors
        import requests.exceptions

        repository, tag = remote_repository(local_ref, self.registry)
        service = repository.rsplit("/", 1)[-1]
        digest = ""
        pushed = existing = 0
        error = ""
        try:
            self.client.api.tag(local_ref, repository, tag)
            for chunk in self.client.api.push(repository, tag=tag, stream=True, decode=True):
                if "error" in chunk or "errorDetail" in chunk:
                    detail = chunk.get("errorDetail") or {}
                    error = str(detail.get("message") or chunk.get("error") or "unknown error")
                    break
                status = str(chunk.get("status") or "")
                if status == "Pushed":
                    pushed += 1
                elif status == "Layer already exists":
                    existing += 1
                aux = chunk.get("aux") or {}
                if isinstance(aux, dict) and aux.get("Digest"):
                    digest = str(aux["Digest"])
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            error = str(getattr(exc, "explanation", None) or exc)
        if error:
            hint = None
            if "connection refused" in error.lower() or "no such host" in error.lower():
                hint = "is the registry running? 'devmesh cluster status' checks it, 'devmesh cluster up' starts it"
            raise PushFailed(f"push of {repository}:{tag} to {self.registry} failed: {error}",
                             hint=hint)
        if not digest:
            digest = self._digest_from_engine(repository, tag)
        pinned = f"{repository}@{digest}"
        layers = f"{pushed} layer(s) sent, {existing} already there"
        sink(Step(f"pushed {service}: {pinned} ({layers})", service=service, changed=pushed > 0))
        self._done[local_ref] = pinned
        return pinned

    def _digest_from_engine(self, repository: str, tag: str) -> str:
        """The digest the engine recorded for ``repository`` after the push."""
        info = self.client.api.inspect_image(f"{repository}:{tag}")
        for entry in info.get("RepoDigests") or ():
            name, _, digest = str(entry).partition("@")
            if name == repository and digest:
                return digest
        raise PushFailed(f"the registry at {self.registry} reported no digest for {repository}")
