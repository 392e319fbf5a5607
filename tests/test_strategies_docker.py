"""Release strategies end to end on the docker runtime: the starter app, a branch that changes
web and api, the real CLI, the real Docker engine and the real Envoy.

One environment serves every test of this module (building and starting it is the slow part);
each test starts from no strategy. Requests go through the published gateway on one keep-alive
connection (http.client), mostly to web's /healthz, which answers without calling on, so a
thousand requests take about a second.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from devmesh.plan.strategy import bucket_of
from devmesh.traffic.records import Hop, RecordReader, dotted_upstream
from tests.docker_env import StarterShop, run_git, starter_shop

pytestmark = pytest.mark.docker

HEADER = "x-devmesh-env"


class Shop(StarterShop):
    def reset(self) -> None:
        """No strategy: the store emptied and the routes re-applied, in process."""
        from devmesh.config import load_project
        from devmesh.runtime.docker import DockerRuntime

        rt = DockerRuntime(load_project(self.root / "devmesh.yaml"))
        for strategy in rt.strategies.load():
            rt.strategies.remove(strategy.service)
        rt.apply_routes()

    def containers(self) -> dict[str, tuple[str, str]]:
        """Every container of the app: name → (id, start time)."""
        import docker

        client = docker.from_env()
        try:
            found = client.containers.list(all=True, filters={"label": [f"devmesh.dev/app={self.app}"]})
            return {c.name: (c.id, c.attrs["State"]["StartedAt"]) for c in found}
        finally:
            client.close()

    def logs(self, container: str) -> str:
        import docker

        client = docker.from_env()
        try:
            return str(client.containers.get(f"devmesh-{self.app}-{container}").logs().decode(
                errors="replace"))
        finally:
            client.close()


class Gateway:
    """One keep-alive connection to the published gateway."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.conn = http.client.HTTPConnection("127.0.0.1", shop.port, timeout=10)

    def send(self, path: str = "/healthz", headers: dict[str, str] | None = None,
             method: str = "GET", host: str | None = None) -> tuple[int, dict[str, str], bytes]:
        body = b"{}" if method == "POST" else None
        self.conn.request(method, path, body=body,
                          headers={"Host": host or self.shop.host(), **(headers or {})})
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def upstream(self, headers: dict[str, str] | None = None) -> str:
        status, got, _ = self.send(headers=headers)
        assert status == 200
        return got["x-devmesh-upstream"]

    def wait_for_route(self, route: str, headers: dict[str, str] | None = None) -> None:
        """Envoy reloads renamed files within milliseconds; wait until it has."""
        deadline = time.monotonic() + 5
        while self.send(headers=headers)[1].get("x-devmesh-route") != route:
            assert time.monotonic() < deadline, f"route {route} not in effect"
            time.sleep(0.02)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[Shop]:
    with starter_shop(tmp_path_factory.mktemp("strategies"), Shop) as shop:
        run_git(shop.root, "checkout", "-q", "-b", "feat")
        for service in ("web", "api"):
            app_py = shop.root / "services" / service / "app.py"
            app_py.write_text(app_py.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"'))
        run_git(shop.root, "commit", "-qam", "web and api v2")
        shop.ok("up", "--detach")
        yield shop


@pytest.fixture
def gateway(shop: Shop) -> Gateway:
    shop.reset()
    gw = Gateway(shop)
    gw.wait_for_route("baseline")
    return gw


def test_canary_20_percent_of_requests_without_the_header(shop: Shop, gateway: Gateway) -> None:
    done = shop.ok("canary", "web", "--weight", "20")
    assert "web: canary: 20% of requests without x-devmesh-env go to feat's version" in done.stdout
    gateway.wait_for_route("canary")
    n = 1000
    counts = Counter(gateway.upstream() for _ in range(n))
    # Binomial(1000, 0.2): mean 200, sd 12.6. The bound ±57 is 4.5 sd: a correct 20% split
    # fails it less than once in 100 000 runs; a 10% or 30% split (100 or 300) never passes.
    assert abs(counts["web.feat"] - 200) <= 57, counts
    assert counts["web.feat"] + counts["web.baseline"] == n
    # the whole chain: the canary's web is the branch's v2, which calls the baseline api
    bodies = [json.loads(gateway.send("/")[2]) for _ in range(40)]
    assert {(b["version"], b["env"]) for b in bodies} == {("v1", "baseline"), ("v2", "feat")}
    assert {b["api"]["env"] for b in bodies} == {"baseline"}
    # the routing header still decides
    assert {gateway.upstream({HEADER: "feat"}) for _ in range(20)} == {"web.feat"}


def test_sticky_canary_keeps_each_user_on_one_version(shop: Shop, gateway: Gateway) -> None:
    shop.ok("canary", "web", "--weight", "20", "--sticky-header", "x-user-id")
    gateway.wait_for_route("canary-sticky-rest", {"x-user-id": "99"})
    rng = random.Random(42)
    users = [str(rng.randrange(10**5, 10**6)) for _ in range(200)]
    versions = {u: Counter(gateway.upstream({"x-user-id": u}) for _ in range(20)) for u in users}
    assert all(len(seen) == 1 for seen in versions.values()), versions
    in_canary = {u for u, seen in versions.items() if "web.feat" in seen}
    # exactly the users whose bucket is below the weight (what Istio's regex selects too)
    assert in_canary == {u for u in users if bucket_of(u) < 20}
    # random ids: Binomial(200, 0.2), mean 40, sd 5.7; ±25 is 4.4 sd
    assert abs(len(in_canary) - 40) <= 25, len(in_canary)

    # --next keeps the sticky header and only adds users: nobody leaves the canary
    done = shop.ok("canary", "web", "--next")
    assert "25%" in done.stdout and "sticky by x-user-id" in done.stdout
    gateway.wait_for_route("canary-sticky", {"x-user-id": "4250"})  # bucket 21
    now = {u for u in users if gateway.upstream({"x-user-id": u}) == "web.feat"}
    assert in_canary <= now and now == {u for u in users if bucket_of(u) < 25}


def test_routes_explain_agrees_with_what_envoy_did(shop: Shop, gateway: Gateway) -> None:
    shop.ok("canary", "web", "--weight", "30", "--sticky-header", "x-user-id")
    shop.ok("mirror", "api")
    gateway.wait_for_route("canary-sticky-rest", {"x-user-id": "99"})
    feat_host = shop.host("feat")
    requests = [f"GET / -H 'x-user-id: {u}'" for u in ("7", "42", "4250", "900913", "abc")]
    requests += ["GET /", "POST /", "HEAD /", f"GET / -H '{HEADER}: feat'",
                 f"POST / -H '{HEADER}: feat'", f"GET http://{feat_host}/"]
    args = ["routes", "--json"] + [a for text in requests for a in ("--explain", text)]
    explained = json.loads(shop.ok(*args).stdout)["explained"]
    assert [e["request"] for e in explained] == requests

    def api_lines() -> list[Hop]:
        """Envoy's records of the calls to api (its access log: one JSON line a request)."""
        reader = RecordReader(dotted_upstream)
        hops = [reader.read(line) for line in shop.logs("envoy").splitlines()]
        return [h for h in hops if h is not None and h.authority == "api:8000" and not h.mirror]

    before = len(api_lines())
    for entry in explained:
        headers = dict(entry["headers"])
        status, got, _ = gateway.send("/", headers, entry["method"], host=entry["host"])
        assert status == 200, entry["request"]
        hop = {h["at"]: h for h in entry["hops"]}
        # the gateway: the rule Envoy names in x-devmesh-route, and the upstream that answered
        assert got["x-devmesh-route"] == hop["gateway"]["rule"], entry["request"]
        assert got["x-devmesh-upstream"] in {d["upstream"] for d in hop["gateway"]["to"]}
    # api, one hop in: Envoy's access log, one line per call in order (flushed each second)
    deadline = time.monotonic() + 5
    while len(api_lines()) < before + len(explained) and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = api_lines()[before:]
    assert len(lines) == len(explained), lines
    for entry, record in zip(explained, lines):
        hop = {h["at"]: h for h in entry["hops"]}["api"]
        assert record.rule == hop["rule"], (entry["request"], record)
        assert f"{record.service}.{record.env}" in {d["upstream"] for d in hop["to"]}

    text = shop.ok("routes", "--explain", "GET / -H 'x-user-id: 4217'").stdout
    assert "x-user-id: 4217 is in sticky bucket 25; web's canary takes buckets 0–29: feat's version" in text
    listing = shop.ok("routes", "--branch", "feat").stdout
    assert "strategy web: canary: 30%" in listing and "strategy api: mirror" in listing
    assert re.search(r"\*\s+canary-sticky\s+x-user-id in sticky buckets 0–29 of 100", listing)


def test_mirror_copies_gets_to_the_branch_never_posts(shop: Shop, gateway: Gateway) -> None:
    def requests_seen() -> list[str]:
        """The branch's api's log: one line per request it answered."""
        return [line for line in shop.logs("feat-api").splitlines()
                if line.startswith("api ") and "listening" not in line]

    shop.ok("mirror", "api")
    gateway.wait_for_route("baseline")  # the gateway is untouched: api is not the entry
    before = len(requests_seen())
    for method in ("GET", "POST", "GET", "HEAD", "POST", "GET", "HEAD", "POST", "GET"):
        status, got, body = gateway.send("/", method=method)
        assert status == 200 and got["x-devmesh-upstream"] == "web.baseline"
        if method != "HEAD":
            answer = json.loads(body)
            # the answer comes from the baseline api, whatever was copied
            assert (answer["api"]["env"], answer["api"]["method"]) == ("baseline", method)
    deadline = time.monotonic() + 5
    while len(requests_seen()) < before + 6 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # a late copy of a POST would show by now
    copies = requests_seen()[before:]
    assert [line.split()[1] for line in copies] == ["GET", "GET", "HEAD", "GET", "HEAD", "GET"]
    assert all(f"{HEADER}=-" in line for line in copies)
    # the mesh's records hold each copy in its request's chain, called by the original's caller
    assert gateway.send("/", {"x-request-id": "docker-mirrored"})[0] == 200
    deadline = time.monotonic() + 5
    while True:
        report = json.loads(shop.ok("traffic", "--json", "--last", "1000").stdout)
        chain = next((c for c in report["chains"] if c["request_id"] == "docker-mirrored"), None)
        if (chain is not None and len(chain["hops"]) == 5) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert chain is not None and chain["path_text"] == (
        "web@baseline → [api@baseline → stock@baseline, api@feat (mirror) → stock@baseline]"), chain
    assert [(f"{h['service']}@{h['env']}", h["caller"]) for h in chain["hops"] if h["mirror"]] == [
        ("api@feat", "web@baseline")]

    shop.ok("mirror", "api", "--off")
    for _ in range(3):
        gateway.send("/")
    time.sleep(1.0)
    assert len(requests_seen()) == before + 7  # the six above and the one in the chain


def test_switch_and_back_without_restarting_anything(shop: Shop, gateway: Gateway) -> None:
    containers = shop.containers()
    done = shop.ok("switch", "web")
    assert "every request without x-devmesh-env goes to feat's version of web" in done.stdout
    gateway.wait_for_route("switch")
    assert Counter(gateway.upstream() for _ in range(200)) == {"web.feat": 200}
    # requests of other previews (they carry the routing header) keep the baseline web
    assert gateway.upstream({HEADER: "other-preview"}) == "web.baseline"

    back = shop.ok("switch", "web", "--back")
    assert "go to the baseline again" in back.stdout
    gateway.wait_for_route("baseline")
    assert Counter(gateway.upstream() for _ in range(200)) == {"web.baseline": 200}
    assert shop.containers() == containers  # same containers, never restarted


def test_strategies_outlive_up_and_go_with_their_environment(shop: Shop, gateway: Gateway) -> None:
    shop.ok("canary", "api", "--weight", "50")
    shop.ok("up", "--detach")
    routes = json.loads(shop.ok("routes", "--json").stdout)
    assert [s["summary"] for s in routes["strategies"]] == [
        "canary: 50% of requests without x-devmesh-env go to feat's version of api"]
    assert [r["rule"] for r in routes["services"]["api"]] == ["api-feat", "api-canary", "api-baseline"]

    refused = shop.run("canary", "stock")
    assert refused.returncode == 2
    assert "environment feat runs no version of its own of stock (it forks: api, web)" in refused.stderr

    shop.ok("down")
    assert not (shop.state / shop.app / "strategies.json").exists()
