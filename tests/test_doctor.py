"""`devmesh doctor`: tools found through fake executables on PATH that record how they were
called, the Docker engine through a fake Docker API on a unix socket (or a socket that does not
exist), the gateway port through a real listening socket."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devmesh import doctor
from devmesh.cli import main
from devmesh.doctor import TOOLS, Check, check_config, check_docker, check_port, check_tool, choose_runtime

TOOL = {tool.name: tool for tool in TOOLS}
# The fakes run with PATH set to their own folder only, so they name these by full path.
CAT = shutil.which("cat") or "/bin/cat"
SLEEP = shutil.which("sleep") or "/bin/sleep"

GOOD_OUTPUT = {
    "kind": "kind v0.23.0 go1.22.2 linux/amd64\n",
    "kubectl": json.dumps({"clientVersion": {"gitVersion": "v1.30.2", "major": "1", "minor": "30"},
                           "kustomizeVersion": "v5.0.4"}),
    "istioctl": "client version: 1.22.3\n",
    "git": "git version 2.43.0\n",
}


class FakeTools:
    """A folder of small executables that print versions and record their argument lists."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.log = root / "log"
        self.bin.mkdir()
        self.log.mkdir()

    def add(self, name: str, stdout: str = "", *, stderr: str = "", code: int = 0,
            sleep: float = 0) -> None:
        out = self.log / f"{name}.out"
        err = self.log / f"{name}.err"
        out.write_text(stdout)
        err.write_text(stderr)
        script = self.bin / name
        script.write_text(
            "#!/bin/sh\n"
            f'for arg in "$@"; do printf "%s\\n" "$arg"; done > "{self.log}/{name}.args"\n'
            + (f"{SLEEP} {sleep}\n" if sleep else "")
            + f'{CAT} "{out}"\n{CAT} "{err}" >&2\nexit {code}\n'
        )
        script.chmod(0o755)

    def add_all_good(self) -> None:
        for name, output in GOOD_OUTPUT.items():
            self.add(name, output)

    def args(self, name: str) -> list[str]:
        return (self.log / f"{name}.args").read_text().splitlines()

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": str(self.bin), **extra}


@pytest.fixture
def tools(tmp_path: Path) -> FakeTools:
    return FakeTools(tmp_path)


class _FakeDockerAPI(http.server.BaseHTTPRequestHandler):
    api_version = "1.41"
    engine_version = "20.10.24"
    containers: list[dict[str, object]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0]
        body = None
        if path.endswith("/version"):
            body = json.dumps({"ApiVersion": self.api_version, "Version": self.engine_version,
                               "MinAPIVersion": "1.12", "Os": "linux", "Arch": "amd64"}).encode()
        elif path.endswith("/containers/json"):
            body = json.dumps(self.containers).encode()
        if body is not None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def address_string(self) -> str:  # a unix socket has no client address
        return "fake-docker"

    def log_message(self, format: str, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _serve_docker(path: Path, api: str, engine: str,
                  containers: list[dict[str, object]] | None = None) -> Iterator[str]:
    handler = type("Handler", (_FakeDockerAPI,), {"api_version": api, "engine_version": engine,
                                                  "containers": containers or []})
    server = _UnixHTTPServer(str(path), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"unix://{path}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def docker_host(tmp_path: Path) -> Iterator[str]:
    """DOCKER_HOST of a fake engine speaking API 1.41 (Engine 20.10)."""
    yield from _serve_docker(tmp_path / "docker.sock", "1.41", "20.10.24")


@pytest.fixture
def old_docker_host(tmp_path: Path) -> Iterator[str]:
    yield from _serve_docker(tmp_path / "old-docker.sock", "1.40", "19.03.15")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- tools ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOOD_OUTPUT))
def test_tool_found_with_its_version(name: str, tools: FakeTools) -> None:
    tools.add(name, GOOD_OUTPUT[name])
    check = check_tool(TOOL[name], tools.env())
    assert check.status == "ok"
    assert check.version == {"kind": "0.23.0", "kubectl": "1.30.2", "istioctl": "1.22.3", "git": "2.43.0"}[name]
    assert check.fix is None
    assert check.detail == str(tools.bin / name)


def test_tools_are_called_with_argument_lists(tools: FakeTools) -> None:
    tools.add_all_good()
    for tool in TOOLS:
        check_tool(tool, tools.env())
    assert tools.args("kind") == ["version"]
    assert tools.args("kubectl") == ["version", "--client", "-o", "json"]
    assert tools.args("istioctl") == ["version", "--remote=false"]
    assert tools.args("git") == ["--version"]


@pytest.mark.parametrize(
    ("name", "output", "found", "required", "fix"),
    [
        ("kind", "kind v0.19.0 go1.20.4 linux/amd64\n", "0.19.0", ">= 0.20",
         "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"),
        ("kubectl", json.dumps({"clientVersion": {"gitVersion": "v1.26.9"}}), "1.26.9", ">= 1.27",
         "https://kubernetes.io/docs/tasks/tools/#kubectl"),
        ("istioctl", "1.21.2\n", "1.21.2", ">= 1.22",
         "https://istio.io/latest/docs/setup/getting-started/#download"),
        ("git", "git version 2.25.1\n", "2.25.1", ">= 2.30", "https://git-scm.com/downloads"),
    ],
)
def test_tool_too_old(name: str, output: str, found: str, required: str, fix: str,
                      tools: FakeTools) -> None:
    tools.add(name, output)
    check = check_tool(TOOL[name], tools.env())
    assert (check.status, check.version, check.required, check.fix) == ("too-old", found, required, fix)
    assert check.detail == f"{name} {found} is older than {required.removeprefix('>= ')}"


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("kind", "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"),
        ("kubectl", "https://kubernetes.io/docs/tasks/tools/#kubectl"),
        ("istioctl", "https://istio.io/latest/docs/setup/getting-started/#download"),
        ("git", "apt-get install git"),
    ],
)
def test_tool_missing(name: str, fix: str, tools: FakeTools) -> None:
    check = check_tool(TOOL[name], tools.env())
    assert (check.status, check.version, check.fix, check.detail) == ("missing", None, fix, "not found on PATH")


def test_minimum_version_exactly_is_enough(tools: FakeTools) -> None:
    tools.add("kind", "kind v0.20.0 go1.20.4 linux/amd64\n")
    tools.add("git", "git version 2.30\n")
    assert check_tool(TOOL["kind"], tools.env()).status == "ok"
    assert check_tool(TOOL["git"], tools.env()).status == "ok"


def test_kubectl_without_json_output(tools: FakeTools) -> None:
    tools.add("kubectl", "Client Version: v1.28.1\nKustomize Version: v5.0.4\n")
    check = check_tool(TOOL["kubectl"], tools.env())
    assert (check.status, check.version) == ("ok", "1.28.1")


def test_older_istioctl_prints_only_the_version(tools: FakeTools) -> None:
    tools.add("istioctl", "1.23.0\n")
    assert check_tool(TOOL["istioctl"], tools.env()).version == "1.23.0"


def test_tool_that_fails(tools: FakeTools) -> None:
    tools.add("kind", stderr="ERROR: something broke\n", code=3)
    check = check_tool(TOOL["kind"], tools.env())
    assert check.status == "failed"
    assert check.detail == "'kind version' failed: ERROR: something broke"


def test_tool_without_a_readable_version(tools: FakeTools) -> None:
    tools.add("git", "hello\n")
    check = check_tool(TOOL["git"], tools.env())
    assert (check.status, check.detail) == ("failed", "cannot read a version from 'hello'")


def test_tool_that_hangs_times_out(tools: FakeTools) -> None:
    tools.add("kind", "kind v0.23.0\n", sleep=5)
    check = check_tool(TOOL["kind"], tools.env(), timeout=0.3)
    assert check.status == "failed"
    assert check.detail == "'kind version' did not answer within 0.3 s"


def test_a_non_executable_file_is_not_the_tool(tools: FakeTools) -> None:
    (tools.bin / "kind").write_text("not a program")
    assert check_tool(TOOL["kind"], tools.env()).status == "missing"


# --- docker -----------------------------------------------------------------------------


def test_docker_socket_that_does_not_exist() -> None:
    check = check_docker({"DOCKER_HOST": "unix:///nonexistent", "PATH": ""})
    assert check.status == "failed"
    assert check.version is None
    assert check.detail == "DOCKER_HOST is unix:///nonexistent, and /nonexistent does not exist"
    assert check.fix == "unset DOCKER_HOST, or point it at a running engine"
    assert check.needed_by == ("kind", "docker")


def test_docker_engine_nothing_listening(tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX) as s:  # a socket file nobody accepts on
        s.bind(str(dead))
    check = check_docker({"DOCKER_HOST": f"unix://{dead}", "PATH": ""})
    assert check.status == "failed"
    assert check.detail == f"the Docker engine at unix://{dead} is not running"


def test_docker_engine_reachable(docker_host: str) -> None:
    check = check_docker({"DOCKER_HOST": docker_host, "PATH": ""})
    assert (check.status, check.version, check.required) == ("ok", "20.10.24 (API 1.41)", "API >= 1.41")
    assert check.fix is None


def test_docker_engine_too_old(old_docker_host: str) -> None:
    check = check_docker({"DOCKER_HOST": old_docker_host, "PATH": ""})
    assert (check.status, check.version) == ("too-old", "19.03.15 (API 1.40)")
    assert check.fix == "https://docs.docker.com/engine/install/"
    assert check.detail == f"the engine at {old_docker_host} speaks API 1.40; devmesh needs 1.41"


# --- gateway port -----------------------------------------------------------------------


def test_port_free() -> None:
    port = _free_port()
    check = check_port(port)
    assert (check.status, check.version) == ("ok", str(port))


def test_port_in_use() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        check = check_port(port)
    assert check.status == "failed"
    assert check.detail == f"127.0.0.1:{port} is already in use"
    assert check.fix == "stop what listens there, or set routing.gateway_port in devmesh.yaml"


def _container(name: str, port: int, labels: dict[str, str]) -> dict[str, object]:
    return {"Id": "0123456789abcdef", "Names": [f"/{name}"], "Labels": labels, "State": "running",
            "Ports": [{"IP": "127.0.0.1", "PrivatePort": 10000, "PublicPort": port, "Type": "tcp"}]}


@pytest.mark.parametrize(
    ("labels", "status", "detail"),
    [
        ({"app.kubernetes.io/managed-by": "devmesh", "devmesh.dev/app": "shop"}, "ok",
         "127.0.0.1:{port} is served by devmesh (devmesh-shop-envoy)"),
        ({"io.x-k8s.kind.cluster": "devmesh"}, "ok",
         "127.0.0.1:{port} is served by devmesh (devmesh-shop-envoy)"),
        ({"com.example": "someone-else"}, "failed", "127.0.0.1:{port} is already in use"),
    ],
)
def test_port_held_by_devmesh_itself(tmp_path: Path, labels: dict[str, str], status: str,
                                     detail: str) -> None:
    """While an environment runs, its gateway holds the port: that is not a problem."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        served = _serve_docker(tmp_path / "d.sock", "1.41", "20.10.24",
                               [_container("devmesh-shop-envoy", port, labels)])
        host = next(served)
        try:
            env = {"DOCKER_HOST": host, "PATH": ""}
            check = check_port(port, owner=lambda number: doctor.gateway_owner(number, env))
        finally:
            served.close()
    assert (check.status, check.detail) == (status, detail.format(port=port))


def test_port_owner_unknown_without_an_engine() -> None:
    assert doctor.gateway_owner(8080, {"DOCKER_HOST": "unix:///nonexistent", "PATH": ""}) is None


# --- config -----------------------------------------------------------------------------


def _project(root: Path, *, port: int, runtime: str = "auto", valid: bool = True) -> Path:
    (root / "api").mkdir(parents=True)
    (root / "api" / "Dockerfile").write_text("FROM scratch\n")
    config = root / "devmesh.yaml"
    config.write_text(
        f"app: shop\nruntime: {runtime}\nrouting:\n  gateway_port: {port}\n"
        f"services:\n  api:\n    context: api\n    port: {'8000' if valid else 'http'}\n"
    )
    return config


def test_config_valid(tmp_path: Path) -> None:
    config = _project(tmp_path / "p", port=18181, runtime="docker")
    outcome = check_config(config, explicit=True)
    assert outcome.check.status == "ok"
    assert (outcome.runtime, outcome.gateway_port) == ("docker", 18181)


def test_config_invalid_reports_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    _project(root, port=18181, valid=False)
    monkeypatch.chdir(root)
    outcome = check_config(Path("devmesh.yaml"), explicit=True)
    assert outcome.check.status == "failed"
    assert outcome.check.detail == 'devmesh.yaml:8: services.api.port: expected an integer 1–65535, got "http"'
    assert outcome.check.fix == "correct the file (fields: docs/config.md)"
    assert outcome.runtime is None


def test_config_given_but_absent(tmp_path: Path) -> None:
    outcome = check_config(tmp_path / "nope.yaml", explicit=True)
    assert outcome.check.status == "failed"
    assert outcome.check.fix == "give the path of an existing devmesh.yaml with -c"


def test_no_config_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if any((p / "devmesh.yaml").exists() for p in (tmp_path, *tmp_path.parents)):
        pytest.skip("a devmesh.yaml lies above the temporary directory")
    monkeypatch.chdir(tmp_path)
    outcome = check_config(None, explicit=False)
    assert outcome.check.status == "skipped"
    assert outcome.check.ok


# --- runtime choice ---------------------------------------------------------------------


def _check(name: str, status: str) -> Check:
    return Check(name, status, None, None, (), None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "engine", "shipped", "expected"),
    [
        ("ok", "ok", True, ("kind", "auto: kind and a Docker engine are present")),
        ("too-old", "ok", True, ("kind", "auto: kind and a Docker engine are present")),
        ("missing", "ok", True, ("docker", "auto: kind is not installed")),
        ("ok", "failed", True, ("docker", "auto: no Docker engine for kind to run in")),
        ("ok", "ok", False, ("docker", "auto: this version of devmesh ships only the docker runtime")),
    ],
)
def test_auto_runtime(kind: str, engine: str, shipped: bool, expected: tuple[str, str],
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "_kind_runtime_shipped", lambda: shipped)
    checks = {"kind": _check("kind", kind), "docker": _check("docker", engine)}
    assert choose_runtime(None, "auto", checks) == expected
    assert choose_runtime("auto", "docker", checks) == expected  # --runtime auto beats the file


def test_runtime_from_option_then_file() -> None:
    checks = {"kind": _check("kind", "missing"), "docker": _check("docker", "ok")}
    assert choose_runtime("kind", "docker", checks) == ("kind", "--runtime")
    assert choose_runtime(None, "kind", checks) == ("kind", "runtime in devmesh.yaml")
    assert choose_runtime(None, None, checks) == ("docker", "auto: kind is not installed")


# --- the command ------------------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def machine(tmp_path: Path, tools: FakeTools, docker_host: str,
            monkeypatch: pytest.MonkeyPatch) -> FakeTools:
    """Every tool present and new enough, a reachable engine, a project with a free port.

    Doctor falls back to the default gateway port (8080) when devmesh.yaml gives none (or is
    broken); here that is a free port too, so nothing listening on this machine changes the
    outcome."""
    tools.add_all_good()
    monkeypatch.setenv("PATH", str(tools.bin))
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    monkeypatch.setattr(doctor, "DEFAULT_GATEWAY_PORT", _free_port())
    root = tmp_path / "project"
    _project(root, port=_free_port())
    monkeypatch.chdir(root)
    return tools


def test_json_shape_and_exit_0(machine: FakeTools, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["doctor", "--json", "--runtime", "kind"], capsys)
    assert code == 0, out
    report = json.loads(out)
    assert set(report) == {"runtime", "reason", "ok", "problems", "checks"}
    assert (report["runtime"], report["reason"], report["ok"], report["problems"]) == ("kind", "--runtime", True, [])
    assert [c["name"] for c in report["checks"]] == [
        "docker", "kind", "kubectl", "istioctl", "git", "devmesh.yaml", "gateway port"
    ]
    for check in report["checks"]:
        assert set(check) == {"name", "status", "version", "required", "needed_by", "fix", "detail"}
        assert check["status"] == "ok"
        assert set(check["needed_by"]) <= {"kind", "docker"}
    versions = {c["name"]: c["version"] for c in report["checks"]}
    assert versions["kind"] == "0.23.0" and versions["docker"] == "20.10.24 (API 1.41)"


def test_kind_tools_missing_do_not_fail_the_docker_runtime(machine: FakeTools,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("kind", "istioctl"):
        (machine.bin / name).unlink()
    code, out, _ = _run(["doctor", "--json"], capsys)
    report = json.loads(out)
    assert code == 0
    assert report["runtime"] == "docker"
    assert report["reason"] == "auto: kind is not installed"
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["kind"] == statuses["istioctl"] == "missing"


def test_missing_tool_the_runtime_needs_exits_1(machine: FakeTools,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    (machine.bin / "istioctl").unlink()
    code, out, _ = _run(["doctor", "--json", "--runtime", "kind"], capsys)
    report = json.loads(out)
    assert code == 1
    assert report["ok"] is False
    assert report["problems"] == ["istioctl"]
    istioctl = next(c for c in report["checks"] if c["name"] == "istioctl")
    assert istioctl["fix"] == "https://istio.io/latest/docs/setup/getting-started/#download"


def test_too_old_tool_exits_1(machine: FakeTools, capsys: pytest.CaptureFixture[str]) -> None:
    machine.add("git", "git version 2.20.0\n")
    code, out, _ = _run(["doctor", "--json", "--runtime", "docker"], capsys)
    assert code == 1
    assert json.loads(out)["problems"] == ["git"]


def test_unreachable_docker_exits_1(machine: FakeTools, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent")
    code, out, _ = _run(["doctor", "--runtime", "docker"], capsys)
    assert code == 1
    assert "docker: DOCKER_HOST is unix:///nonexistent, and /nonexistent does not exist" in out.splitlines()
    assert "  fix: unset DOCKER_HOST, or point it at a running engine" in out.splitlines()
    assert out.splitlines()[-1] == "not ready: the docker runtime needs docker"


def test_runtime_from_the_config_file(machine: FakeTools, capsys: pytest.CaptureFixture[str]) -> None:
    _project(Path.cwd().parent / "kind-project", port=_free_port(), runtime="kind")
    (machine.bin / "kind").unlink()
    code, out, _ = _run(["-c", "../kind-project/devmesh.yaml", "doctor", "--json"], capsys)
    report = json.loads(out)
    assert (report["runtime"], report["reason"]) == ("kind", "runtime in devmesh.yaml")
    assert code == 1 and report["problems"] == ["kind"]


def test_invalid_config_is_a_problem(machine: FakeTools, capsys: pytest.CaptureFixture[str]) -> None:
    _project(Path.cwd().parent / "broken", port=18182, valid=False)
    code, out, _ = _run(["-c", "../broken/devmesh.yaml", "doctor", "--runtime", "docker"], capsys)
    assert code == 1
    lines = out.splitlines()
    assert ('devmesh.yaml: ../broken/devmesh.yaml:8: services.api.port: expected an integer '
            '1–65535, got "http"') in lines
    assert lines[-1] == "not ready: the docker runtime needs devmesh.yaml"
    # No gateway_port could be read: the default port is checked.
    (gateway,) = [line for line in lines if line.startswith("gateway port ")]
    assert gateway.split()[2:4] == ["ok", str(doctor.DEFAULT_GATEWAY_PORT)]


def test_busy_gateway_port_exits_1(tmp_path: Path, machine: FakeTools,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        root = tmp_path / "busy"
        _project(root, port=port)
        code, out, _ = _run(["-c", str(root / "devmesh.yaml"), "doctor", "--runtime", "docker"], capsys)
    assert code == 1
    assert f"gateway port: 127.0.0.1:{port} is already in use" in out.splitlines()


def test_table_is_aligned(machine: FakeTools, capsys: pytest.CaptureFixture[str]) -> None:
    (machine.bin / "kind").unlink()
    code, out, _ = _run(["doctor", "--runtime", "docker"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "runtime: docker (--runtime)"
    header = lines[2]
    assert header.split() == ["CHECK", "STATUS", "FOUND", "REQUIRED", "NEEDED", "BY"]
    rows = lines[3:10]
    columns = [header.index(h) for h in ("STATUS", "FOUND", "REQUIRED", "NEEDED BY")]
    for row in rows:
        for col in columns:
            assert row[col - 2:col] == "  " and row[col] != " ", (row, col)
    assert rows[1].split()[:2] == ["kind", "MISSING"]
    assert "kind: not found on PATH (not needed by the docker runtime)" in lines
    assert "  fix: https://kind.sigs.k8s.io/docs/user/quick-start/#installation" in lines
    assert lines[-1] == "ready: everything the docker runtime needs is here"


def test_doctor_uses_no_shell(machine: FakeTools, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every probe is an argument list; a shell would have needed shell=True or a string."""
    import subprocess

    seen: list[tuple[object, object]] = []
    real = subprocess.Popen

    class RecordingPopen(real):  # type: ignore[misc, valid-type]
        def __init__(self, args: object, *rest: object, **kwargs: object) -> None:
            seen.append((args, kwargs.get("shell", False)))
            super().__init__(args, *rest, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    _run(["doctor", "--json"], capsys)
    assert sorted(Path(args[0]).name for args, _ in seen) == ["git", "istioctl", "kind", "kubectl"]  # type: ignore[index]
    for args, shell in seen:
        assert isinstance(args, list) and shell is False


def test_hung_tool_and_its_children_are_stopped(tools: FakeTools) -> None:
    import time

    tools.add("kind", "kind v0.23.0\n", sleep=30)
    started = time.monotonic()
    check = check_tool(TOOL["kind"], tools.env(), timeout=0.3)
    assert check.status == "failed"
    assert time.monotonic() - started < 5
