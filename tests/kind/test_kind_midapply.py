"""The API server going away in the middle of the kind runtime's `up`: one line that says how
far it got and what to do, and the next `up` finishes the rest without re-applying anything."""

from __future__ import annotations

import pytest

from devmesh.cli import _report
from devmesh.config import Project
from devmesh.plan.routing import Environment
from devmesh.runtime.kind.client import ClusterUnreachable, Obj
from devmesh.runtime.kind.rollout import Rollout
from devmesh.runtime.kind.runtime import KindRuntime
from tests.kind.conftest import FakePublisher
from tests.kind.fake_cluster import FakeCluster
from tests.kind.test_kind_runtime import images

NS = "devmesh-shop"
ONE = Environment("one", ("api",), "one")
# What `up` of ONE applies on an empty cluster, in its order.
OBJECTS = 20  # the supervisor's ConfigMap included (the branch's api is live-synced), and the access logs


class GoesAway(FakeCluster):
    """A fake cluster whose API server stops answering at the ``stop_at``-th apply (before
    doing it), or at the first rollout check when ``stop_at`` is 0."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at = stop_at
        self.applied: list[str] = []

    def apply(self, obj: Obj, *, force: bool = True) -> Obj:
        if len(self.applied) + 1 == self.stop_at:
            self.reachable = False
        stored = super().apply(obj, force=force)
        self.applied.append(f"{obj['kind']} {obj['metadata']['name']}")
        return stored

    def rollout_status(self, namespace: str, name: str) -> Rollout:
        if self.stop_at == 0:
            self.reachable = False
        return super().rollout_status(namespace, name)


def runtime(project: Project, fake: FakeCluster) -> KindRuntime:
    return KindRuntime(project, cluster=fake, publisher=FakePublisher(), timeout=5.0)


def test_the_server_stopping_after_four_objects_says_how_far_and_what_to_do(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    fake = GoesAway(stop_at=5)
    with pytest.raises(ClusterUnreachable) as caught:
        runtime(project, fake).up(ONE, images=images(project, ONE))
    assert fake.applied == ["Namespace devmesh-shop", "ConfigMap devmesh-supervisor",
                            "Deployment web-baseline", "Deployment api-baseline"]
    assert str(caught.value) == (
        f"the API server of context 'kind-devmesh' stopped answering after 4 of {OBJECTS} objects "
        "(connection refused): created Namespace devmesh-shop, ConfigMap devmesh-supervisor, "
        "Deployment web-baseline and 1 more; not yet Deployment stock-baseline and 15 more; "
        "nothing was rolled back: run `devmesh up` again to finish")
    # What the CLI prints for it: that line and the hint, no traceback; the exit status of an
    # unreachable cluster.
    assert caught.value.exit_code == ClusterUnreachable("x").exit_code == 1
    _report(caught.value)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0] == f"error: {caught.value}" and err[1].startswith("hint: ")


def test_the_next_up_finishes_without_applying_again_what_was_applied(project: Project) -> None:
    fake = GoesAway(stop_at=5)
    rt = runtime(project, fake)
    with pytest.raises(ClusterUnreachable):
        rt.up(ONE, images=images(project, ONE))
    first = list(fake.applied)
    fake.reachable, fake.stop_at, fake.applied = True, -1, []
    result = rt.up(ONE, images=images(project, ONE))
    assert len(first) + len(fake.applied) == OBJECTS and not set(first) & set(fake.applied)
    assert [a.split(" ", 1)[1] for a in result.actions] == fake.applied
    assert all(s.ready for s in result.environment.services)
    fake.applied = []
    assert not rt.up(ONE, images=images(project, ONE)).changed and fake.applied == []


def test_objects_updated_and_left_alone_are_counted_too(project: Project) -> None:
    fake = GoesAway(stop_at=-1)
    rt = runtime(project, fake)
    rt.up(ONE, images=images(project, ONE))
    newer = images(project, ONE) | {b: f"{ref}-newer" for b, ref in images(project, ONE).items()
                                    if b.service == "api"}
    fake.stop_at, fake.applied = 2, []
    with pytest.raises(ClusterUnreachable) as caught:
        rt.up(ONE, images=newer)
    assert fake.applied == ["Deployment api-baseline"]
    assert str(caught.value) == (
        f"the API server of context 'kind-devmesh' stopped answering after 5 of {OBJECTS} objects "
        "(connection refused): updated Deployment api-baseline; 4 already up to date; "
        "not yet Deployment api-one and 14 more; nothing was rolled back: run `devmesh up` again to finish")


def test_the_server_stopping_while_removing_a_deployment_the_branch_reverted(project: Project) -> None:
    class GoneAtDelete(GoesAway):
        deletes = 0

        def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
            self.deletes += 1
            if self.deletes == 1:
                self.reachable = False
            return super().delete(api_version, kind, name, namespace)

    both = Environment("one", ("api", "stock"), "one")
    fake = GoneAtDelete(stop_at=-1)
    rt = runtime(project, fake)
    rt.up(both, images=images(project, both))
    with pytest.raises(ClusterUnreachable) as caught:
        rt.up(ONE, images=images(project, ONE))
    assert str(caught.value) == (
        "the API server of context 'kind-devmesh' stopped answering while removing Deployment stock-one, "
        f"after all {OBJECTS} objects were applied (connection refused): updated DestinationRule stock, "
        "VirtualService stock; 18 already up to date; nothing was rolled back: run `devmesh up` again to finish")
    fake.reachable = True
    rt.up(ONE, images=images(project, ONE))
    assert fake.get("apps/v1", "Deployment", "stock-one", NS) is None


def test_the_server_stopping_before_anything_was_applied(project: Project) -> None:
    fake = GoesAway(stop_at=1)
    with pytest.raises(ClusterUnreachable) as caught:
        runtime(project, fake).up(ONE, images=images(project, ONE))
    assert str(caught.value) == (
        f"the API server of context 'kind-devmesh' stopped answering after 0 of {OBJECTS} objects "
        "(connection refused): not yet Namespace devmesh-shop and 19 more; "
        "nothing was changed: run `devmesh up` again to finish")


def test_the_server_stopping_while_waiting_for_the_rollout(project: Project) -> None:
    fake = GoesAway(stop_at=0)
    rt = runtime(project, fake)
    with pytest.raises(ClusterUnreachable) as caught:
        rt.up(ONE, images=images(project, ONE))
    message = str(caught.value)
    assert message.startswith(
        "the API server of context 'kind-devmesh' stopped answering while waiting for the rollout, "
        f"after all {OBJECTS} objects were applied (connection refused): created Namespace devmesh-shop, ")
    assert message.endswith(
        "not ready yet: api (baseline), stock (baseline), web (baseline), api (one); "
        "nothing was rolled back: run `devmesh up` again to finish")
    assert "\n" not in message
    fake.reachable, fake.stop_at, fake.applied = True, -1, []
    result = rt.up(ONE, images=images(project, ONE))
    assert fake.applied == [] and all(s.ready for s in result.environment.services)


def test_a_rollout_half_seen_names_what_was_ready(project: Project) -> None:
    class AfterTwoChecks(GoesAway):
        checks = 0

        def rollout_status(self, namespace: str, name: str) -> Rollout:
            self.checks += 1
            if self.checks == 3:
                self.reachable = False
            return super().rollout_status(namespace, name)

    with pytest.raises(ClusterUnreachable) as caught:
        runtime(project, AfterTwoChecks(stop_at=-1)).up(ONE, images=images(project, ONE))
    assert str(caught.value).endswith(
        "ready: api (baseline), stock (baseline); not ready yet: web (baseline), api (one); "
        "nothing was rolled back: run `devmesh up` again to finish")
