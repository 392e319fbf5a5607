"""Promotion of a local image into the first tier: pushed to a real registry, pinned by digest."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devmesh.errors import DevmeshError, UserInputError
from devmesh.gitops.publish import publish_image
from tests.gitops.gitops_helpers import git

pytestmark = pytest.mark.docker


def _registry_digest(registry: str, repository: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{registry}/v2/{repository}/manifests/{tag}",
        method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.headers["Docker-Content-Digest"])


def test_publish_pins_the_digest_the_registry_holds(registry: str, local_image: str, docker_client: Any) -> None:
    ref = publish_image(local_image, registry, "shop", "api", client=docker_client)
    image_id = docker_client.images.get(local_image).id.removeprefix("sha256:")
    tag = f"devmesh-{image_id[:12]}"
    assert ref.name == f"{registry}/shop/api"
    assert ref.digest == _registry_digest(registry, "shop/api", tag)
    assert publish_image(local_image, registry, "shop", "api", client=docker_client) == ref  # same asset


def test_promote_a_local_image_into_the_first_tier(
    registry: str, local_image: str, project_file: Path, devmesh: Any, remote: Path, docker_client: Any
) -> None:
    root = project_file.parent
    config = project_file.read_text().replace("manifests:\n", f"manifests:\n  registry: '{registry}'\n")
    project_file.write_text(config)
    assert devmesh(root, "manifests", "init").code == 0

    refused = devmesh(root, "promote", "api", "--to", "beta", "--image", local_image, "--yes")
    assert refused.code == 2 and "only for the first tier" in refused.err

    result = devmesh(root, "promote", "api", "--to", "dev", "--image", local_image, "--yes")
    assert result.code == 0, result.err
    pinned = json.loads(devmesh(root, "tiers", "--json").out)["services"]["api"]["dev"]["image"]
    name, digest = pinned.split("@")
    assert name == f"{registry}/shop/api"
    tag = "devmesh-" + str(docker_client.images.get(local_image).id).removeprefix("sha256:")[:12]
    assert digest == _registry_digest(registry, "shop/api", tag)
    assert f"Devmesh-Image: {pinned}" in git(remote, "log", "-1", "--format=%B", "main")

    # beta then takes exactly that digest, without pushing anything
    assert devmesh(root, "promote", "api", "--to", "beta", "--yes").code == 0
    assert json.loads(devmesh(root, "tiers", "--json").out)["services"]["api"]["beta"]["image"] == pinned


def test_unknown_local_image_and_unreachable_registry(local_image: str, docker_client: Any) -> None:
    with pytest.raises(UserInputError, match="no local image 'devmesh-test/absent:1'"):
        publish_image("devmesh-test/absent:1", "127.0.0.1:5001", "shop", "api", client=docker_client)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DevmeshError, match=f"pushing 127.0.0.1:{port}/shop/api:devmesh-.* failed"):
        publish_image(local_image, f"127.0.0.1:{port}", "shop", "api", client=docker_client)


def test_promote_builds_the_branch_and_pins_what_the_registry_holds(
    registry: str, project_file: Path, devmesh: Any, remote: Path, docker_client: Any
) -> None:
    root = project_file.parent
    config = project_file.read_text().replace("manifests:\n", f"manifests:\n  registry: '{registry}'\n")
    project_file.write_text(config)
    (root / "api" / "Dockerfile").write_text("FROM scratch\nCOPY price.txt /price.txt\n")
    (root / "api" / "price.txt").write_text("0.50\n")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "shop"],
                 ["checkout", "-q", "-b", "cheaper"]):
        git(root, *args)
    (root / "api" / "price.txt").write_text("0.40\n")
    git(root, "commit", "-qam", "cheaper apples")
    (root / "api" / "price.txt").write_text("0.30\n")  # uncommitted: not part of the image
    assert devmesh(root, "manifests", "init").code == 0
    try:
        both = devmesh(root, "promote", "api", "--to", "dev", "--branch", "cheaper", "--image", "x", "--yes")
        assert both.code == 2 and "not both" in both.err
        result = devmesh(root, "promote", "api", "--to", "dev", "--branch", "cheaper", "--yes")
        assert result.code == 0, result.err
        assert "uncommitted changes on cheaper are not part of the image" in result.err
        pinned = json.loads(devmesh(root, "tiers", "--json").out)["services"]["api"]["dev"]["image"]
        name, digest = pinned.split("@")
        assert name == f"{registry}/shop/api"
        # What the registry holds under that digest is the committed file, built from the branch.
        pulled = docker_client.images.pull(f"{name}@{digest}")
        container = docker_client.containers.create(pulled.id, command=["x"])
        try:
            exported = b"".join(container.export())
        finally:
            container.remove(force=True)
        assert b"0.40" in exported and b"0.30" not in exported
    finally:
        for image in docker_client.images.list(filters={"label": "devmesh.dev/app=shop"}):
            docker_client.images.remove(image.id, force=True)


def test_the_kind_runtimes_publisher_pushes_the_same_way(registry: str, local_image: str,
                                                         docker_client: Any) -> None:
    """The kind runtime's DockerPublisher names built images devmesh.local/<app>/<service>:<tag>
    and pushes them with the same push as promotion: pinned by what the registry holds."""
    from devmesh.build import REGISTRY_HOST
    from devmesh.events import Event
    from devmesh.runtime.kind.publish import DockerPublisher

    built = f"{REGISTRY_HOST}/shop/api:kindtest{os.getpid()}"
    docker_client.images.get(local_image).tag(built)
    events: list[Event] = []
    publisher = DockerPublisher(docker_client, registry)
    try:
        pinned = publisher.publish(built, sink=events.append)
        name, digest = pinned.split("@")
        assert name == f"{registry}/shop/api"
        assert digest == _registry_digest(registry, "shop/api", f"kindtest{os.getpid()}")
        assert [e.message for e in events] == [f"pushed api: {pinned} (1 layer(s) sent, 0 already there)"]
        assert DockerPublisher(docker_client, registry).publish(built) == pinned  # same bytes, same pin
        assert publisher.publish(built, sink=events.append) == pinned and len(events) == 1  # once
    finally:
        _untag(docker_client, built, f"{registry}/shop/api:kindtest{os.getpid()}")


def _untag(client: Any, *refs: str) -> None:
    from docker.errors import ImageNotFound

    for ref in refs:
        try:
            client.images.remove(ref)
        except ImageNotFound:
            pass


def test_the_kind_runtimes_publisher_names_an_unreachable_registry(local_image: str,
                                                                   docker_client: Any) -> None:
    import socket

    from devmesh.build import REGISTRY_HOST
    from devmesh.gitops.publish import PushFailed
    from devmesh.runtime.kind.publish import DockerPublisher

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    built = f"{REGISTRY_HOST}/shop/api:unreachable{os.getpid()}"
    docker_client.images.get(local_image).tag(built)
    try:
        with pytest.raises(PushFailed, match=f"pushing 127.0.0.1:{port}/shop/api:unreachable.* failed") as caught:
            DockerPublisher(docker_client, f"127.0.0.1:{port}").publish(built)
        assert caught.value.hint is not None and "devmesh cluster up" in caught.value.hint
    finally:
        _untag(docker_client, built, f"127.0.0.1:{port}/shop/api:unreachable{os.getpid()}")


def test_a_first_tier_canary_of_a_local_image_pushes_it_and_pins_the_registrys_digest(
    registry: str, local_image: str, project_file: Path, devmesh: Any, remote: Path, docker_client: Any
) -> None:
    root = project_file.parent
    config = project_file.read_text().replace("manifests:\n", f"manifests:\n  registry: '{registry}'\n")
    project_file.write_text(config)
    assert devmesh(root, "manifests", "init").code == 0
    first = "127.0.0.1:5001/shop/api@sha256:" + "a" * 64
    assert devmesh(root, "promote", "api", "--to", "dev", "--image", first, "--yes").code == 0
    assert devmesh(root, "promote", "api", "--to", "beta", "--yes").code == 0

    refused = devmesh(root, "canary", "api", "--tier", "beta", "--image", local_image, "--yes")
    assert refused.code == 2 and "only for the first tier" in refused.err

    result = devmesh(root, "canary", "api", "--tier", "dev", "--image", local_image, "--weight", "10", "--yes")
    assert result.code == 0, result.err
    traffic = json.loads(devmesh(root, "tiers", "--json").out)["services"]["api"]["dev"]["traffic"]
    name, digest = traffic["candidate"].split("@")
    assert name == f"{registry}/shop/api"
    tag = "devmesh-" + str(docker_client.images.get(local_image).id).removeprefix("sha256:")[:12]
    assert digest == _registry_digest(registry, "shop/api", tag)
