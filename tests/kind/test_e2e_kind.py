"""The kind runtime end to end against a real kind cluster with Istio: the docker runtime's
scenarios (tests/test_docker_runtime.py) on Kubernetes.

Opt in with ``DEVMESH_E2E_KIND=1`` (needs kind, istioctl 1.31, a Docker engine that can pull
kind's node image and Istio's images, and the test base image from .ci/build-images). The first
test runs ``devmesh cluster up`` (a few minutes the first time); the cluster is kept for the
next run — ``devmesh cluster down`` removes it. Ordered last by tests/conftest.py.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.runtime.kind.sync import active_requests
from tests import docker_env
from tests.docker_env import get, remove_images, run_git, scaffold_shop, wait_for
from tests.sync.test_sync_docker import _expect, start_sync
from tests.traffic.test_canary_auto_docker import QUICK, Load

MODE = os.environ.get("DEVMESH_E2E_KIND")
pytestmark = [
    pytest.mark.e2e_kind,
    pytest.mark.skipif(MODE not in ("1", "smoke"),
                       reason="end-to-end kind tests are opt-in: set DEVMESH_E2E_KIND=1 "
                              "(needs kind, istioctl 1.31 and a Docker engine)"),
]
# DEVMESH_E2E_KIND=smoke, a quick look, brings the cluster up and sends one request through
# three hops; every other test here is then skipped. CI runs them all (DEVMESH_E2E_KIND=1).
full_suite = pytest.mark.skipif(
    MODE == "smoke", reason="DEVMESH_E2E_KIND=smoke runs the bring-up and one three-hop request; "
                            "DEVMESH_E2E_KIND=1 runs the whole end-to-end suite")

HEADER = "x-devmesh-env"
GATEWAY_PORT = int(os.environ.get("DEVMESH_E2E_GATEWAY_PORT", "8080"))
TIMEOUT = 900


# A kind-config/ for the test projects (cluster.yaml, istio.yaml): .ci/kind-cluster writes one
# for machines that pull no image (`eval "$(.ci/kind-cluster env)"` sets this); without it the
# projects use devmesh's own.
KIND_CONFIG = os.environ.get("DEVMESH_E2E_KIND_CONFIG")
# A directory with kind, kubectl and istioctl (.ci/kind-cluster's), put first on PATH for the
# devmesh these tests run and for nothing else: with kind on PATH, runtime "auto" picks kind,
# which the rest of the suite must not.
KIND_TOOLS = os.environ.get("DEVMESH_E2E_KIND_TOOLS")
# The local registry's image (DEVMESH_REGISTRY_IMAGE) for the devmesh these tests run.
REGISTRY_IMAGE = os.environ.get("DEVMESH_E2E_REGISTRY_IMAGE")


# One kubeconfig for the whole module, as a user has one (each test gets its own HOME): the
# cluster fixture's `cluster up` writes the context into it.
KUBECONFIG: list[Path] = []


def tool_env() -> dict[str, str]:
    """What the devmesh (and kubectl) these tests run get on top of the test's environment."""
    env = {}
    if KUBECONFIG:
        env["KUBECONFIG"] = str(KUBECONFIG[0])
    if KIND_TOOLS:
        env["PATH"] = f"{KIND_TOOLS}{os.pathsep}{os.environ.get('PATH', '')}"
    if REGISTRY_IMAGE:
        env["DEVMESH_REGISTRY_IMAGE"] = REGISTRY_IMAGE
    return env


def devmesh(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return docker_env.devmesh(cwd, *args, env=tool_env(), timeout=timeout)


def _kind_project(dest: Path) -> tuple[Path, str]:
    root, app, port = scaffold_shop(dest)
    config = root / "devmesh.yaml"
    text = config.read_text().replace(f"gateway_port: {port}", f"gateway_port: {GATEWAY_PORT}")
    config.write_text(text.replace("app: ", "runtime: kind\napp: ", 1))
    if KIND_CONFIG:
        (root / "kind-config").mkdir(exist_ok=True)
        for name in ("cluster.yaml", "istio.yaml"):
            shutil.copyfile(Path(KIND_CONFIG) / name, root / "kind-config" / name)
        run_git(root, "add", "kind-config")
    run_git(root, "commit", "-qam", "kind runtime")
    return root, app


def app_objects(root: Path) -> list[str]:
    """Deployments of the app left in the cluster (by label, as devmesh finds them)."""
    listed = json.loads(devmesh(root, "ls", "--json").stdout or "{}")
    return [f"{s['service']}-{s['env']}" for e in listed.get("environments", []) for s in e["services"]
            if s["state"] != "missing"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    KUBECONFIG.append(tmp_path_factory.mktemp("kube") / "config")
    root, _ = _kind_project(tmp_path_factory.mktemp("cluster") / "shop")
    done = devmesh(root, "cluster", "up", timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    again = devmesh(root, "cluster", "up", timeout=TIMEOUT)
    assert again.returncode == 0 and "nothing to change" in again.stdout, again.stderr
    status = devmesh(root, "cluster", "status", "--json")
    assert status.returncode == 0, status.stdout
    yield root
    KUBECONFIG.clear()


@pytest.fixture
def shop(cluster: Path, tmp_path: Path) -> Iterator[tuple[Path, str, int]]:
    root, app = _kind_project(tmp_path / "shop")
    yield root, app, GATEWAY_PORT
    devmesh(root, "down", "--baseline", timeout=TIMEOUT)
    remove_images(app)


def _change_api(root: Path, version: str) -> None:
    app_py = root / "services/api/app.py"
    app_py.write_text(app_py.read_text().replace('"SHOP_VERSION", "v1"', f'"SHOP_VERSION", "{version}"'))


def _api_branch(root: Path, branch: str, version: str) -> None:
    """A new branch whose one commit gives api another version."""
    run_git(root, "checkout", "-q", "-b", branch)
    _change_api(root, version)
    run_git(root, "commit", "-qam", f"api {version}")


def test_branch_preview_routes_changed_service_and_falls_back(shop: tuple[Path, str, int]) -> None:
    root, app, port = shop
    _api_branch(root, "feature/cheaper-stock", "v2")
    first = devmesh(root, "up", "--detach", timeout=TIMEOUT)
    assert first.returncode == 0, first.stderr
    env = next(line.split()[1] for line in first.stdout.splitlines() if line.startswith("environment "))
    assert f"preview: http://{env}.{app}.localhost:{port}/" in first.stdout
    body = wait_for(port, f"{env}.{app}.localhost", lambda b: "api" in b, timeout=120)
    assert body["service"] == "web" and body["env"] == "baseline"
    assert body["api"]["version"] == "v2" and body["api"]["env"] == env
    assert body["api"]["stock"]["env"] == "baseline"
    _, plain, _ = get(port, f"{app}.localhost")
    assert plain["api"]["version"] == "v1"
    _, by_header, _ = get(port, f"{app}.localhost", headers={"x-devmesh-env": env})
    assert by_header["api"]["env"] == env

    second = devmesh(root, "up", "--detach", timeout=TIMEOUT)
    assert second.returncode == 0 and "nothing changed" in second.stderr, second.stderr

    listed = json.loads(devmesh(root, "ls", "--json").stdout)
    assert {e["name"] for e in listed["environments"]} == {"baseline", env}
    status = json.loads(devmesh(root, "status", "--json").stdout)
    assert status["running"] and status["runtime"] == "kind"
    logs = devmesh(root, "logs", "api")
    assert logs.returncode == 0 and f"x-devmesh-env={env}" in logs.stdout
    assert devmesh(root, "down", timeout=TIMEOUT).returncode == 0
    assert app_objects(root) == []


@full_suite
def test_two_branches_share_the_baseline(shop: tuple[Path, str, int]) -> None:
    root, app, port = shop
    _api_branch(root, "one", "one")
    assert devmesh(root, "up", "-d", timeout=TIMEOUT).returncode == 0
    run_git(root, "checkout", "-q", "main")
    run_git(root, "checkout", "-q", "-b", "two")
    stock = root / "services/stock/app.py"
    stock.write_text(stock.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "two"'))
    assert devmesh(root, "up", "-d", timeout=TIMEOUT).returncode == 0
    one = wait_for(port, f"one.{app}.localhost", lambda b: "api" in b, timeout=120)
    assert one["api"]["version"] == "one" and one["api"]["stock"]["version"] == "v1"
    two = wait_for(port, f"two.{app}.localhost", lambda b: "api" in b, timeout=120)
    assert two["api"]["version"] == "v1" and two["api"]["stock"]["version"] == "two"
    assert devmesh(root, "down", timeout=TIMEOUT).returncode == 0
    one = wait_for(port, f"one.{app}.localhost", lambda b: b.get("api", {}).get("version") == "one", timeout=60)
    assert devmesh(root, "down", "--branch", "one", timeout=TIMEOUT).returncode == 0
    assert app_objects(root) == []


@full_suite
def test_no_changed_service_says_so(shop: tuple[Path, str, int]) -> None:
    root, _, _ = shop
    run_git(root, "checkout", "-q", "-b", "docs-only")
    (root / "NOTES.md").write_text("notes\n")
    done = devmesh(root, "up", "-d")
    assert done.returncode == 2 and "changes no service" in done.stderr


@full_suite
def test_service_crashing_at_start_shows_its_last_lines(shop: tuple[Path, str, int]) -> None:
    root, _, _ = shop
    run_git(root, "checkout", "-q", "-b", "broken")
    (root / "services/stock/app.py").write_text(
        "import sys\nprint('stock cannot start: missing STOCK_DB', flush=True)\nsys.exit(3)\n")
    done = devmesh(root, "up", "-d", timeout=TIMEOUT)
    assert done.returncode == 1
    assert "stock (broken) keeps exiting with status 3" in done.stderr
    assert "missing STOCK_DB" in done.stderr


@full_suite
def test_build_failure_names_the_step_and_starts_nothing(shop: tuple[Path, str, int]) -> None:
    root, _, _ = shop
    run_git(root, "checkout", "-q", "-b", "bad-build")
    dockerfile = root / "services/api/Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace(
        "COPY . /app", "COPY . /app\nRUN echo compiling prices && exit 7"))
    done = devmesh(root, "up", "-d", timeout=TIMEOUT)
    assert done.returncode == 1 and "build of api failed at step" in done.stderr
    assert app_objects(root) == []


@full_suite
def test_down_by_env_name_after_the_branch_is_gone(shop: tuple[Path, str, int]) -> None:
    root, _, _ = shop
    _api_branch(root, "short-lived", "gone")
    assert devmesh(root, "up", "-d", timeout=TIMEOUT).returncode == 0
    run_git(root, "checkout", "-q", "main")
    run_git(root, "branch", "-qD", "short-lived")
    logs = devmesh(root, "logs", "--env", "short-lived", "api")
    assert logs.returncode == 0 and "api gone listening" in logs.stdout
    assert devmesh(root, "down", "--env", "short-lived", timeout=TIMEOUT).returncode == 0
    assert app_objects(root) == []


# --- strategies through Istio's routing: the docker runtime's scenarios (tests/test_strategies_docker.py)


class Gateway:
    """One keep-alive connection to the ingress gateway, for one app."""

    def __init__(self, port: int, app: str) -> None:
        self.host = f"{app}.localhost"
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(self, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        body = b"{}" if method == "POST" else None
        self.conn.request(method, "/", body=body, headers={"Host": self.host, **(headers or {})})
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def answer(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        status, body = self.send(headers=headers)
        assert status == 200, body
        return dict(json.loads(body))

    def envs(self, n: int, headers: dict[str, str] | None = None) -> Counter[str]:
        """Which environment's web answered each of ``n`` requests."""
        return Counter(str(self.answer(headers)["env"]) for _ in range(n))

    def wait_until(self, check: Callable[[dict[str, Any]], bool], timeout: float = 60) -> None:
        """Istio programs the gateway and the sidecars within seconds of a change: wait for it."""
        deadline = time.monotonic() + timeout
        while not check(self.answer()):
            assert time.monotonic() < deadline, "the routing change did not take effect"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def feat(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A branch that changes web and api, up beside the baseline."""
    root, app = _kind_project(tmp_path_factory.mktemp("strategies") / "shop")
    run_git(root, "checkout", "-q", "-b", "feat")
    for service in ("web", "api"):
        app_py = root / "services" / service / "app.py"
        app_py.write_text(app_py.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"'))
    run_git(root, "commit", "-qam", "web and api v2")
    done = devmesh(root, "up", "--detach", timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    wait_for(GATEWAY_PORT, f"{app}.localhost", lambda b: "api" in b, timeout=120)
    yield root, app
    devmesh(root, "down", "--baseline", timeout=TIMEOUT)
    remove_images(app)


def _cli(root: Path, *args: str) -> str:
    done = devmesh(root, *args, timeout=TIMEOUT)
    assert done.returncode == 0, f"devmesh {' '.join(args)}: {done.stderr}"
    return done.stdout


@full_suite
def test_canary_through_istio_sends_20_percent_to_the_branch(feat: tuple[Path, str]) -> None:
    root, app = feat
    gateway = Gateway(GATEWAY_PORT, app)
    assert "20% of requests without x-devmesh-env go to feat's version" in _cli(root, "canary", "web", "--weight", "20")
    try:
        gateway.wait_until(lambda b: b["env"] == "feat")
        n = 1000
        counts = gateway.envs(n)
        # Binomial(1000, 0.2): mean 200, sd 12.6; ±57 is 4.5 sd (the docker runtime's bound).
        assert abs(counts["feat"] - 200) <= 57, counts
        assert counts["feat"] + counts["baseline"] == n
        # the canary's web is the branch's v2, which calls the baseline api
        bodies = [gateway.answer() for _ in range(40)]
        assert {(b["version"], b["env"]) for b in bodies} == {("v1", "baseline"), ("v2", "feat")}
        assert {b["api"]["env"] for b in bodies} == {"baseline"}
        # the routing header still decides, on every hop
        tagged = gateway.answer({HEADER: "feat"})
        assert (tagged["env"], tagged["api"]["env"], tagged["api"]["stock"]["env"]) == ("feat", "feat", "baseline")
    finally:
        _cli(root, "canary", "web", "--off")
    gateway.wait_until(lambda b: all(e == "baseline" for e in gateway.envs(20)))


@full_suite
def test_switch_through_istio_and_back(feat: tuple[Path, str]) -> None:
    root, app = feat
    gateway = Gateway(GATEWAY_PORT, app)
    assert "every request without x-devmesh-env goes to feat's version of web" in _cli(root, "switch", "web")
    gateway.wait_until(lambda b: b["env"] == "feat")
    assert gateway.envs(100) == {"feat": 100}
    # requests of other previews (they carry the routing header) keep the baseline web
    assert gateway.answer({HEADER: "other-preview"})["env"] == "baseline"
    assert "go to the baseline again" in _cli(root, "switch", "web", "--back")
    gateway.wait_until(lambda b: b["env"] == "baseline")
    assert gateway.envs(100) == {"baseline": 100}


@full_suite
def test_mirror_through_istio_copies_gets_never_posts(feat: tuple[Path, str]) -> None:
    root, app = feat
    gateway = Gateway(GATEWAY_PORT, app)

    def copies() -> list[str]:
        """The methods of the requests the branch's api answered, from its pod's log."""
        return re.findall(r"\bapi (GET|HEAD|POST) / ", devmesh(root, "logs", "--env", "feat", "api").stdout)

    before = len(copies())
    _cli(root, "mirror", "api")
    try:
        # Istio's mirror is in effect when a GET's copy shows in the branch's log.
        deadline = time.monotonic() + 60
        while len(copies()) == before:
            assert time.monotonic() < deadline, "no GET was copied to the branch's api"
            assert gateway.send("GET")[0] == 200
            time.sleep(0.5)
        time.sleep(2)  # the copies of the GETs sent while waiting are in by now
        start = len(copies())
        for method in ("POST", "GET", "POST", "HEAD", "POST"):
            status, body = gateway.send(method)
            assert status == 200
            if method != "HEAD":
                answer = json.loads(body)
                assert (answer["api"]["env"], answer["api"]["method"]) == ("baseline", method)
        time.sleep(3)  # a late copy of a POST would show by now
        assert copies()[start:] == ["GET", "HEAD"]
        # the caller's sidecar records the copy too, as a branch of the request's chain
        assert gateway.send("GET", {"x-request-id": "kind-mirrored"})[0] == 200
        deadline = time.monotonic() + 30
        while True:
            report = json.loads(_cli(root, "traffic", "--json", "--last", "1000", "--service", "api"))
            chain = next((c for c in report["chains"] if c["request_id"] == "kind-mirrored"), None)
            if chain is not None and len(chain["hops"]) >= 5:  # each pod's sidecar logs its own
                break
            assert time.monotonic() < deadline, f"not every hop of the mirrored request was recorded: {chain}"
            time.sleep(1)
        served = sorted((h["service"], h["env"], h["mirror"], h["caller"]) for h in chain["hops"])
        # the copy is answered by feat's api, which calls stock as it would for a real request
        assert served == [("api", "baseline", False, "web@baseline"), ("api", "feat", True, "web@baseline"),
                          ("stock", "baseline", False, "api@baseline"), ("stock", "baseline", False, "api@feat"),
                          ("web", "baseline", False, "outside")], chain
        assert chain["path_text"] == ("web@baseline → [api@baseline → stock@baseline, "
                                      "api@feat (mirror) → stock@baseline]")
    finally:
        _cli(root, "mirror", "api", "--off")


@full_suite
def test_a_rate_limit_through_istio_answers_429_beyond_it_on_each_version(feat: tuple[Path, str]) -> None:
    root, app = feat
    gateway = Gateway(GATEWAY_PORT, app)
    config = root / "devmesh.yaml"
    before = config.read_text()
    config.write_text(before.replace("    entry: true", "    entry: true\n    values: {rate_limit: 5}", 1))

    def burst(headers: dict[str, str] | None = None) -> Counter[int]:
        return Counter(gateway.send(headers=headers)[0] for _ in range(40))

    try:
        _cli(root, "up", "--detach")
        deadline = time.monotonic() + 60
        while (statuses := burst())[429] == 0:  # Istio programs the sidecars within seconds
            assert time.monotonic() < deadline, "the rate limit did not take effect"
            time.sleep(1.5)
        # 40 quick requests to web@baseline, 5 a second: its burst and what refills get through
        assert 3 <= statuses[200] <= 20 and statuses[200] + statuses[429] == 40, statuses
        time.sleep(1.5)
        # feat's web has a bucket of its own (its own pod's sidecar): the baseline's being empty
        # does not refuse it
        both = burst()
        tagged = Counter(gateway.send(headers={HEADER: "feat"})[0] for _ in range(5))
        assert both[429] > 0 and tagged == {200: 5}, (both, tagged)
        # the gateway's records tell the mesh's refusals from web's own answers
        deadline = time.monotonic() + 20
        while True:
            report = json.loads(_cli(root, "traffic", "--json", "--last", "0", "--service", "web"))
            web = next((v for v in report["versions"] if v["env"] == "baseline"), {"limited": 0})
            if web["limited"] >= statuses[429] or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert web["limited"] >= statuses[429] and web["error_pct"] == 0, web
    finally:
        config.write_text(before)
        _cli(root, "up", "--detach")
    deadline = time.monotonic() + 60
    while burst()[429]:
        assert time.monotonic() < deadline, "the rate limit stayed after it was unset"
        time.sleep(1.5)


@full_suite
def test_traffic_through_istio_shows_each_hop_and_each_version(feat: tuple[Path, str]) -> None:
    root, app = feat
    gateway = Gateway(GATEWAY_PORT, app)
    # Istio programs the access logs within seconds of `up`: wait for the first record
    deadline = time.monotonic() + 60
    while True:
        gateway.answer({"x-request-id": "kind-warm"})
        found = json.loads(_cli(root, "traffic", "--json", "--last", "1000"))
        if any(c["request_id"] == "kind-warm" for c in found["chains"]):
            break
        assert time.monotonic() < deadline, f"no record of the request: {found}"
        time.sleep(1)
    answers = {f"kind-{i}": gateway.answer({"x-request-id": f"kind-{i}", **({HEADER: "feat"} if i % 2 else {})})
               for i in range(4)}
    deadline = time.monotonic() + 30
    while True:
        report = json.loads(_cli(root, "traffic", "--json", "--last", "1000"))
        chains = {c["request_id"]: c for c in report["chains"] if c["request_id"] in answers}
        if len(chains) == len(answers) and all(len(c["hops"]) == 3 for c in chains.values()):
            break
        assert time.monotonic() < deadline, f"not every hop was recorded: {chains}"
        time.sleep(1)
    for request_id, body in answers.items():
        served = [f"web@{body['env']}", f"api@{body['api']['env']}", f"stock@{body['api']['stock']['env']}"]
        chain = chains[request_id]
        assert [f"{h['service']}@{h['env']}" for h in chain["hops"]] == served, chain
        assert [h["caller"] for h in chain["hops"]] == ["outside", served[0], served[1]]
        assert chain["hops"][0]["listener"] == "gateway" and chain["status"] == 200
        assert chain["hops"][1]["rule"] in ("api-feat", "api-baseline")
    assert chains["kind-1"]["path_text"] == "web@feat → api@feat → stock@baseline"
    assert chains["kind-0"]["path_text"] == "web@baseline → api@baseline → stock@baseline"
    figures = {(v["service"], v["env"]): v for v in report["versions"]}
    assert figures[("api", "feat")]["requests"] >= 2 and figures[("web", "baseline")]["requests"] >= 2
    assert report["unparsed"] == 0, report["notes"]
    # --branch: only the requests that reached feat's versions
    only = json.loads(_cli(root, "traffic", "--json", "--branch", "feat", "--last", "1000"))
    assert {"kind-1", "kind-3"} <= {c["request_id"] for c in only["chains"]}
    assert not {"kind-0", "kind-2"} & {c["request_id"] for c in only["chains"]}


@full_suite
def test_auto_canary_through_istio_walks_every_step_on_the_records(feat: tuple[Path, str]) -> None:
    root, app = feat
    presets = root / "presets" / "strategies"
    presets.mkdir(parents=True, exist_ok=True)
    (presets / "quick.yaml").write_text(QUICK)
    load = Load(GATEWAY_PORT, f"{app}.localhost")
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    try:
        done = devmesh(root, "canary", "api", "--auto", "--preset", "quick", timeout=TIMEOUT)
        assert done.returncode == 0, done.stdout + done.stderr
        for step in ("step 1 of 3 (20%) passed", "step 2 of 3 (50%) passed", "step 3 of 3 (100%) passed"):
            assert step in done.stderr, done.stderr
        assert "api: auto: passed every step (20%, 50%, 100%)" in done.stdout
    finally:
        load.stop.set()
        thread.join(timeout=15)
        _cli(root, "canary", "api", "--off")
        (presets / "quick.yaml").unlink()
    assert load.answers and all(status == 200 for status, _ in load.answers)
    assert {env for _, env in load.answers} == {"baseline", "feat"}  # both versions of api answered


@full_suite
def test_cluster_status_reports_each_part_of_the_real_cluster(cluster: Path) -> None:
    done = devmesh(cluster, "cluster", "status", "--json")
    assert done.returncode == 0, done.stdout
    status = json.loads(done.stdout)
    parts = {p["name"]: p for p in status["parts"]}
    assert status["context"] == "kind-devmesh" and status["healthy"]
    assert set(parts) == {"kind cluster", "registry", "node registry config", "gateway port",
                          "API server", "cluster DNS", "Istio", "ingress gateway",
                          "registry ConfigMap"}, parts
    assert all(p["healthy"] for p in parts.values()), parts
    assert "Kubernetes v1.3" in parts["API server"]["detail"]
    assert f"127.0.0.1:{GATEWAY_PORT}" in parts["gateway port"]["detail"]


@full_suite
def test_the_kind_cluster_as_an_existing_context_gets_nothing_installed(cluster: Path, tmp_path: Path) -> None:
    root, app = _kind_project(tmp_path / "shop")
    done = devmesh(root, "cluster", "up", "--context", "kind-devmesh")
    assert done.returncode == 0, done.stderr
    assert "nothing to change" in done.stdout or "cluster ready" in done.stdout, done.stdout
    assert "Istio 1.31" in done.stderr and "is installed" in done.stderr, done.stderr
    assert "created" not in done.stderr and "installed Istio" not in done.stderr
    _api_branch(root, "ctx", "ctx")
    try:
        up = devmesh(root, "up", "--detach", "--context", "kind-devmesh", timeout=TIMEOUT)
        assert up.returncode == 0, up.stderr
        body = wait_for(GATEWAY_PORT, f"ctx.{app}.localhost", lambda b: "api" in b, timeout=120)
        assert body["api"]["version"] == "ctx" and body["api"]["stock"]["env"] == "baseline"
    finally:
        assert devmesh(root, "down", "--baseline", "--context", "kind-devmesh", timeout=TIMEOUT).returncode == 0
        remove_images(app)
    assert json.loads(devmesh(cluster, "cluster", "status", "--json").stdout)["healthy"]


def _sync_new_version(root: Path, app: str, port: int, env_name: str) -> tuple[dict[str, str], list[str]]:
    """Run the branch ``env_name`` (api at version before-<env>), live-sync a save that makes it
    after-<env>, and see that answer through the gateway; the tools' environment and the pod
    api ran in before the save."""
    _api_branch(root, env_name, f"before-{env_name}")
    assert devmesh(root, "up", "--detach", timeout=TIMEOUT).returncode == 0
    host = f"{env_name}.{app}.localhost"
    wait_for(port, host, lambda b: b.get("api", {}).get("version") == f"before-{env_name}", timeout=120)
    env = {**os.environ, "DEVMESH_ENVOY_IMAGE": docker_env.ENVOY_IMAGE, **tool_env()}
    pods = _api_pods(env_name, env, "{.items[*].metadata.name}")
    proc, err = start_sync(root, env)
    seen: list[str] = []
    try:
        _expect(err, f"syncing environment {env_name}", seen)
        time.sleep(1.0)
        app_py = root / "services/api/app.py"
        app_py.write_text(app_py.read_text().replace(f'"SHOP_VERSION", "before-{env_name}"',
                                                     f'"SHOP_VERSION", "after-{env_name}"'))
        _expect(err, "api: synced app.py", seen)
        body = wait_for(port, host, lambda b: b.get("api", {}).get("version") == f"after-{env_name}",
                        timeout=60)
        assert body["api"]["env"] == env_name
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, seen
    return env, pods


def _api_pods(env_name: str, env: dict[str, str], jsonpath: str) -> list[str]:
    """``jsonpath`` of the api pods of ``env_name``, split at spaces."""
    return subprocess.run(
        ["kubectl", "--context", "kind-devmesh", "get", "pods", "-A",
         "-l", f"devmesh.dev/service=api,devmesh.dev/env={env_name}", "-o", f"jsonpath={jsonpath}"],
        capture_output=True, text=True, check=True, env=env).stdout.split()


@full_suite
def test_live_sync_reaches_the_real_pod_through_exec(shop: tuple[Path, str, int]) -> None:
    root, app, port = shop
    # the tar stream goes in through exec, SIGHUP makes the app re-read it: the same pod
    env, _ = _sync_new_version(root, app, port, "synced")
    restarts = _api_pods("synced", env, "{.items[*].status.containerStatuses[*].restartCount}")
    assert restarts and set(restarts) == {"0"}, restarts


@full_suite
def test_live_sync_restart_runs_the_command_again_in_the_same_real_pod(shop: tuple[Path, str, int]) -> None:
    # The preset's reload (restart) instead of the starter's SIGHUP: devmesh's supervisor runs
    # the command again inside the pod, after the sidecar has no request in flight to it.
    root, app, port = shop
    config = root / "devmesh.yaml"
    text = config.read_text()
    marker = "  api:\n    context: services/api\n    preset: python-web\n    reload: {signal: HUP}"
    assert marker in text
    config.write_text(text.replace(marker, marker.rsplit("\n", 1)[0]))
    run_git(root, "commit", "-qam", "api: the preset's reload")
    env, [pod] = _sync_new_version(root, app, port, "restarted")
    # the same pod and container: no Kubernetes restart, the supervisor is its PID 1
    after = _api_pods("restarted", env, "{.items[*].metadata.name} "
                      "{.items[*].status.containerStatuses[?(@.name=='api')].restartCount}")
    assert after == [pod, "0"], after
    init = subprocess.run(["kubectl", "--context", "kind-devmesh", "-n", f"devmesh-{app}", "exec", pod,
                           "-c", "api", "--", "cat", "/proc/1/cmdline"],
                          capture_output=True, check=True, env=env).stdout.split(b"\0")
    assert init[:4] == [b"/bin/sh", b"/.devmesh/supervise", b"python3", b"app.py"], init
    # the sidecar answers the count a reload waits on, under the name devmesh reads
    pattern = r"^cluster\.inbound\|8000\|\|;?\.upstream_rq_active$"
    stats = subprocess.run(["kubectl", "--context", "kind-devmesh", "-n", f"devmesh-{app}", "exec", pod,
                            "-c", "istio-proxy", "--", "pilot-agent", "request", "GET",
                            f"stats?filter={urllib.parse.quote(pattern, safe='')}"],
                           capture_output=True, text=True, check=True, env=env).stdout
    assert active_requests(stats, 8000) == 0, stats
