"""``devmesh demo``: a first run with nothing written by hand.

It checks for a Docker engine, finds or makes the two images the starter needs (a Python base
and Envoy: pulled when a registry answers, else built here from Debian's packages and PyPI's
Envoy), scaffolds the shop starter into a new folder, changes one service on a branch, brings
that branch's preview up on the docker runtime beside the baseline, and asks the preview for
the change, so the first thing a user sees is devmesh doing its job end to end.
"""

from __future__ import annotations

import json
import re
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devmesh import doctor
from devmesh.app import environments
from devmesh.build.local_images import (
    LOCAL_ENVOY_IMAGE,
    PYTHON_BASE_IMAGE,
    build_envoy,
    build_python_base,
    check_envoy,
    check_python_base,
    image_exists,
)
from devmesh.config import CONFIG_NAME, DEFAULT_ENVOY_IMAGE, load_project
from devmesh.errors import DevmeshError, MissingDependency, UserInputError
from devmesh.events import Sink, Step, discard
from devmesh.ports import bind_error
from devmesh.scaffold import commit_all, create_starter, with_settings

if TYPE_CHECKING:
    import docker

    from devmesh.app.environments import UpOutcome

STARTER = "shop"
APP = "demo"
BRANCH = "cheaper-pears"
# The service the branch changes, the file and the line, and what the preview then answers.
SERVICE = "api"
SOURCE = Path("services") / SERVICE / "app.py"
PRICES_LINE = re.compile(r'^PRICES = \{"apple": 0\.5, "pear": 0\.8\}$', re.MULTILINE)
NEW_PRICES = {"apple": 0.5, "pear": 0.6}
# The starter's Dockerfiles build FROM this unless told otherwise (their BASE_IMAGE argument).
STARTER_BASE_IMAGE = "python:3.12-slim"
# The docker runtime's gateway port when it is free, else the next free one of these.
PORTS = range(8080, 8100)


@dataclass(frozen=True)
class Images:
    """The images the demo runs on: the services' base and the mesh's Envoy."""

    base: str
    envoy: str


@dataclass(frozen=True)
class Demo:
    root: Path
    branch: str
    outcome: UpOutcome
    header: str
    port: int
    answer: dict[str, object]

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def preview_url(self) -> str:
        return self.outcome.result.environment.preview_url or ""

    @property
    def baseline_url(self) -> str:
        return f"http://{APP}.localhost:{self.port}/"

    @property
    def env(self) -> str:
        return self.outcome.result.environment.name


def check_engine() -> None:
    """A Docker engine that answers, or the reason none does and how to get one."""
    check = doctor.check_docker()
    if check.status != "ok":
        raise MissingDependency(f"devmesh demo runs on a Docker engine: {check.detail}",
                                hint=check.fix or "install Docker: https://docs.docker.com/engine/install/")


def _pull(client: docker.DockerClient, name: str) -> str | None:
    """Pull ``name``; None when it worked, else the engine's reason in one line."""
    import docker.errors

    try:
        client.images.pull(name)
    except docker.errors.APIError as exc:
        return " ".join(str(exc.explanation or exc).split())
    return None


def _image(client: docker.DockerClient, what: str, given: str | None, default: str, local: str,
           build: Callable[[], object], sink: Sink) -> str:
    """The image to use for ``what``: the one given (here, or pulled), else the default or
    devmesh's own local build when this engine has one, else the default pulled, else built."""
    if given is not None:
        if image_exists(client, given):
            return given
        sink(Step(f"pulling {given} ({what})", changed=False))
        reason = _pull(client, given)
        if reason is not None:
            raise UserInputError(f"{what} image {given} is not on this engine and cannot be pulled: {reason}",
                                 hint="give an image 'docker images' lists, or leave the option out")
        return given
    for name in (default, local):
        if image_exists(client, name):
            sink(Step(f"{what}: {name}", changed=False))
            return name
    sink(Step(f"pulling {default} ({what})", changed=False))
    reason = _pull(client, default)
    if reason is None:
        return default
    sink(Step(f"cannot pull {default} ({reason}); building {local} here instead", changed=False))
    try:
        build()
    except DevmeshError as exc:
        raise type(exc)(f"{what}: cannot pull {default} ({reason}), and building {local} here failed: {exc}",
                        hint=exc.hint) from None
    return local


def ensure_images(client: docker.DockerClient, *, base: str | None = None, envoy: str | None = None,
                  sink: Sink = discard) -> Images:
    """The base and Envoy images, found, pulled or built (see ``_image``)."""
    def python_base() -> None:
        build_python_base(client, sink=sink)
        check_python_base(client)

    def envoy_on(base_image: str) -> Callable[[], None]:
        def build() -> None:
            build_envoy(client, base=base_image, sink=sink)
            check_envoy(client)
        return build

    base_image = _image(client, "the services' Python base", base, STARTER_BASE_IMAGE, PYTHON_BASE_IMAGE,
                        python_base, sink)
    envoy_image = _image(client, "the mesh's Envoy", envoy, DEFAULT_ENVOY_IMAGE, LOCAL_ENVOY_IMAGE,
                         envoy_on(base_image), sink)
    return Images(base_image, envoy_image)


def free_port(ports: range = PORTS) -> int:
    """The first of ``ports`` nothing listens on at 127.0.0.1."""
    for port in ports:
        if bind_error(port) is None:
            return port
    raise DevmeshError(f"no free port for the demo's gateway on 127.0.0.1 between {ports.start} and {ports.stop - 1}",
                       hint="stop what listens there, or give --port")


def demo_folder(directory: Path | None) -> Path:
    """``directory`` (new or empty), or a new temporary folder."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="devmesh-demo-"))
    return directory


def scaffold(root: Path, images: Images, port: int) -> None:
    """The starter in ``root`` on main, its devmesh.yaml set for the demo (app, docker runtime,
    gateway port, Envoy image), then the branch that changes one service, committed."""
    create_starter(STARTER, root, None if images.base == STARTER_BASE_IMAGE else images.base)
    config = root / CONFIG_NAME
    settings: dict[tuple[str, ...], object] = {("app",): APP, ("runtime",): "docker",
                                               ("routing", "gateway_port"): port}
    if images.envoy != DEFAULT_ENVOY_IMAGE:
        settings[("docker", "envoy_image")] = images.envoy
    config.write_text(with_settings(config.read_text(encoding="utf-8"), settings), encoding="utf-8")
    commit_all(root, "Run the starter as devmesh's demo")
    source = root / SOURCE
    text = source.read_text(encoding="utf-8")
    if not PRICES_LINE.search(text):
        raise DevmeshError(f"the {STARTER} starter's {SOURCE} has no PRICES line the demo can change")
    changed = PRICES_LINE.sub(f"PRICES = {json.dumps(NEW_PRICES)}", text)
    source.write_text(changed, encoding="utf-8")
    commit_all(root, "Pears are cheaper", branch=BRANCH)


def ask(port: int, host: str, header: tuple[str, str] | None = None, timeout: float = 10.0) -> dict[str, object]:
    """The entry service's JSON answer through the gateway at 127.0.0.1:``port``."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host})
    if header is not None:
        request.add_header(*header)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read() or b"{}")
    except (OSError, ValueError) as exc:
        raise DevmeshError(f"the demo's preview does not answer at 127.0.0.1:{port} (Host {host}): {exc}",
                           hint="'devmesh status' and 'devmesh logs' in the demo's folder show why") from None
    return answer if isinstance(answer, dict) else {}


def prices(answer: dict[str, object]) -> object:
    """What the api answered the entry service, as the preview shows it."""
    api = answer.get("api")
    return api.get("prices") if isinstance(api, dict) else None


def run(directory: Path | None = None, *, base_image: str | None = None, envoy_image: str | None = None,
        port: int | None = None, sink: Sink = discard) -> Demo:
    """Check, make the images, scaffold, change a service on a branch, bring the preview up
    and ask it for the change."""
    from devmesh.build.engine import docker_client

    if directory is not None and directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UserInputError(f"{directory} is not an empty folder; the demo goes into a new or empty one",
                             hint="leave the folder out and the demo makes a temporary one")
    if port is not None and (error := bind_error(port)) is not None:
        raise UserInputError(f"--port {port}: 127.0.0.1:{port} is taken ({error.strerror or error})")
    check_engine()
    client = docker_client()
    try:
        images = ensure_images(client, base=base_image, envoy=envoy_image, sink=sink)
    finally:
        client.close()
    gateway = port if port is not None else free_port()
    root = demo_folder(directory)
    sink(Step(f"scaffolding the {STARTER} starter in {root}; branch {BRANCH} changes {SERVICE}'s prices"))
    scaffold(root, images, gateway)
    project = load_project(root / CONFIG_NAME)
    outcome = environments.up(project, BRANCH, sink=sink)
    host = urllib.parse.urlsplit(outcome.result.environment.preview_url or "").hostname or ""
    answer = ask(gateway, host)
    if prices(answer) != NEW_PRICES:
        raise DevmeshError(f"the preview answers with prices {prices(answer)!r}, not the branch's {NEW_PRICES!r}",
                           hint=f"'devmesh routes --explain' in {root} shows where the request went")
    return Demo(root, BRANCH, outcome, project.routing.header, gateway, answer)
