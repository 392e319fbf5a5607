"""The CLI of the kind runtime against the real API server, with real images.

`devmesh up --runtime kind --context …` runs first as a user runs it (`python -m devmesh` in a
subprocess), every later command through `devmesh.cli.main` in process: the starter app's
images are built by the Docker engine, pushed to a real registry (Debian's docker-registry on
127.0.0.1) and named by digest in Deployments that kwok's nodes roll out. Then the release
strategies (`canary`, `mirror`, `switch` and their way back) through the CLI, with what the API
server stores checked, and `down` of one environment then `down --baseline`.

One project is built and brought up once for the module; the tests run in file order and each
strategy test goes back to header routing before it ends. `down` comes last.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devmesh.cli import main
from devmesh.naming import BASELINE_ENV
from devmesh.plan.k8s import APP_LABEL, ENV_LABEL, MANAGED_BY, SERVICE_LABEL
from devmesh.plan.strategy import bucket_regex
from devmesh.runtime.kind.client import KubeClient
from devmesh.runtime.kind.app import KINDS
from tests.apiserver.conftest import REPO, ControlPlane
from tests.conftest import GIT_ENV
from tests.docker_env import run_git, scaffold_shop
from tests.gitops.conftest import _require_docker, serve_registry

pytestmark = [pytest.mark.apiserver, pytest.mark.docker]

ISTIO = "networking.istio.io/v1"
HEADER = "x-devmesh-env"
FEATURE = "feature/cheaper-stock"
# What rides along with the labelled objects and is not devmesh's to list: the controllers'.
OWNED_KINDS = (("apps/v1", "ReplicaSet"), ("v1", "Pod"))


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


@dataclass
class Shop:
    """The starter app, up once on the session's control plane through the CLI."""

    root: Path
    app: str
    registry: str
    env: str
    control_plane: ControlPlane
    client: KubeClient
    state_dir: Path
    first_up: Done

    @property
    def namespace(self) -> str:
        return f"devmesh-{self.app}"

    def _env(self) -> dict[str, str]:
        return {**GIT_ENV, "KUBECONFIG": str(self.control_plane.kubeconfig),
                "DEVMESH_STATE_DIR": str(self.state_dir), "DEVMESH_ROLLOUT_TIMEOUT": "90"}

    def _args(self, args: tuple[str, ...]) -> list[str]:
        return [*args, "--runtime", "kind", "--context", self.control_plane.context]

    def run(self, *args: str) -> Done:
        """``python -m devmesh ARGS --runtime kind --context …`` in a subprocess, as a user runs it."""
        done = subprocess.run([sys.executable, "-m", "devmesh", *self._args(args)], cwd=self.root,
                              env={**os.environ, **self._env(), "PYTHONPATH": str(REPO)},
                              capture_output=True, text=True, timeout=300)
        return Done(done.returncode, done.stdout, done.stderr)

    def cli(self, *args: str) -> Done:
        """The same through ``devmesh.cli.main`` in this process (no interpreter start each time)."""
        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as mp, redirect_stdout(out), redirect_stderr(err):
            mp.chdir(self.root)
            for key, value in self._env().items():
                mp.setenv(key, value)
            try:
                main(self._args(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        return Done(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str) -> Done:
        done = self.cli(*args)
        assert done.code == 0, f"devmesh {' '.join(args)} exited {done.code}:\n{done.out}{done.err}"
        return done

    def objects(self, kinds: tuple[tuple[str, str], ...] = KINDS, selector: str = "") -> dict[str, Any]:
        """``Kind name`` → object, for every object of ``kinds`` in the app's namespace."""
        return {f"{kind} {o['metadata']['name']}": o for api, kind in kinds
                for o in self.client.list(api, kind, namespace=self.namespace, selector=selector)}

    def versions(self, kinds: tuple[tuple[str, str], ...] = KINDS) -> dict[str, str]:
        return {name: o["metadata"]["resourceVersion"] for name, o in self.objects(kinds).items()}

    def routes(self, service: str) -> dict[str, Any]:
        vs = self.client.get(ISTIO, "VirtualService", service, self.namespace)
        assert vs is not None, f"no VirtualService {service}"
        return {r["name"]: r for r in vs["spec"]["http"]}


def _remove_images(app: str, registry: str) -> None:
    """The images the module built and tagged, locally (the registry's storage goes with tmp)."""
    import docker

    client = docker.from_env()
    try:
        prefixes = (f"devmesh.local/{app}/", f"{registry}/{app}/")
        for image in client.images.list():
            for tag in image.tags:
                if tag.startswith(prefixes):
                    client.images.remove(tag, force=True)
    finally:
        client.close()


def _wait_gone(client: KubeClient, api: str, kind: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get(api, kind, name) is not None:
        assert time.monotonic() < deadline, f"{kind} {name} still there after {timeout} s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def shop(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The starter app on branch feature/cheaper-stock (api changed; stock with a rate limit),
    up through the CLI."""
    _require_docker().close()
    base = tmp_path_factory.mktemp("cli-up-real")
    client = control_plane.client()
    with pytest.MonkeyPatch.context() as mp, serve_registry(base) as registry:
        for key, value in GIT_ENV.items():  # the function-scoped identity is not set up yet
            mp.setenv(key, value)
        root, app, _ = scaffold_shop(base / "shop")
        config = root / "devmesh.yaml"
        # a rate limit on stock: every kind of object devmesh applies is applied here
        text = config.read_text().replace("    context: services/stock\n",
                                          "    context: services/stock\n    values: {rate_limit: 50}\n", 1)
        config.write_text(text + f"cluster:\n  registry: {registry}\n")
        run_git(root, "commit", "-qam", "registry, stock's rate limit")
        run_git(root, "checkout", "-q", "-b", FEATURE)
        api = root / "services/api/app.py"
        api.write_text(api.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"'))
        run_git(root, "commit", "-qam", "api v2")
        shop = Shop(root, app, registry, "", control_plane, client, base / "state", Done(0, "", ""))
        try:
            shop.first_up = shop.run("up", "-d")
            status = json.loads(shop.ok("status", "--json").out)
            shop.env = status["environment"]
            yield shop
        finally:
            client.delete("v1", "Namespace", shop.namespace)
            _remove_images(app, registry)
            shutil.rmtree(base / "registry", ignore_errors=True)
            client.close()


# --------------------------------------------------------------------------- up


def _manifest_digest(registry: str, repository: str, reference: str) -> str | None:
    """The digest the registry serves for ``repository:reference`` (a tag or a digest)."""
    accept = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json",
                        "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.oci.image.index.v1+json"])
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{reference}",
                                     method="HEAD", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return str(resp.headers.get("Docker-Content-Digest"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def test_up_builds_pushes_and_rolls_out_digest_pinned_images(shop: Shop) -> None:
    import docker

    up = shop.first_up
    assert up.code == 0, up.out + up.err
    assert f"environment {shop.env} (branch {FEATURE}); forked: api" in up.out
    assert f"preview: http://{shop.env}.{shop.app}.localhost:" in up.out
    assert len([line for line in up.err.splitlines() if "pushed " in line]) == 4, up.err

    deployments = {d["metadata"]["name"]: d for d in shop.client.list("apps/v1", "Deployment",
                                                                      namespace=shop.namespace)}
    assert sorted(deployments) == ["api-baseline", f"api-{shop.env}", "stock-baseline", "web-baseline"]
    engine = docker.from_env()
    try:
        for name, d in deployments.items():
            service = d["metadata"]["labels"][SERVICE_LABEL]
            image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            repository, _, digest = image.partition("@")
            assert repository == f"{shop.registry}/{shop.app}/{service}" and digest.startswith("sha256:"), image
            # the registry holds exactly these bytes, under the tag the engine pushed
            path = repository.split("/", 1)[1]
            assert _manifest_digest(shop.registry, path, digest) == digest
            local = engine.images.get(image)  # the engine built it: it knows the pinned name
            assert any(t.startswith(f"devmesh.local/{shop.app}/{service}:") for t in local.tags), local.tags
            tags = [t.rsplit(":", 1)[1] for t in local.tags if t.startswith(f"{repository}:")]
            assert tags and _manifest_digest(shop.registry, path, tags[0]) == digest
            # rolled out: kwok's node runs the pod, the Deployment says so
            status = d["status"]
            assert status.get("observedGeneration") == d["metadata"]["generation"]
            assert status.get("readyReplicas") == status.get("updatedReplicas") == d["spec"]["replicas"] == 1
    finally:
        engine.close()
    images = {n: d["spec"]["template"]["spec"]["containers"][0]["image"] for n, d in deployments.items()}
    assert images["api-baseline"] != images[f"api-{shop.env}"]
    pods = shop.client.list("v1", "Pod", namespace=shop.namespace)
    assert len(pods) == 4 and all(p["status"]["phase"] == "Running" for p in pods)
    assert sorted(c["image"] for p in pods for c in p["spec"]["containers"]) == sorted(images.values())


def test_every_object_carries_the_documented_labels(shop: Shop) -> None:
    """docs/kind.md: managed-by, devmesh.dev/app, devmesh.dev/env, devmesh.dev/service."""
    ns = shop.client.get("v1", "Namespace", shop.namespace)
    assert ns is not None and ns["metadata"]["labels"]["istio-injection"] == "enabled"
    objects = shop.objects()
    assert {name.split()[0] for name in objects} == {kind for _, kind in KINDS}
    for name, obj in {**objects, f"Namespace {shop.namespace}": ns}.items():
        labels = obj["metadata"]["labels"]
        assert labels[MANAGED_BY] == "devmesh" and labels[APP_LABEL] == shop.app, name
        assert labels[ENV_LABEL] in (BASELINE_ENV, shop.env) and SERVICE_LABEL in labels, name
        assert [m["manager"] for m in obj["metadata"]["managedFields"]
                if m["operation"] == "Apply"] == ["devmesh"], name
    forks = {n for n, o in objects.items() if o["metadata"]["labels"][ENV_LABEL] == shop.env}
    assert forks == {f"Deployment api-{shop.env}", f"VirtualService {shop.app}-gateway-{shop.env}"}
    for name, d in shop.objects((("apps/v1", "Deployment"),)).items():
        service, env = d["metadata"]["labels"][SERVICE_LABEL], d["metadata"]["labels"][ENV_LABEL]
        assert name == f"Deployment {service}-{env}"
        assert d["spec"]["template"]["metadata"]["labels"] | {"app": service, "version": env} == \
            d["spec"]["template"]["metadata"]["labels"]
    for pod in shop.client.list("v1", "Pod", namespace=shop.namespace):
        assert pod["metadata"]["labels"][APP_LABEL] == shop.app


def test_ls_json_and_status_show_the_environment(shop: Shop) -> None:
    listed = json.loads(shop.ok("ls", "--json").out)
    envs = {e["name"]: e for e in listed["environments"]}
    assert set(envs) == {BASELINE_ENV, shop.env}
    mine = envs[shop.env]
    assert mine["branch"] == FEATURE
    assert {s["service"]: s["env"] for s in mine["services"]} == {"web": BASELINE_ENV, "api": shop.env,
                                                                   "stock": BASELINE_ENV}
    assert all(s["state"] == "running" and s["ready"] is True for s in mine["services"])
    assert all(s["image"].startswith(f"{shop.registry}/{shop.app}/") and "@sha256:" in s["image"]
               for s in mine["services"])

    status = json.loads(shop.ok("status", "--json").out)
    assert status["runtime"] == "kind" and status["branch"] == FEATURE and status["running"] is True
    assert status["state"]["services"] == mine["services"]
    text = shop.ok("status").out
    assert f"branch {FEATURE} → environment {shop.env} on kind" in text
    assert [line.split()[:4] for line in text.splitlines() if line.startswith("api ")] == [
        ["api", "fork", "running", "yes"]]


def test_a_second_up_applies_nothing(shop: Shop) -> None:
    """Checked on the server: no object of the app (nor its ReplicaSets and Pods) gets a new
    resourceVersion, and the namespace keeps its own."""
    kinds = KINDS + OWNED_KINDS
    before = shop.versions(kinds)
    ns_before = shop.client.get("v1", "Namespace", shop.namespace)
    again = shop.ok("up", "-d")
    assert "nothing changed: the environment is already up to date" in again.err
    # and it says so: no line marks something as done (•), every one as found done (·)
    assert [line for line in again.err.splitlines() if line.startswith("•")] == [], again.err
    assert all("(0 layer(s) sent" in line for line in again.err.splitlines() if "pushed " in line)
    assert shop.versions(kinds) == before
    ns_after = shop.client.get("v1", "Namespace", shop.namespace)
    assert ns_before is not None and ns_after is not None
    assert ns_after["metadata"]["resourceVersion"] == ns_before["metadata"]["resourceVersion"]


# --------------------------------------------------------------------------- strategies


@pytest.fixture
def header_routing(shop: Shop) -> Iterator[dict[str, Any]]:
    """api's routes with no strategy; the Deployments and Pods must not change meanwhile."""
    plain = shop.routes("api")
    assert list(plain) == [f"api-{shop.env}", "api-baseline"]
    workloads = (("apps/v1", "Deployment"), *OWNED_KINDS)
    before = shop.versions(workloads)
    yield plain
    assert shop.versions(workloads) == before, "a strategy must not touch a Deployment or a Pod"


def _subsets(shop: Shop, service: str) -> dict[str, dict[str, str]]:
    dr = shop.client.get(ISTIO, "DestinationRule", service, shop.namespace)
    assert dr is not None
    return {s["name"]: s["labels"] for s in dr["spec"]["subsets"]}


def _destinations(rule: dict[str, Any]) -> list[tuple[str, int | None]]:
    return [(d["destination"]["subset"], d.get("weight")) for d in rule["route"]]


def test_canary_through_the_cli_and_off(shop: Shop, header_routing: dict[str, Any]) -> None:
    done = shop.ok("canary", "api", "--weight", "20")
    assert done.out.strip() == (f"api: canary: 20% of requests without {HEADER} go to {shop.env}'s "
                                "version of api")
    http = shop.routes("api")
    assert list(http) == [f"api-{shop.env}", "api-canary", "api-baseline"]
    assert http["api-canary"]["match"] == [{"withoutHeaders": {HEADER: {}}}]
    assert _destinations(http["api-canary"]) == [(BASELINE_ENV, 80), (shop.env, 20)]
    assert http[f"api-{shop.env}"] == header_routing[f"api-{shop.env}"]
    # the subsets the weights name select the pods of each version
    assert _subsets(shop, "api") == {BASELINE_ENV: {ENV_LABEL: BASELINE_ENV}, shop.env: {ENV_LABEL: shop.env}}

    done = shop.ok("canary", "api", "--next")  # the preset's steps: 10, 25, 50, 100
    assert "25%" in done.out
    assert _destinations(shop.routes("api")["api-canary"]) == [(BASELINE_ENV, 75), (shop.env, 25)]

    done = shop.ok("canary", "api", "--weight", "30", "--sticky-header", "x-user-id")
    assert "sticky by x-user-id" in done.out
    http = shop.routes("api")
    assert http["api-canary-sticky"]["match"] == [{"headers": {"x-user-id": {"regex": bucket_regex(30)}},
                                                   "withoutHeaders": {HEADER: {}}}]
    assert _destinations(http["api-canary-sticky"]) == [(shop.env, None)]
    assert _destinations(http["api-canary-sticky-rest"]) == [(BASELINE_ENV, None)]

    done = shop.ok("canary", "api", "--off")
    assert done.out.startswith(f"api: requests without {HEADER} go to the baseline again (removed: canary:")
    assert shop.routes("api") == header_routing
    assert "nothing to undo" in shop.ok("canary", "api", "--off").out


def test_mirror_through_the_cli_and_off(shop: Shop, header_routing: dict[str, Any]) -> None:
    done = shop.ok("mirror", "api", "--percent", "30")
    assert done.out.strip() == (f"api: mirror: copies of 30% of GET and HEAD requests without {HEADER} "
                                f"go to {shop.env}'s version of api; answers come from the baseline")
    http = shop.routes("api")
    assert list(http) == [f"api-{shop.env}", "api-mirror", "api-baseline"]
    mirror = http["api-mirror"]
    assert mirror["match"] == [{"method": {"exact": m}, "withoutHeaders": {HEADER: {}}} for m in ("GET", "HEAD")]
    assert _destinations(mirror) == [(BASELINE_ENV, None)]
    assert mirror["mirror"]["subset"] == shop.env and mirror["mirrorPercentage"] == {"value": 30.0}

    done = shop.ok("mirror", "api", "--off")
    assert "go to the baseline again (removed: mirror:" in done.out
    assert shop.routes("api") == header_routing


def test_switch_through_the_cli_and_back(shop: Shop, header_routing: dict[str, Any]) -> None:
    shop.ok("canary", "api", "--weight", "50")
    done = shop.ok("switch", "api")
    assert done.out.strip() == (f"api: switch: every request without {HEADER} goes to {shop.env}'s "
                                "version of api; the baseline stands by")
    assert "replaced: canary: 50%" in done.err
    http = shop.routes("api")
    assert list(http) == [f"api-{shop.env}", "api-switch", "api-baseline"]
    assert http["api-switch"]["match"] == [{"withoutHeaders": {HEADER: {}}}]
    assert _destinations(http["api-switch"]) == [(shop.env, None)]
    assert f"strategy api: switch: every request without {HEADER}" in shop.ok("routes").out
    # the baseline still stands by: its Deployment is ready
    assert shop.client.rollout_status(shop.namespace, "api-baseline").done

    done = shop.ok("switch", "api", "--back")
    assert "go to the baseline again (removed: switch:" in done.out
    assert shop.routes("api") == header_routing
    assert "strategy" not in shop.ok("routes").out.splitlines()[0]


@pytest.mark.parametrize(("args", "says"), [
    (("canary", "api", "--weight", "101"), "101 is not in the range 0<=x<=100"),
    (("canary", "api", "--weight", "-1"), "-1 is not in the range 0<=x<=100"),
    (("mirror", "api", "--percent", "0"), "0.0 is not in the range 0<x<=100"),
    (("canary", "api", "--weight", "20", "--env", "no-such-env"), "environment no-such-env is not running"),
    (("mirror", "api", "--env", "no-such-env"), "environment no-such-env is not running"),
    (("switch", "api", "--env", "no-such-env"), "environment no-such-env is not running"),
    (("canary", "api", "--weight", "20", "--env", "Not_An_Env"), "'Not_An_Env' is not an environment name"),
    (("canary", "basket", "--weight", "20"), "unknown service 'basket'"),
    (("canary", "api", "--off", "--env", "no-such-env"), "--off takes no --branch or --env"),
    (("mirror", "api", "--off", "--env", "no-such-env"), "--off takes no --branch or --env"),
    (("switch", "api", "--back", "--env", "no-such-env"), "--back takes no --branch or --env"),
])
def test_bad_input_on_the_strategy_commands_is_exit_2_and_one_line(shop: Shop, args: tuple[str, ...],
                                                                  says: str) -> None:
    before = shop.versions()
    done = shop.cli(*args)
    assert done.code == 2, (done.out, done.err)
    lines = done.err.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and says in errors[0], done.err
    # the one line, and at most the hint after it: no usage text, no traceback
    assert lines[0] == errors[0] and all(line.startswith("hint: ") for line in lines[1:]), done.err
    assert done.out == ""
    assert shop.versions() == before


# --------------------------------------------------------------------------- down


def test_down_of_one_environment_then_down_baseline_remove_exactly_the_labelled_objects(shop: Shop) -> None:
    # A second environment (stock changed on another branch), so the first `down` is not the last.
    run_git(shop.root, "checkout", "-q", "-b", "feature/stock-two", "main")
    stock = shop.root / "services/stock/app.py"
    stock.write_text(stock.read_text() + "\n# two\n")
    run_git(shop.root, "commit", "-qam", "stock two")
    two = json.loads(shop.ok("status", "--json").out)["environment"]
    shop.ok("up", "-d")
    run_git(shop.root, "checkout", "-q", FEATURE)
    envs = {e["name"] for e in json.loads(shop.ok("ls", "--json").out)["environments"]}
    assert envs == {BASELINE_ENV, shop.env, two}

    # Objects down must leave: one unlabelled in the app's namespace; one with the app's and the
    # environment's labels but in another namespace (devmesh's objects live in the app's only).
    decoy_ns = f"t-{uuid.uuid4().hex[:10]}"
    shop.client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": decoy_ns}})
    try:
        labels = {MANAGED_BY: "devmesh", APP_LABEL: shop.app, ENV_LABEL: shop.env, SERVICE_LABEL: "api"}
        shop.client.apply({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "same-labels", "namespace": decoy_ns, "labels": labels}})
        shop.client.apply({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "not-devmesh", "namespace": shop.namespace}})

        before = shop.objects()
        mine = set(shop.objects(selector=f"{MANAGED_BY}=devmesh,{APP_LABEL}={shop.app},{ENV_LABEL}={shop.env}"))
        assert mine == {f"Deployment api-{shop.env}", f"VirtualService {shop.app}-gateway-{shop.env}"}
        done = shop.ok("down", "--env", shop.env)
        assert done.out.strip() == f"removed {len(mine)} object(s) of environment {shop.env}"
        assert set(shop.objects()) == set(before) - mine
        assert _subsets(shop, "api") == {BASELINE_ENV: {ENV_LABEL: BASELINE_ENV}}
        assert list(shop.routes("api")) == ["api-baseline"]
        assert shop.client.get("v1", "ConfigMap", "not-devmesh", shop.namespace) is not None
        envs = {e["name"] for e in json.loads(shop.ok("ls", "--json").out)["environments"]}
        assert envs == {BASELINE_ENV, two}

        everything = shop.objects()
        assert all(o["metadata"]["labels"][APP_LABEL] == shop.app for o in everything.values())
        gateway_log = ("networking.istio.io/v1alpha3", "EnvoyFilter", f"devmesh-{shop.app}-access-log",
                       "istio-system")
        assert shop.client.get(*gateway_log) is not None
        done = shop.ok("down", "--baseline")
        # every object of the app in its namespace, the gateway's access log beside the gateway,
        # and the namespace
        assert done.out.strip() == (f"removed {len(everything) + 2} object(s) of environment "
                                    f"{shop.env}")
        assert shop.client.get(*gateway_log) is None
        assert json.loads(shop.ok("ls", "--json").out) == {"environments": []}
        assert shop.client.get("v1", "ConfigMap", "same-labels", decoy_ns) is not None

        # The namespace controller takes a while to empty the namespace: an `up` at once waits
        # for it rather than failing to create objects in a namespace being deleted.
        ns = shop.client.get("v1", "Namespace", shop.namespace)
        terminating = ns is not None and bool(ns["metadata"].get("deletionTimestamp"))
        again = shop.ok("up", "-d")
        assert not terminating or f"waiting for namespace {shop.namespace} to finish terminating" in again.err
        assert {e["name"] for e in json.loads(shop.ok("ls", "--json").out)["environments"]} == {
            BASELINE_ENV, shop.env}
        shop.ok("down", "--baseline")
        _wait_gone(shop.client, "v1", "Namespace", shop.namespace)
    finally:
        shop.client.delete("v1", "Namespace", decoy_ns)
