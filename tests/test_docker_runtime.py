"""The docker runtime end to end: real engine, real Envoy, the starter app on a branch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_env import app_objects, cleanup, devmesh, get, run_git, scaffold_shop, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str, int]]:
    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    root, app, port = scaffold_shop(tmp_path / "shop")
    yield root, app, port
    cleanup(app)


def _change_api(root: Path, version: str) -> None:
    app_py = root / "services/api/app.py"
    app_py.write_text(app_py.read_text().replace('"SHOP_VERSION", "v1"', f'"SHOP_VERSION", "{version}"'))


def test_branch_preview_routes_changed_service_and_falls_back(shop: tuple[Path, str, int]) -> None:
    root, app, port = shop
    run_git(root, "checkout", "-q", "-b", "feature/cheaper-stock")
    _change_api(root, "v2")
    run_git(root, "commit", "-qam", "api v2")

    first = devmesh(root, "up", "--detach")
    assert first.returncode == 0, first.stderr
    env = next(line.split()[1] for line in first.stdout.splitlines() if line.startswith("environment "))
    assert env.startswith("feature-cheaper-stock-")
    assert f"preview: http://{env}.{app}.localhost:{port}/" in first.stdout

    # The preview host: the gateway adds the header, web (baseline) forwards it, api is the fork.
    body = wait_for(port, f"{env}.{app}.localhost", lambda b: "api" in b)
    assert body["service"] == "web" and body["env"] == "baseline"
    assert body["api"]["version"] == "v2" and body["api"]["env"] == env
    assert body["api"]["stock"]["env"] == "baseline"

    # No header: everything is baseline.
    _, plain, _ = get(port, f"{app}.localhost")
    assert plain["api"]["version"] == "v1" and plain["api"]["env"] == "baseline"
    # The header on the app host reaches the fork, too.
    _, by_header, _ = get(port, f"{app}.localhost", headers={"x-devmesh-env": env})
    assert by_header["api"]["env"] == env

    # A second up with nothing changed changes nothing.
    second = devmesh(root, "up", "--detach")
    assert second.returncode == 0, second.stderr
    assert "nothing changed" in second.stderr
    assert "image api" in second.stderr and "cached" in second.stderr

    listed = json.loads(devmesh(root, "ls", "--json").stdout)
    names = {e["name"] for e in listed["environments"]}
    assert names == {"baseline", env}
    mine = next(e for e in listed["environments"] if e["name"] == env)
    versions = {s["service"]: s["env"] for s in mine["services"]}
    assert versions == {"web": "baseline", "api": env, "stock": "baseline"}
    assert all(s["state"] == "running" and s["ready"] for s in mine["services"])

    status = json.loads(devmesh(root, "status", "--json").stdout)
    assert status["running"] and status["environment"] == env

    logs = devmesh(root, "logs", "api")
    assert logs.returncode == 0, logs.stderr
    assert f"x-devmesh-env={env}" in logs.stdout
    assert all(line.startswith("api") for line in logs.stdout.splitlines())

    down = devmesh(root, "down")
    assert down.returncode == 0, down.stderr
    assert app_objects(app) == []


def test_two_branches_share_the_baseline(shop: tuple[Path, str, int]) -> None:
    root, app, port = shop
    run_git(root, "checkout", "-q", "-b", "one")
    _change_api(root, "one")
    run_git(root, "commit", "-qam", "api one")
    assert devmesh(root, "up", "-d").returncode == 0
    run_git(root, "checkout", "-q", "main")
    run_git(root, "checkout", "-q", "-b", "two")
    (root / "services/stock/app.py").write_text(
        (root / "services/stock/app.py").read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "two"'))
    up_two = devmesh(root, "up", "-d")  # uncommitted change: the working tree counts
    assert up_two.returncode == 0, up_two.stderr

    one = wait_for(port, f"one.{app}.localhost", lambda b: "api" in b)
    assert one["api"]["version"] == "one" and one["api"]["stock"]["version"] == "v1"
    two = wait_for(port, f"two.{app}.localhost", lambda b: "api" in b)
    assert two["api"]["version"] == "v1" and two["api"]["stock"]["version"] == "two"

    # 'two' goes; 'one' still routes and the baseline stays.
    assert devmesh(root, "down").returncode == 0
    one = wait_for(port, f"one.{app}.localhost", lambda b: "api" in b)
    assert one["api"]["version"] == "one"
    assert not any(n.endswith("-two-stock") for n in app_objects(app))
    assert devmesh(root, "down", "--branch", "one").returncode == 0
    assert app_objects(app) == []


def test_no_changed_service_says_so(shop: tuple[Path, str, int]) -> None:
    root, app, _ = shop
    run_git(root, "checkout", "-q", "-b", "docs-only")
    (root / "NOTES.md").write_text("notes\n")
    done = devmesh(root, "up", "-d")
    assert done.returncode == 2
    assert "changes no service" in done.stderr and "--all" in done.stderr
    assert app_objects(app) == []


def test_service_crashing_at_start_shows_its_last_lines(shop: tuple[Path, str, int]) -> None:
    root, app, _ = shop
    run_git(root, "checkout", "-q", "-b", "broken")
    app_py = root / "services/stock/app.py"
    app_py.write_text("import sys\nprint('stock cannot start: missing STOCK_DB', flush=True)\nsys.exit(3)\n")
    done = devmesh(root, "up", "-d")
    assert done.returncode == 1
    assert "stock (broken) exited with status 3" in done.stderr
    assert "missing STOCK_DB" in done.stderr
    assert devmesh(root, "down").returncode == 0
    assert app_objects(app) == []


def test_gateway_port_in_use(shop: tuple[Path, str, int]) -> None:
    import socket

    root, app, port = shop
    run_git(root, "checkout", "-q", "-b", "busy")
    _change_api(root, "busy")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = devmesh(root, "up", "-d")
    assert done.returncode == 2
    assert f"gateway port {port} on 127.0.0.1 is already in use" in done.stderr
    assert app_objects(app) == []


def test_build_failure_names_the_step_and_starts_nothing(shop: tuple[Path, str, int]) -> None:
    root, app, _ = shop
    run_git(root, "checkout", "-q", "-b", "bad-build")
    dockerfile = root / "services/api/Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "COPY . /app", "COPY . /app\nRUN echo compiling prices && exit 7"))
    done = devmesh(root, "up", "-d")
    assert done.returncode == 1
    assert "build of api failed at step" in done.stderr
    assert "RUN echo compiling prices" in done.stderr
    assert app_objects(app) == []


def test_no_docker_engine_is_a_clear_error(shop: tuple[Path, str, int]) -> None:
    root, app, _ = shop
    run_git(root, "checkout", "-q", "-b", "no-engine")
    _change_api(root, "x")
    done = devmesh(root, "up", "-d", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 1
    assert "cannot reach the Docker engine at unix:///nonexistent/docker.sock" in done.stderr
    assert "Traceback" not in done.stderr


def test_interrupted_up_is_completed_by_the_next_up(shop: tuple[Path, str, int]) -> None:
    import os
    import signal
    import subprocess
    import sys

    root, app, port = shop
    run_git(root, "checkout", "-q", "-b", "interrupted")
    _change_api(root, "late")
    proc = subprocess.Popen([sys.executable, "-m", "devmesh", "up", "-d"], cwd=root,
                            env={**os.environ, "DEVMESH_ENVOY_IMAGE": "devmesh/envoy:test"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # stop it right after the first container started
        if line.startswith("• started"):
            proc.send_signal(signal.SIGINT)
            break
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert app_objects(app), "something was started before the interrupt"
    again = devmesh(root, "up", "-d")
    assert again.returncode == 0, again.stderr
    body = wait_for(port, f"interrupted.{app}.localhost", lambda b: "api" in b)
    assert body["api"]["version"] == "late"
    assert devmesh(root, "down").returncode == 0
    assert app_objects(app) == []


def test_following_logs_picks_up_new_containers(shop: tuple[Path, str, int]) -> None:
    import threading

    from devmesh.config import load_project
    from devmesh.runtime.docker import DockerRuntime

    root, app, port = shop
    run_git(root, "checkout", "-q", "-b", "watched")
    _change_api(root, "watched")
    assert devmesh(root, "up", "-d", "--all").returncode == 0
    with (root / "services/stock/app.py").open("a") as f:
        f.write("# touched\n")
    project = load_project(root / "devmesh.yaml")
    rt = DockerRuntime(project)
    # Follow 'watched' before its stock fork is replaced; the new container must join.
    stop = threading.Event()
    seen: list[str] = []

    def follow() -> None:
        for line in rt.logs("watched", ["stock"], follow=True, tail=0, stop=stop):
            seen.append(f"{line.service}@{line.env} {line.text}")

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert devmesh(root, "up", "-d", "--all").returncode == 0  # stock's content changed: new container
    wait_for(port, f"watched.{app}.localhost", lambda b: b["api"]["stock"]["env"] == "watched")
    deadline = __import__("time").monotonic() + 10
    while not any("GET / x-devmesh-env=watched" in s for s in seen) and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.1)
    stop.set()
    assert any(s.startswith("stock@watched") and "x-devmesh-env=watched" in s for s in seen), seen


def test_down_by_env_name_after_the_branch_is_gone(shop: tuple[Path, str, int]) -> None:
    root, app, _ = shop
    run_git(root, "checkout", "-q", "-b", "short-lived")
    _change_api(root, "gone")
    run_git(root, "commit", "-qam", "api gone")
    assert devmesh(root, "up", "-d").returncode == 0
    run_git(root, "checkout", "-q", "main")
    run_git(root, "branch", "-qD", "short-lived")
    missing = devmesh(root, "down", "--branch", "short-lived")
    assert missing.returncode == 2 and "no branch named 'short-lived'" in missing.stderr
    bad = devmesh(root, "down", "--env", "Not_An_Env")
    assert bad.returncode == 2 and "not an environment name" in bad.stderr
    logs = devmesh(root, "logs", "--env", "short-lived", "api")
    assert logs.returncode == 0 and "api gone listening" in logs.stdout
    done = devmesh(root, "down", "--env", "short-lived")
    assert done.returncode == 0, done.stderr
    assert app_objects(app) == []


def _break_config(root: Path) -> None:
    """An undeclared preset variable: the whole file is refused, as a user's typo would be."""
    config = root / "devmesh.yaml"
    text = config.read_text()
    config.write_text(text.replace("services:\n", "services:\n  # broken on purpose below\n", 1)
                      + "\nnot_a_field: true\n")


def test_down_ls_and_logs_work_from_labels_when_the_config_is_broken(shop: tuple[Path, str, int]) -> None:
    root, app, _ = shop
    run_git(root, "checkout", "-q", "-b", "feature/broken-later")
    _change_api(root, "v9")
    run_git(root, "commit", "-qam", "api v9")
    up = devmesh(root, "up", "-d")
    assert up.returncode == 0, up.stderr
    env = next(line.split()[1] for line in up.stdout.splitlines() if line.startswith("environment "))
    _break_config(root)
    assert devmesh(root, "render").returncode == 2  # the file really is refused

    listed = devmesh(root, "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "working from the labels" in listed.stderr and "not_a_field" in listed.stderr
    envs = {e["name"]: e for e in json.loads(listed.stdout)["environments"]}
    assert set(envs) == {"baseline", env}
    assert {s["service"]: s["env"] for s in envs[env]["services"]} == {"api": env, "stock": "baseline",
                                                                       "web": "baseline"}
    assert envs[env]["branch"] == "feature/broken-later"

    logs = devmesh(root, "logs", "api")
    assert logs.returncode == 0, logs.stderr
    assert "api v9 listening" in logs.stdout

    down = devmesh(root, "down")  # the checked-out branch's environment, found by its label
    assert down.returncode == 0, down.stderr
    assert f"environment {env}" in down.stdout
    assert app_objects(app) == []  # the last environment took the baseline, Envoy and network


def test_down_baseline_with_a_broken_config_removes_everything(shop: tuple[Path, str, int]) -> None:
    root, app, _ = shop
    assert devmesh(root, "up", "-d").returncode == 0
    assert app_objects(app)
    _break_config(root)
    down = devmesh(root, "down", "--baseline")
    assert down.returncode == 0, down.stderr
    assert "working from the labels" in down.stderr
    assert app_objects(app) == []
