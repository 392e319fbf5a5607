"""Release strategies on the kind runtime: the real CLI (a subprocess, as a user runs it) against
the fake cluster served over HTTP, and the runtime's route_plan/apply_routes/up/down in process.

A strategy only rewrites VirtualServices and DestinationRules: no Deployment is written, so no
pod is replaced. Every applied object passes the Istio schemas."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.config import Project
from devmesh.errors import UserInputError
from devmesh.naming import BASELINE_ENV
from devmesh.plan.k8s import SERVICE_LABEL
from devmesh.plan.routing import Backend, Environment
from devmesh.plan.strategy import Canary, Mirror, Switch, bucket_regex
from devmesh.runtime.kind.runtime import KindRuntime
from tests.kind.conftest import FakePublisher
from tests.kind.fake_apiserver import FakeApiServer, serve, write_kubeconfig
from tests.kind.fake_cluster import FakeCluster
from tests.schemas import validate

NS = "devmesh-shop"
ISTIO = "networking.istio.io/v1"
HEADER = "x-devmesh-env"
ONE = Environment("one", ("api",), "one")


def images(project: Project, *envs: Environment) -> dict[Backend, str]:
    out = {Backend(s, BASELINE_ENV): f"devmesh.local/shop/{s}:base{s}" for s in project.services}
    for env in envs:
        out |= {Backend(s, env.name): f"devmesh.local/shop/{s}:{env.name}{s}" for s in env.forks}
    return out


def runtime(project: Project, fake: FakeCluster) -> KindRuntime:
    return KindRuntime(project, cluster=fake, publisher=FakePublisher(), timeout=5.0)


def routes(fake: FakeCluster, service: str) -> dict[str, dict[str, Any]]:
    vs = fake.get(ISTIO, "VirtualService", service, NS)
    assert vs is not None
    return {r["name"]: r for r in vs["spec"]["http"]}


def as_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without what the server adds (uid, managedFields, …): what was applied."""
    meta = {k: v for k, v in obj["metadata"].items()
            if k in ("name", "namespace", "labels", "annotations")}
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, "spec": obj["spec"]}


def validate_routes(fake: FakeCluster) -> None:
    for kind in ("VirtualService", "DestinationRule"):
        for obj in fake.list(ISTIO, kind, namespace=NS):
            validate(as_applied(obj))


def pods(fake: FakeCluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in fake.list("v1", "Pod", namespace=NS))


def deployment_generations(fake: FakeCluster) -> dict[str, int]:
    return {d["metadata"]["name"]: d["metadata"]["generation"]
            for d in fake.list("apps/v1", "Deployment", namespace=NS)}


# --------------------------------------------------------------------------- the CLI


class Cli:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "devmesh", *args], cwd=self.root,
                              env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=60)
        if ok:
            assert done.returncode == 0, f"devmesh {' '.join(args)}: {done.stdout}{done.stderr}"
        return done


@pytest.fixture
def server(fake: FakeCluster) -> Iterator[FakeApiServer]:
    with serve(fake) as state:
        yield state


@pytest.fixture
def cli(project: Project, server: FakeApiServer, tmp_path: Path) -> Cli:
    config = write_kubeconfig(tmp_path / "kubeconfig", server.url, context="kind-devmesh")
    return Cli(project.root, {"KUBECONFIG": str(config), "DEVMESH_STATE_DIR": os.environ["DEVMESH_STATE_DIR"]})


@pytest.fixture
def running(project: Project, fake: FakeCluster) -> KindRuntime:
    rt = runtime(project, fake)
    rt.up(ONE, images=images(project, ONE))
    return rt


def test_canary_on_kind_applies_the_weighted_route_and_switch_back_restores(
        running: KindRuntime, fake: FakeCluster, cli: Cli) -> None:
    before_pods, before_generations = pods(fake), deployment_generations(fake)
    plain = routes(fake, "api")
    assert list(plain) == ["api-one", "api-baseline"]
    fake.calls.clear()

    done = cli("canary", "api", "--weight", "20", "--env", "one")
    assert "api:" in done.stdout and "20" in done.stdout
    http = routes(fake, "api")
    assert list(http) == ["api-one", "api-canary", "api-baseline"]
    assert [(d["destination"]["subset"], d["weight"]) for d in http["api-canary"]["route"]] == [
        ("baseline", 80), ("one", 20)]
    assert http["api-canary"]["match"] == [{"withoutHeaders": {HEADER: {}}}]
    validate_routes(fake)
    # Routes only: no Deployment written, no pod replaced.
    assert pods(fake) == before_pods and deployment_generations(fake) == before_generations
    assert not [c for c in fake.calls if c[0] in ("apply", "update", "delete") and c[1] == "Deployment"]
    assert "strategy api: " in cli("routes").stdout

    cli("switch", "api", "--back")
    assert routes(fake, "api") == plain
    assert pods(fake) == before_pods and deployment_generations(fake) == before_generations
    validate_routes(fake)


def test_sticky_canary_mirror_and_switch_on_kind(running: KindRuntime, fake: FakeCluster, cli: Cli) -> None:
    cli("canary", "api", "--weight", "20", "--sticky-header", "x-user-id", "--env", "one")
    http = routes(fake, "api")
    assert http["api-canary-sticky"]["match"] == [{
        "headers": {"x-user-id": {"regex": bucket_regex(20)}}, "withoutHeaders": {HEADER: {}}}]
    assert http["api-canary-sticky"]["route"][0]["destination"]["subset"] == "one"
    assert http["api-canary-sticky-rest"]["route"][0]["destination"]["subset"] == "baseline"
    validate_routes(fake)

    cli("mirror", "api", "--percent", "25", "--env", "one")  # replaces the canary
    http = routes(fake, "api")
    assert "api-canary" not in http and "api-canary-sticky" not in http
    mirror = http["api-mirror"]
    assert [m["method"] for m in mirror["match"]] == [{"exact": "GET"}, {"exact": "HEAD"}]
    assert mirror["route"][0]["destination"]["subset"] == "baseline"
    assert mirror["mirror"]["subset"] == "one" and mirror["mirrorPercentage"] == {"value": 25.0}
    validate_routes(fake)

    cli("switch", "api", "--env", "one")
    http = routes(fake, "api")
    assert "api-mirror" not in http
    assert http["api-switch"]["match"] == [{"withoutHeaders": {HEADER: {}}}]
    assert http["api-switch"]["route"] == [{"destination": {
        "host": f"api.{NS}.svc.cluster.local", "subset": "one", "port": {"number": 8000}}}]
    validate_routes(fake)

    cli("switch", "api", "--back")
    assert list(routes(fake, "api")) == ["api-one", "api-baseline"]


def test_strategy_for_a_service_the_environment_does_not_fork_is_refused(
        running: KindRuntime, cli: Cli) -> None:
    done = cli("canary", "stock", "--weight", "20", "--env", "one", ok=False)
    assert done.returncode == 2 and "runs no version of its own of stock" in done.stderr


@pytest.mark.parametrize("undo", [("canary", "api", "--off"), ("mirror", "api", "--off")])
def test_undo_with_an_environment_is_refused_not_ignored(running: KindRuntime, fake: FakeCluster,
                                                         cli: Cli, undo: tuple[str, ...]) -> None:
    cli(undo[0], "api", "--env", "one", *(("--weight", "20") if undo[0] == "canary" else ()))
    done = cli(*undo, "--env", "someone-else", ok=False)
    assert done.returncode == 2 and done.stderr.startswith("error: --off takes no --branch or --env")
    assert f"api-{undo[0]}" in routes(fake, "api")  # still there: nothing was undone


def test_strategy_commands_take_the_context_of_a_shared_cluster(
        running: KindRuntime, fake: FakeCluster, server: FakeApiServer, tmp_path: Path) -> None:
    """`up --context NAME` ran the environment there; the strategies must reach the same cluster
    (the kubeconfig has no kind context at all)."""
    config = write_kubeconfig(tmp_path / "team-kubeconfig", server.url, context="team")
    cli = Cli(running.project.root, {"KUBECONFIG": str(config),
                                     "DEVMESH_STATE_DIR": os.environ["DEVMESH_STATE_DIR"]})
    done = cli("canary", "api", "--weight", "20", "--env", "one", "--context", "team")
    assert done.stdout.startswith("api: canary: 20%")
    assert [d["weight"] for d in routes(fake, "api")["api-canary"]["route"]] == [80, 20]
    assert "strategy api: canary" in cli("routes", "--context", "team").stdout
    cli("mirror", "api", "--env", "one", "--context", "team")
    assert "api-mirror" in routes(fake, "api")
    cli("switch", "api", "--env", "one", "--context", "team")
    assert "api-switch" in routes(fake, "api")
    cli("switch", "api", "--back", "--context", "team")
    assert list(routes(fake, "api")) == ["api-one", "api-baseline"]


# --------------------------------------------------------------------------- the runtime


def test_route_plan_and_apply_routes_keep_deployments(running: KindRuntime, fake: FakeCluster) -> None:
    running.strategies.put(Canary("api", "one", 30))
    fake.calls.clear()
    plan = running.apply_routes()
    assert [s.kind for s in plan.strategies] == ["canary"]
    written = {c[1] for c in fake.calls if c[0] in ("apply", "update", "delete")}
    assert written == {"VirtualService"}  # the DestinationRule did not change
    assert [d["weight"] for d in routes(fake, "api")["api-canary"]["route"]] == [70, 30]
    assert running.route_plan().strategies == plan.strategies
    fake.calls.clear()
    running.apply_routes()  # nothing changed: nothing applied
    assert not [c for c in fake.calls if c[0] == "apply"]


def test_up_keeps_stored_strategies_and_down_prunes_them(project: Project, running: KindRuntime,
                                                          fake: FakeCluster) -> None:
    two = Environment("two", ("stock",), "two")
    running.strategies.put(Switch("api", "one"))
    running.apply_routes()
    running.up(two, images=images(project, two))  # another branch's up keeps one's switch
    assert routes(fake, "api")["api-switch"]["route"][0]["destination"]["subset"] == "one"
    running.strategies.put(Mirror("stock", "two", 10))
    running.apply_routes()
    assert "stock-mirror" in routes(fake, "stock")

    running.down("two")  # two's mirror goes with it; one's switch stays
    assert [s.service for s in running.strategies.load()] == ["api"]
    assert "stock-mirror" not in routes(fake, "stock")
    running.down("one")  # the last environment: everything goes, strategies too
    assert running.strategies.load() == ()


def test_apply_routes_without_a_running_app(project: Project, fake: FakeCluster) -> None:
    with pytest.raises(UserInputError, match="not running on the kind runtime"):
        runtime(project, fake).apply_routes()


def test_the_routes_a_strategy_changes_are_labelled_by_service(running: KindRuntime, fake: FakeCluster) -> None:
    running.strategies.put(Canary("api", "one", 50, "x-user-id"))
    running.apply_routes()
    vs = fake.get(ISTIO, "VirtualService", "api", NS)
    assert vs is not None and vs["metadata"]["labels"][SERVICE_LABEL] == "api"
    assert [m["manager"] for m in vs["metadata"]["managedFields"]] == ["devmesh"]
