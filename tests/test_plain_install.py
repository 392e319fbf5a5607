"""A plain ``pip install -e .`` (no extras) runs every command.

The package is installed into a fresh virtual environment that sees none of this
interpreter's packages, so a module that the code imports at run time but that only a test
extra declares fails here, as it would for a user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

import pytest

from devmesh.cli import COMMANDS
from devmesh.cli.entry import ENTRY_COMMANDS

REPO = Path(__file__).resolve().parent.parent
IMAGE = "127.0.0.1:5001/shop/api@sha256:" + "a" * 64

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment holding devmesh and its declared dependencies only."""
    where = tmp_path_factory.mktemp("plain-venv")
    venv.create(where, with_pip=True, clear=True)
    python = where / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", str(REPO)],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # Nothing from the test extra came along with the dependencies.
    probe = subprocess.run([str(python), "-c", "import pytest"], capture_output=True, text=True)
    assert probe.returncode != 0, "the fresh environment must not have pytest"
    return where


@pytest.fixture
def run(plain: Path, tmp_path: Path) -> Run:
    """``run(cwd, *args)``: the installed ``devmesh`` console script, with a clean environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "DEVMESH_", "VIRTUAL_ENV"))}
    env |= {"DEVMESH_CACHE_DIR": str(tmp_path / "cache"), "DEVMESH_STATE_DIR": str(tmp_path / "state"),
            "PATH": f"{plain / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    for who in ("AUTHOR", "COMMITTER"):
        env[f"GIT_{who}_NAME"] = "Ada Tester"
        env[f"GIT_{who}_EMAIL"] = "ada@example.test"

    def command(cwd: Path, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(plain / "bin" / "devmesh"), *args], cwd=cwd, env=env | (extra or {}),
                              capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert "Traceback" not in done.stderr, done.stderr
        assert "ModuleNotFoundError" not in done.stderr + done.stdout, done.stderr
        return done

    return command


def test_the_environment_is_really_separate(plain: Path) -> None:
    python = plain / "bin" / "python"
    where = subprocess.run([str(python), "-c", "import devmesh, sys; print(devmesh.__file__); print(sys.prefix)"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert where[0] == str(REPO / "devmesh" / "__init__.py")
    assert where[1] == str(plain)
    assert sys.prefix != where[1]


@pytest.mark.parametrize("command", sorted({*COMMANDS, *ENTRY_COMMANDS}))
def test_every_command_has_help(run: Run, tmp_path: Path, command: str) -> None:
    done = run(tmp_path, command, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_one_real_command_of_each_group(run: Run, tmp_path: Path) -> None:
    presets = run(tmp_path, "presets", "--json")
    assert presets.returncode == 0, presets.stderr
    assert "python-web" in {p["name"] for p in json.loads(presets.stdout)["presets"]}

    doctor = run(tmp_path, "doctor", "--json")
    assert doctor.returncode in (0, 1), doctor.stderr  # 1: a runtime lacks a tool here
    assert json.loads(doctor.stdout)

    shop = tmp_path / "shop"
    made = run(tmp_path, "init", "--starter", "shop", str(shop), "--base-image", "devmesh/python-base:bookworm")
    assert made.returncode == 0, made.stderr
    render = run(shop, "render")
    assert render.returncode == 0, render.stderr
    assert "kind: VirtualService" in render.stdout
    routes = run(shop, "routes")
    assert routes.returncode == 0, routes.stderr
    # Live sync's reading of the Dockerfiles (the BuildKit parser is a runtime dependency).
    explain = run(shop, "sync", "--explain", "services/api/app.py", "--explain", "services/api/requirements.txt")
    assert explain.returncode == 0, explain.stderr
    assert explain.stdout.splitlines() == [
        "services/api/app.py: api: synced to /app/app.py in its containers of branch main (rule . → /app, "
        "from services/api/Dockerfile:5), then sent SIGHUP",
        "services/api/requirements.txt: api: rebuilds the image: matches rebuild_on 'requirements.txt'"]
    scanned = tmp_path / "scanned"
    shutil.copytree(shop / "services", scanned / "services")
    init = run(scanned, "init")
    assert init.returncode == 0, init.stderr
    assert "sync: . → /app (services/api/Dockerfile:5)" in init.stdout
    assert "entry: no other service calls it, and it calls api" in init.stdout

    remote = tmp_path / "manifests.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(remote)], check=True)
    repo = {"DEVMESH_MANIFESTS": str(remote)}
    steps = [
        ("manifests", "init", "--tiers", "dev,prod"),
        ("promote", "api", "--to", "dev", "--image", IMAGE, "--yes"),
        ("tiers", "--json"),
        ("history", "--json"),
        ("rollback", "api", "--tier", "dev", "--yes"),
    ]
    for args in steps:
        done = run(shop, *args, extra=repo)
        assert done.returncode == 0, (args, done.stderr)
        if args[0] == "tiers":
            assert json.loads(done.stdout)["services"]["api"]["dev"]["image"] == IMAGE
        if args[0] == "history":
            assert [e["kind"] for e in json.loads(done.stdout)] == ["promote"]


@pytest.mark.docker
def test_the_docker_runtime_lists_environments(run: Run, tmp_path: Path, docker_engine: None) -> None:
    shop = tmp_path / "shop"
    assert run(tmp_path, "init", "--starter", "shop", str(shop)).returncode == 0
    listed = run(shop, "ls", "--runtime", "docker", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"environments": []}
