"""KindRuntime's up, down, ls/status and logs through the faithful fake of the cluster client."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from devmesh.config import Project, load_project
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend, Environment
from devmesh.runtime.kind.rollout import assess
from devmesh.runtime.kind.runtime import KindRuntime, RolloutFailed
from tests.conftest import ProjectFactory
from tests.kind.conftest import KIND_YAML, Events, FakePublisher
from tests.kind.fake_cluster import FakeCluster

NS = "devmesh-shop"


def deleted(namespace: dict[str, Any] | None) -> bool:
    """Gone, or terminating: a deleted namespace stays a while, as in a real cluster."""
    return namespace is None or bool(namespace["metadata"].get("deletionTimestamp"))


def images(project: Project, *envs: Environment) -> dict[Backend, str]:
    out = {Backend(s, BASELINE_ENV): f"devmesh.local/shop/{s}:base{s}" for s in project.services}
    for env in envs:
        out |= {Backend(s, env.name): f"devmesh.local/shop/{s}:{env.name}{s}" for s in env.forks}
    return out


def runtime(project: Project, fake: FakeCluster, publisher: FakePublisher | None = None,
            timeout: float = 5.0) -> KindRuntime:
    return KindRuntime(project, cluster=fake, publisher=publisher or FakePublisher(), timeout=timeout)


def names(fake: FakeCluster, kind: str, api: str = "apps/v1") -> list[str]:
    return [o["metadata"]["name"] for o in fake.list(api, kind, namespace=NS)]


def vs_rules(fake: FakeCluster, name: str) -> list[str]:
    vs = fake.get("networking.istio.io/v1", "VirtualService", name, NS)
    assert vs is not None
    return [r["name"] for r in vs["spec"]["http"]]


def test_up_applies_what_render_prints_with_images_pinned_by_digest(project: Project, fake: FakeCluster,
                                                                    events: Events) -> None:
    one = Environment("one", ("api",), "feature/one")
    publisher = FakePublisher()
    result = runtime(project, fake, publisher).up(one, sink=events, images=images(project, one),
                                                   baseline_commit="abc123")
    assert sorted(names(fake, "Deployment")) == ["api-baseline", "api-one", "stock-baseline", "web-baseline"]
    api_one = fake.get("apps/v1", "Deployment", "api-one", NS)
    assert api_one is not None
    image = api_one["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.startswith("127.0.0.1:5001/shop/api@sha256:")
    assert api_one["metadata"]["annotations"]["devmesh.dev/branch"] == "feature/one"
    assert [m["manager"] for m in api_one["metadata"]["managedFields"]] == ["devmesh"]
    ns = fake.get("v1", "Namespace", NS)
    assert ns is not None and ns["metadata"]["labels"]["istio-injection"] == "enabled"
    assert vs_rules(fake, "api") == ["api-one", "api-baseline"]
    assert names(fake, "VirtualService", "networking.istio.io/v1") == [
        "api", "shop-gateway-baseline", "shop-gateway-one", "stock", "web"]
    assert sorted(publisher.pushed) == sorted(images(project, one).values())
    assert result.changed and result.environment.preview_url == "http://one.shop.localhost:18080/"
    assert [(s.service, s.env, s.state, s.ready) for s in result.environment.services] == [
        ("web", "baseline", "running", True), ("api", "one", "running", True),
        ("stock", "baseline", "running", True)]
    assert result.environment.branch == "feature/one"
    assert "api (one) is ready" in events.messages()


def test_up_applies_deployments_with_the_projects_rolling_preset(project: Project,
                                                                  fake: FakeCluster) -> None:
    folder = project.root / "presets" / "strategies"
    folder.mkdir(parents=True)
    (folder / "rolling.yaml").write_text(
        "variables: {}\ndefaults:\n  kind: rolling\n  max_surge: 2\n  max_unavailable: 50%\n")
    one = Environment("one", ("api",), "one")
    runtime(project, fake).up(one, images=images(project, one))
    for name in names(fake, "Deployment"):
        deployment = fake.get("apps/v1", "Deployment", name, NS)
        assert deployment is not None
        assert deployment["spec"]["strategy"] == {
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "50%"}}


def test_a_second_up_changes_nothing(project: Project, fake: FakeCluster) -> None:
    one = Environment("one", ("api",), "one")
    rt = runtime(project, fake)
    rt.up(one, images=images(project, one))
    fake.calls.clear()
    again = rt.up(one, images=images(project, one))
    assert not again.changed and again.actions == ()
    assert not [c for c in fake.calls if c[0] in ("apply", "update", "delete")]


def test_one_branch_keeps_the_other_branchs_routes(project: Project, fake: FakeCluster) -> None:
    one, two = Environment("one", ("api",), "one"), Environment("two", ("stock",), "two")
    rt = runtime(project, fake)
    rt.up(one, images=images(project, one))
    rt.up(two, images=images(project, two))
    assert vs_rules(fake, "api") == ["api-one", "api-baseline"]
    assert vs_rules(fake, "stock") == ["stock-two", "stock-baseline"]
    assert [e.name for e in rt.environments()] == ["baseline", "one", "two"]

    removed = rt.down("two")
    assert sorted(removed) == ["Deployment stock-two", "VirtualService shop-gateway-two"]
    assert vs_rules(fake, "stock") == ["stock-baseline"]
    dr = fake.get("networking.istio.io/v1", "DestinationRule", "stock", NS)
    assert dr is not None and [s["name"] for s in dr["spec"]["subsets"]] == ["baseline"]
    assert vs_rules(fake, "api") == ["api-one", "api-baseline"]

    removed = rt.down("one")
    assert "Namespace devmesh-shop" in removed
    assert deleted(fake.get("v1", "Namespace", NS)) and rt.environments() == []
    assert rt.down("one") == []


def test_down_baseline_removes_every_environment(project: Project, fake: FakeCluster) -> None:
    one = Environment("one", ("api",), "one")
    rt = runtime(project, fake)
    rt.up(one, images=images(project, one))
    rt.down(BASELINE_ENV, baseline=True)
    assert fake.list("apps/v1", "Deployment") == [] and deleted(fake.get("v1", "Namespace", NS))


def test_a_service_the_branch_no_longer_changes_goes_away(project: Project, fake: FakeCluster) -> None:
    both = Environment("one", ("api", "stock"), "one")
    rt = runtime(project, fake)
    rt.up(both, images=images(project, both))
    only_api = Environment("one", ("api",), "one")
    result = rt.up(only_api, images=images(project, only_api))
    assert "stock-one" not in names(fake, "Deployment")
    assert any(a.startswith("removed Deployment stock-one") for a in result.actions)


def test_a_rate_limit_is_an_envoyfilter_that_goes_when_the_limit_does(make_project: ProjectFactory,
                                                                       fake: FakeCluster) -> None:
    limited = KIND_YAML.replace("    port: 8000\n  stock:",
                                "    port: 8000\n    resilience:\n      rate_limit:\n"
                                "        requests_per_second: 5\n  stock:")
    root = make_project(limited)
    one = Environment("one", ("api",), "one")
    project = load_project(root / "devmesh.yaml")
    rt = runtime(project, fake)
    rt.up(one, images=images(project, one))
    assert names(fake, "EnvoyFilter", "networking.istio.io/v1alpha3") == ["api-rate-limit", "devmesh-access-log"]
    (root / "devmesh.yaml").write_text(KIND_YAML)
    project = load_project(root / "devmesh.yaml")
    result = runtime(project, fake).up(one, images=images(project, one))
    assert names(fake, "EnvoyFilter", "networking.istio.io/v1alpha3") == ["devmesh-access-log"]
    assert "removed EnvoyFilter api-rate-limit: its service has no rate limit now" in result.actions
    assert not runtime(project, fake).up(one, images=images(project, one)).changed


def test_the_access_logs_come_with_the_app_and_go_with_it(project: Project, fake: FakeCluster) -> None:
    one = Environment("one", ("api",), "one")
    rt = runtime(project, fake)
    rt.up(one, images=images(project, one))
    gateway_log = ("networking.istio.io/v1alpha3", "EnvoyFilter", "devmesh-shop-access-log", "istio-system")
    assert fake.get(*gateway_log) is not None
    assert fake.get("networking.istio.io/v1alpha3", "EnvoyFilter", "devmesh-access-log", NS) is not None
    removed = rt.down("one")  # the last environment: the baseline goes with it
    assert fake.get(*gateway_log) is None and "EnvoyFilter devmesh-shop-access-log" in removed


def test_another_managers_change_is_taken_back_on_the_next_change(project: Project, fake: FakeCluster) -> None:
    one = Environment("one", ("api",), "one")
    rt = runtime(project, fake)
    rt.up(one, images=images(project, one))
    edited = fake.get("apps/v1", "Deployment", "api-one", NS)
    assert edited is not None
    edited["spec"]["replicas"] = 0
    fake.update(edited, manager="kubectl-scale")
    newer = {**images(project, one), Backend("api", "one"): "devmesh.local/shop/api:newer"}
    rt.up(one, images=newer)
    api_one = fake.get("apps/v1", "Deployment", "api-one", NS)
    assert api_one is not None and api_one["spec"]["replicas"] == 1
    assert {m["manager"] for m in api_one["metadata"]["managedFields"]} == {"devmesh"}


def test_image_pull_failure_names_the_reason(project: Project, fake: FakeCluster) -> None:
    one = Environment("one", ("api",), "one")
    fake.fate = lambda pod: "image-pull" if pod["metadata"]["labels"].get("version") == "one" else "ready"
    with pytest.raises(RolloutFailed) as caught:
        runtime(project, fake).up(one, images=images(project, one))
    assert "api (one) cannot start: ImagePullBackOff: the image cannot be pulled" in str(caught.value)
    assert "Back-off pulling image \"127.0.0.1:5001/shop/api@sha256:" in str(caught.value)
    assert "devmesh cluster status" in (caught.value.hint or "")


def test_crash_loop_shows_the_last_log_lines(project: Project, fake: FakeCluster) -> None:
    broken = Environment("broken", ("stock",), "broken")
    fake.fate = lambda pod: "crash" if pod["metadata"]["labels"].get("version") == "broken" else "ready"
    fake.exit_codes["stock"] = 3
    fake.add_logs("devmesh.dev/env=broken", "stock", "starting stock", "stock cannot start: missing STOCK_DB",
                  previous=True)
    with pytest.raises(RolloutFailed) as caught:
        runtime(project, fake).up(broken, images=images(project, broken))
    message = str(caught.value)
    assert "stock (broken) keeps exiting with status 3 while starting (CrashLoopBackOff)" in message
    assert "missing STOCK_DB" in message


def test_unschedulable_and_timeout(project: Project, fake: FakeCluster) -> None:
    one = Environment("one", ("api",), "one")
    fake.fate = lambda pod: "unschedulable"
    with pytest.raises(RolloutFailed) as caught:
        runtime(project, fake).up(one, images=images(project, one))
    assert "Unschedulable — 0/1 nodes are available: 1 Insufficient memory." in str(caught.value)
    assert "no node has room" in (caught.value.hint or "")

    other = FakeCluster()
    other.fate = lambda pod: "pending"
    started = time.monotonic()
    with pytest.raises(RolloutFailed, match=r"not ready after 0 s: api-baseline: Progressing — 0/1 available"):
        runtime(project, other, timeout=0.3).up(one, images=images(project, one))
    assert time.monotonic() - started < 5


def test_logs_merge_the_environments_pods(project: Project, fake: FakeCluster) -> None:
    one = Environment("one", ("api",), "one")
    rt = runtime(project, fake)
    rt.up(one, images=images(project, one))
    fake.add_logs("devmesh.dev/service=web", "web", "web listening")
    fake.add_logs("devmesh.dev/service=api,devmesh.dev/env=baseline", "api", "api baseline listening")
    fake.add_logs("devmesh.dev/service=api,devmesh.dev/env=one", "api", "api one listening",
                  "GET / x-devmesh-env=one")
    lines = list(rt.logs("one", [], follow=False))
    assert [(line.service, line.env, line.text) for line in lines] == [
        ("web", "baseline", "web listening"),
        ("api", "one", "api one listening"),
        ("api", "one", "GET / x-devmesh-env=one"),
    ]
    assert all(line.at.endswith("Z") for line in lines)
    assert [line.text for line in rt.logs("one", ["api"], follow=False, tail=1)] == ["GET / x-devmesh-env=one"]
    assert [line.env for line in rt.logs(BASELINE_ENV, ["api"], follow=False)] == ["baseline"]
    with pytest.raises(Exception, match="unknown service 'nope'"):
        list(rt.logs("one", ["nope"], follow=False))


def test_following_logs_picks_up_new_pods(project: Project, fake: FakeCluster) -> None:
    watched = Environment("watched", ("api",), "watched")
    rt = runtime(project, fake)
    rt.up(watched, images=images(project, watched))
    fake.add_logs("devmesh.dev/service=stock,devmesh.dev/env=watched", "stock", "GET / x-devmesh-env=watched")
    stop = threading.Event()
    seen: list[str] = []

    def follow() -> None:
        for line in rt.logs("watched", ["stock"], follow=True, tail=0, stop=stop):
            seen.append(f"{line.service}@{line.env} {line.text}")

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    both = Environment("watched", ("api", "stock"), "watched")
    rt.up(both, images=images(project, both))  # stock is now forked: a new pod
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    assert seen == ["stock@watched GET / x-devmesh-env=watched"]


def test_exec_with_stdin_reaches_the_pod(project: Project, fake: FakeCluster) -> None:
    """Live sync's path: a tar stream into the fork's container."""
    one = Environment("one", ("api",), "one")
    runtime(project, fake).up(one, images=images(project, one))
    pod = fake.list("v1", "Pod", namespace=NS, selector="devmesh.dev/env=one,devmesh.dev/service=api")[0]
    result = fake.exec(NS, pod["metadata"]["name"], ["tar", "-x", "-f", "-", "-C", "/app"],
                       container="api", stdin=b"tar bytes")
    assert result.exit_code == 0 and fake.exec_calls[-1].stdin == b"tar bytes"


def test_the_app_found_by_labels_alone_lists_logs_and_goes_down(project: Project, fake: FakeCluster) -> None:
    """What `down`, `ls` and `logs` use when devmesh.yaml does not load: no project at all."""
    from devmesh.runtime.kind.runtime import KindApp

    one, two = Environment("one", ("api",), "feature/one"), Environment("two", ("stock",), "two")
    rt = runtime(project, fake)
    rt.up(one, images=images(project, one))
    rt.up(two, images=images(project, two))
    bare = KindApp("shop", context="kind-devmesh", cluster=fake)

    states = {e.name: e for e in bare.environments()}
    assert list(states) == ["baseline", "one", "two"]
    assert {s.service: s.env for s in states["one"].services} == {"api": "one", "stock": "baseline",
                                                                  "web": "baseline"}
    assert states["one"].branch == "feature/one" and states["one"].preview_url is None
    assert all(s.state == "running" and s.ready for s in states["one"].services)

    fake.add_logs("devmesh.dev/service=api,devmesh.dev/env=one", "api", "api one listening")
    assert [line.text for line in bare.logs("one", ["api"], follow=False)] == ["api one listening"]

    events = Events()
    removed = bare.down("two", sink=events)
    assert sorted(removed) == ["Deployment stock-two", "VirtualService shop-gateway-two"]
    assert any("not re-rendered" in m for m in events.messages())  # said, not hidden
    last = bare.down("one")  # the last environment takes the baseline and the namespace
    assert "Deployment api-one" in last and "Deployment web-baseline" in last
    assert last[-1] == "Namespace devmesh-shop"
    assert fake.list("apps/v1", "Deployment") == [] and deleted(fake.get("v1", "Namespace", NS))


def test_a_pod_that_restarted_says_how_often_and_why() -> None:
    deployment = {"metadata": {"name": "gw", "generation": 1},
                  "spec": {"replicas": 1},
                  "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}}
    pod = {"metadata": {"name": "gw-1"},
           "status": {"phase": "Running", "containerStatuses": [{
               "name": "istio-proxy", "ready": False, "restartCount": 2,
               "state": {"running": {}},
               "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}
    assert assess(deployment, [pod]).describe() == (
        "Progressing — 0/1 available; pod gw-1: istio-proxy not ready yet "
        "(restarted 2 times; last exit status 137, OOMKilled)")
    pod["status"]["containerStatuses"][0].update(restartCount=0, lastState={})
    assert assess(deployment, [pod]).describe() == "Progressing — 0/1 available; pod gw-1: istio-proxy not ready yet"


def test_a_deployment_whose_counts_lag_behind_its_pods_is_not_done() -> None:
    """Right after a node restart the Deployment still says 1/1 available (its controller has
    not caught up) while the kubelet already reports the pod not ready: that is not ready."""
    deployment = {"metadata": {"name": "istiod", "generation": 1},
                  "spec": {"replicas": 1},
                  "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                             "readyReplicas": 1, "availableReplicas": 1}}
    pod = {"metadata": {"name": "istiod-1"},
           "status": {"phase": "Running",
                      "conditions": [{"type": "Ready", "status": "False"}],
                      "containerStatuses": [{"name": "discovery", "ready": False, "restartCount": 10,
                                             "state": {"running": {}}}]}}
    rollout = assess(deployment, [pod])
    assert not rollout.done
    assert rollout.describe() == ("Progressing — 0/1 available; pod istiod-1: discovery not ready yet "
                                  "(restarted 10 times)")
    pod["status"]["conditions"][0]["status"] = "True"
    pod["status"]["containerStatuses"][0]["ready"] = True
    assert assess(deployment, [pod]).done


def test_a_cluster_without_istios_root_namespace_gets_all_but_the_gateways_log(project: Project,
                                                                              events: Events) -> None:
    bare = FakeCluster(istio=False)
    one = Environment("one", ("api",), "one")
    runtime(project, bare).up(one, images=images(project, one), sink=events)
    assert bare.get("networking.istio.io/v1alpha3", "EnvoyFilter", "devmesh-access-log", NS) is not None
    assert any(m.startswith("no namespace istio-system in context kind-devmesh: the ingress gateway's "
                            "requests are not recorded") for m in events.messages())
