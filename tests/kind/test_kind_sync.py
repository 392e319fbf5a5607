"""Live sync on the kind runtime: exec with a tar on stdin into the fake cluster's pods, whose
exec really extracts into a per-pod in-memory file system (tests.kind.fake_pods)."""

from __future__ import annotations

import io
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from devmesh.config import Project, ReloadAction, load_project
from devmesh.environments import Selection
from devmesh.errors import UserInputError
from devmesh.events import Event, Warning
from devmesh.naming import BASELINE_ENV
from devmesh.plan.routing import Backend, Environment
from devmesh.plan.supervisor import RELOAD_GRACE, SCRIPT, SUPERVISOR_CONFIGMAP, Launch
from devmesh.runtime.kind.client import ClusterError, open_client
from devmesh.runtime.kind.runtime import KindRuntime
from devmesh.runtime.kind.publish import NO_SHELL
from devmesh.runtime.kind.sync import KubeExec, KubeTransport
from devmesh.app.environments import UpOutcome
from devmesh.sync.archive import build_archive
from devmesh.sync.changes import ChangeSet, plan_sync
from devmesh.sync.engine import ServiceSync
from devmesh.sync.events import SyncDone, SyncFailed
from devmesh.app.live import live_sync_after_up
from devmesh.sync.rules import ServiceSources
from devmesh.sync.transport import Target, TargetGone, TransportError
from devmesh.workspace import current_branch
from tests.conftest import ProjectFactory, git, write_files
from tests.kind.conftest import FakePublisher
from tests.kind.fake_apiserver import serve, write_kubeconfig
from tests.kind.fake_cluster import FakeCluster
from tests.kind.fake_pods import PodFiles

NS = "devmesh-shop"

SYNC_YAML = """\
app: shop
baseline: main
runtime: kind
routing:
  gateway_port: 18080
services:
  web:
    context: services/web
    entry: true
    port: 8000
  api:
    context: services/api
    port: 8000
    sync: [{src: ., dest: /app}]
    rebuild_on: [requirements.txt]
    reload: {signal: HUP}
  stock:
    context: services/stock
    port: 8000
    sync: [{src: ., dest: /app}]
    rebuild_on: [requirements.txt]
"""


@pytest.fixture
def project(make_project: ProjectFactory) -> Project:
    root = make_project(SYNC_YAML, extra={"services/api/lib/util.py": "X = 1\n"})
    git(root, "switch", "-q", "-c", "one")
    return load_project(root / "devmesh.yaml")


@pytest.fixture
def pod_files(fake: FakeCluster) -> PodFiles:
    files = PodFiles()
    fake.exec_handler = files
    return files


def up(project: Project, fake: FakeCluster, forks: tuple[str, ...] = ("api",),
       publisher: FakePublisher | None = None) -> tuple[KindRuntime, Environment]:
    env = Environment("one", forks, "one")
    images = {Backend(s, BASELINE_ENV): f"devmesh.local/shop/{s}:base" for s in project.services}
    images |= {Backend(s, "one"): f"devmesh.local/shop/{s}:one" for s in forks}
    rt = KindRuntime(project, cluster=fake, publisher=publisher or FakePublisher(), timeout=5.0)
    rt.up(env, images=images)
    return rt, env


def pod_of(fake: FakeCluster, service: str, env: str = "one") -> str:
    found = fake.list("v1", "Pod", namespace=NS,
                      selector=f"devmesh.dev/service={service},devmesh.dev/env={env}")
    assert len(found) == 1
    return str(found[0]["metadata"]["name"])


class Sink(list[Event]):
    def __call__(self, event: Event) -> None:
        self.append(event)

    def wait_for(self, kind: type[Event], count: int = 1, timeout: float = 10.0) -> list[Event]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self if isinstance(e, kind)]
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {count} {kind.__name__} within {timeout} s: {list(self)}")


def changes(*items: tuple[str, str]) -> ChangeSet:
    cs = ChangeSet()
    for path, kind in items:
        cs.add(path, kind)  # type: ignore[arg-type]
    return cs


def test_the_runtime_offers_the_exec_transport(project: Project, fake: FakeCluster) -> None:
    rt, _ = up(project, fake)
    transport = rt.sync_transport()
    assert isinstance(transport, KubeTransport) and isinstance(transport.channel, KubeExec)


def test_targets_are_the_services_pods_of_the_environment(project: Project, fake: FakeCluster) -> None:
    rt, _ = up(project, fake, ("api", "stock"))
    transport = rt.sync_transport()
    [target] = transport.targets("one", "api")
    assert (target.name, target.service, target.env, target.state) == (pod_of(fake, "api"), "api", "one", "running")
    assert transport.targets("two", "api") == []
    assert [t.name for t in transport.targets(BASELINE_ENV, "api")] == [pod_of(fake, "api", BASELINE_ENV)]
    fake.set_deletion("v1", "Pod", target.name, NS)
    assert [t.state for t in transport.targets("one", "api")] == ["terminating"]


def test_a_change_set_arrives_in_the_pod_and_deletions_happen(project: Project, fake: FakeCluster,
                                                              pod_files: PodFiles) -> None:
    rt, _ = up(project, fake)
    pod = pod_of(fake, "api")
    ctx = project.context_dir("api")
    sink = Sink()
    engine = ServiceSync(ServiceSources.of(project, "api"), "one", rt.sync_transport(), sink=sink)

    write_files(ctx, {"app.py": "print('v2')\n", "lib/new.py": "Y = 2\n"})
    done = engine.handle(changes(("app.py", "modified"), ("lib/new.py", "added"), ("lib/util.py", "added")))
    assert isinstance(done, SyncDone) and done.files == 3 and done.reload == "signal"
    fs = pod_files.of(pod)
    assert fs.read("/app/app.py") == b"print('v2')\n"
    assert fs.read("/app/lib/new.py") == b"Y = 2\n" and fs.read("/app/lib/util.py") == b"X = 1\n"
    assert pod_files.signals[pod] == ["HUP"]  # reload: {signal: HUP} ends the sync command
    [sync_call] = fake.exec_calls  # one exec: the files, then the signal
    assert (sync_call.container, sync_call.command[:2], sync_call.stdin is not None) == ("api", ("sh", "-c"), True)
    assert sync_call.command[4:6] == ("tar", "HUP")

    (ctx / "lib" / "util.py").unlink()
    done = engine.handle(changes(("lib/util.py", "deleted")))
    assert isinstance(done, SyncDone) and done.deleted == 1
    assert fs.read("/app/lib/util.py") is None and fs.read("/app/lib/new.py") == b"Y = 2\n"
    assert "/app/lib/util.py" in fs.removals
    # the baseline's pod got nothing
    assert pod_of(fake, "api", BASELINE_ENV) not in pod_files.fs


def test_a_refused_deletion_in_the_pod_is_reported(project: Project, fake: FakeCluster,
                                                   pod_files: PodFiles) -> None:
    from tests.sync.container_model import Node

    rt, _ = up(project, fake)
    fs = pod_files.of(pod_of(fake, "api"))
    fs.put("/app/lib", Node("link", target="/etc"))  # a link in the container, not in the sources
    fs.put("/etc/util.py", Node("file", b"keep"))
    (project.context_dir("api") / "lib" / "util.py").unlink()
    sink = Sink()
    engine = ServiceSync(ServiceSources.of(project, "api"), "one", rt.sync_transport(), sink=sink)
    failed = engine.handle(changes(("lib/util.py", "deleted")))
    assert isinstance(failed, SyncFailed) and "status 3" in failed.reason and "symbolic link" in failed.reason
    assert fs.read("/etc/util.py") == b"keep"
    assert pod_of(fake, "api") not in pod_files.signals  # a change set that failed reloads nothing


def test_a_pod_gone_between_listing_and_exec_is_reported_gone(project: Project, fake: FakeCluster,
                                                              pod_files: PodFiles) -> None:
    rt, _ = up(project, fake)
    transport = rt.sync_transport()
    [target] = transport.targets("one", "api")
    fake.delete("v1", "Pod", target.name, NS)
    with pytest.raises(TargetGone, match=f"pod {target.name} is gone"):
        transport.signal(target, "HUP")


def test_an_environment_whose_pods_are_gone_is_reported(project: Project, fake: FakeCluster,
                                                        pod_files: PodFiles) -> None:
    rt, _ = up(project, fake)
    fake.delete("apps/v1", "Deployment", "api-one", NS)  # its pod goes with it
    sink = Sink()
    engine = ServiceSync(ServiceSources.of(project, "api"), "one", rt.sync_transport(), sink=sink)
    failed = engine.handle(changes(("app.py", "modified")))
    assert isinstance(failed, SyncFailed) and failed.result == "gone"
    assert "no container of api in environment one" in failed.reason

    rt, _ = up(project, fake)
    fake.set_deletion("v1", "Pod", pod_of(fake, "api"), NS)
    failed = engine.handle(changes(("app.py", "modified")))
    assert isinstance(failed, SyncFailed) and failed.result == "gone" and "is terminating" in failed.reason


class NoShellPublisher(FakePublisher):
    """Images FROM scratch or distroless: no /bin/sh for the supervisor."""

    def launch(self, local_ref: str) -> Launch:
        return Launch(why=NO_SHELL)


def test_live_synced_pods_run_under_the_supervisor_and_the_baseline_as_built(
        project: Project, fake: FakeCluster) -> None:
    up(project, fake, ("api", "stock"))
    script = fake.get("v1", "ConfigMap", SUPERVISOR_CONFIGMAP, NS)
    assert script is not None and script["data"] == {"supervise": SCRIPT}
    for name in ("api-one", "stock-one"):
        template = fake.get("apps/v1", "Deployment", name, NS)["spec"]["template"]
        [container] = template["spec"]["containers"]
        assert (container["command"], container["args"]) == (["/bin/sh", "/.devmesh/supervise"],
                                                             ["python3", "app.py"])
        assert container["volumeMounts"] == [{"name": "devmesh-supervisor", "mountPath": "/.devmesh",
                                              "readOnly": True}]
        assert template["spec"]["volumes"] == [{"name": "devmesh-supervisor", "configMap": {
            "name": SUPERVISOR_CONFIGMAP, "defaultMode": 0o755}}]
        assert template["metadata"]["labels"]["devmesh.dev/supervised"] == "1"
        # Istio's sidecar keeps the count a reload waits on only when asked to
        assert template["metadata"]["annotations"]["proxy.istio.io/config"] == (
            "proxyStatsMatcher:\n  inclusionSuffixes: [upstream_rq_active]\n")
    for service in project.services:
        [container] = fake.get("apps/v1", "Deployment", f"{service}-baseline", NS)["spec"]["template"]["spec"]["containers"]
        assert "command" not in container and "args" not in container


def test_restart_waits_for_the_requests_in_flight_then_signals_the_supervisor(
        project: Project, fake: FakeCluster, pod_files: PodFiles) -> None:
    fake.sidecars = True
    rt, _ = up(project, fake, ("stock",))
    pod = pod_of(fake, "stock")
    pod_files.in_flight[pod] = [2, 1, 0]
    transport = rt.sync_transport()
    [target] = transport.targets("one", "stock")
    transport.check_reload("one", "stock", ReloadAction(action="restart"))
    transport.restart(target)
    stats = [c for c in pod_files.commands[pod] if c[:1] == ("pilot-agent",)]
    assert len(stats) == 3
    assert urllib.parse.unquote(stats[0][3]) == (
        r"stats?filter=^cluster\.inbound\|8000\|\|;?\.upstream_rq_active$")
    assert pod_files.commands[pod][-1] == ("/bin/sh", "-c", "kill -37 1")
    assert pod_files.signals[pod] == ["37"]
    assert [c.container for c in fake.exec_calls if c.pod == pod] == ["istio-proxy"] * 3 + ["stock"]


def test_a_restart_through_live_sync_is_the_drain_then_one_exec(project: Project, fake: FakeCluster,
                                                                pod_files: PodFiles) -> None:
    """The requests in flight are waited for first; then the files and the supervisor's signal
    go in one exec into the service's container (not an exec for each)."""
    fake.sidecars = True
    rt, _ = up(project, fake, ("stock",))
    pod = pod_of(fake, "stock")
    pod_files.in_flight[pod] = [1, 0]
    engine = ServiceSync(ServiceSources.of(project, "stock"), "one", rt.sync_transport(), sink=Sink())
    write_files(project.context_dir("stock"), {"app.py": "print('v2')\n"})
    done = engine.handle(changes(("app.py", "modified")))
    assert isinstance(done, SyncDone) and done.reload == "restart"
    assert pod_files.of(pod).read("/app/app.py") == b"print('v2')\n"
    assert pod_files.signals[pod] == ["37"]
    calls = [c for c in fake.exec_calls if c.pod == pod]
    assert [c.container for c in calls] == ["istio-proxy", "istio-proxy", "stock"]
    assert calls[-1].command[4:6] == ("tar", "37") and calls[-1].stdin is not None


def test_restart_gives_up_waiting_after_the_grace_period(project: Project, fake: FakeCluster,
                                                         pod_files: PodFiles) -> None:
    fake.sidecars = True
    rt, _ = up(project, fake, ("stock",))
    pod = pod_of(fake, "stock")
    pod_files.in_flight[pod] = [1]  # a request that never ends (a stream)
    now = [0.0]
    channel = KubeExec(fake, "shop", NS, clock=lambda: now[0],
                       pause=lambda s: now.__setitem__(0, now[0] + s))
    [target] = channel.targets("one", "stock")
    channel.restart(target)
    assert now[0] >= RELOAD_GRACE
    assert pod_files.signals[pod] == ["37"]


def test_restart_without_a_sidecar_signals_at_once(project: Project, fake: FakeCluster,
                                                   pod_files: PodFiles) -> None:
    rt, _ = up(project, fake, ("stock",))  # no istio-proxy container in the pod
    pod = pod_of(fake, "stock")
    asked: list[str] = []
    exec_in = fake.exec

    def counting(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["container"])
        return exec_in(*args, **kwargs)

    fake.exec = counting  # type: ignore[method-assign]
    transport = rt.sync_transport()
    [target] = transport.targets("one", "stock")
    transport.restart(target)
    transport.restart(target)
    assert pod_files.signals[pod] == ["37", "37"]
    # the cluster refuses an exec into a container the pod lacks: asked once, not every reload
    assert asked == ["istio-proxy", "stock", "stock"]


def test_restart_is_refused_where_the_image_has_no_shell(project: Project, fake: FakeCluster) -> None:
    rt, _ = up(project, fake, ("stock",), publisher=NoShellPublisher())
    template = fake.get("apps/v1", "Deployment", "stock-one", NS)["spec"]["template"]
    assert template["metadata"]["annotations"] == {"devmesh.dev/unsupervised": NO_SHELL}
    assert "command" not in template["spec"]["containers"][0]
    transport = rt.sync_transport()
    [target] = transport.targets("one", "stock")
    with pytest.raises(TransportError, match=r"restart.*no /bin/sh.*fresh container.*signal: HUP"):
        transport.restart(target)
    with pytest.raises(UserInputError) as refused:
        transport.check_reload("one", "stock", ReloadAction(action="restart"))
    assert str(refused.value) == (
        "stock: 'reload: restart' cannot work here: its image has no /bin/sh to run devmesh's "
        "supervisor, and a container restart on Kubernetes starts a fresh container from the "
        "image, without the synced files")
    assert refused.value.hint is not None and "{signal: HUP}" in refused.value.hint
    transport.check_reload("one", "stock", ReloadAction(action="signal", signal="SIGHUP"))


def _outcome(project: Project, rt: KindRuntime, env: Environment) -> UpOutcome:
    return UpOutcome(Selection(current_branch(project), env), rt.up(
        env, images={**{Backend(s, BASELINE_ENV): f"devmesh.local/shop/{s}:base" for s in project.services},
                     **{Backend(s, env.name): f"devmesh.local/shop/{s}:one" for s in env.forks}}))


def test_up_on_kind_does_not_sync_a_service_reloaded_by_restart_without_a_shell(
        project: Project, fake: FakeCluster) -> None:
    rt, env = up(project, fake, ("api", "stock"), publisher=NoShellPublisher())
    sink = Sink()
    assert live_sync_after_up(project, _outcome(project, rt, env), rt, sink=sink) is None
    [warning] = [e for e in sink if isinstance(e, Warning)]
    assert warning.message.startswith("not syncing: stock: 'reload: restart' cannot work here: "
                                      "its image has no /bin/sh")
    assert "{signal: HUP}" in warning.message


def test_live_sync_after_up_on_kind_with_real_watching(project: Project, fake: FakeCluster,
                                                       pod_files: PodFiles) -> None:
    rt, env = up(project, fake)
    sink = Sink()
    live = live_sync_after_up(project, _outcome(project, rt, env), rt, sink=sink)
    assert live is not None and [e.service for e in live.engines] == ["api"]
    assert not [e for e in sink if isinstance(e, Warning)]
    pod = pod_of(fake, "api")
    ctx = project.context_dir("api")
    with live:
        assert live.wait_ready()
        (ctx / "app.py").write_text("print('saved')\n")
        sink.wait_for(SyncDone)
        assert pod_files.of(pod).read("/app/app.py") == b"print('saved')\n"
        (ctx / "lib" / "util.py").unlink()
        sink.wait_for(SyncDone, count=2)
        assert pod_files.of(pod).read("/app/lib/util.py") is None
    assert pod_files.signals[pod] == ["HUP", "HUP"]


def test_the_kube_client_reports_exec_into_a_missing_pod_as_404(fake: FakeCluster, tmp_path: Path) -> None:
    with serve(fake) as server:
        config = write_kubeconfig(tmp_path / "kubeconfig", server.url, context="fake-ctx")
        client = open_client("fake-ctx", kubeconfig=str(config))
        try:
            with pytest.raises(ClusterError) as refused:
                client.exec(NS, "api-one-gone", ["true"], container="api", stdin=b"")
            assert refused.value.status == 404
            channel = KubeExec(client, "shop", NS)
            with pytest.raises(TargetGone, match="pod api-one-gone is gone"):
                channel.exec(Target("api-one-gone", "api-one-gone", "api", "one"), ["true"], io.BytesIO(b"x"))
        finally:
            client.close()


def test_build_archive_goes_in_one_exec_with_stdin(project: Project, fake: FakeCluster,
                                                   pod_files: PodFiles) -> None:
    rt, _ = up(project, fake)
    sources = ServiceSources.of(project, "api")
    plan = plan_sync(sources, changes(("app.py", "modified")))
    archive = build_archive(plan.uploads)
    try:
        [target] = rt.sync_transport().targets("one", "api")
        rt.sync_transport().apply(target, archive, plan.deletions)
    finally:
        archive.close()
    [call] = fake.exec_calls
    assert call.command[4] == "tar" and call.stdin is not None and len(call.stdin) == archive.size
