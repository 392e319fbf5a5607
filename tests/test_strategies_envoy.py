"""Strategies and resilience rendered for Envoy, run by a real Envoy process with real HTTP
backends on 127.0.0.1 (tests/envoy_harness.py; no Docker). Without the envoy binary these
skip — or fail when DEVMESH_REQUIRE_DOCKER=1."""

from __future__ import annotations

import http.client
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.plan.routing import (
    CircuitBreaker,
    Environment,
    OutlierDetection,
    RateLimit,
    Resilience,
    Retries,
    RoutePlan,
    first_match,
    plan_routes,
)
from devmesh.plan.strategy import Canary, Mirror, Switch, bucket_of
from devmesh.traffic.records import Hop
from tests.envoy_harness import Mesh, wait_until
from tests.strategies.recording import RecordingBackends

HEADER = "x-devmesh-env"
PORTS = {"web": 8080, "api": 8000, "stock": 8000}
FEAT = Environment("feat", ("web", "api"))


def plan(*strategies: Any, resilience: dict[str, Resilience] | None = None) -> RoutePlan:
    return plan_routes(app="shop", header=HEADER, domain="localhost", gateway_port=18080,
                       entry="web", ports=PORTS, environments=[FEAT], strategies=strategies,
                       resilience=resilience)



@pytest.fixture
def mesh(envoy_bin: str, tmp_path: Path) -> Iterator[Mesh]:
    m = Mesh(envoy_bin, tmp_path / "mesh", list(PORTS))
    m.backends = RecordingBackends()  # type: ignore[assignment]
    yield m
    m.close()


def backends(m: Mesh) -> RecordingBackends:
    assert isinstance(m.backends, RecordingBackends)
    return m.backends


class Conn:
    """One keep-alive connection, any method; returns (status, upstream, route)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(self, host: str, headers: dict[str, str] | None = None,
             method: str = "GET") -> tuple[int, str | None, str | None]:
        body = b"{}" if method in ("POST", "PUT") else None
        self.conn.request(method, "/", body=body, headers={"Host": host, **(headers or {})})
        resp = self.conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-devmesh-upstream"), resp.getheader("x-devmesh-route")


# =========================================================================== strategies


def test_canary_20_percent_of_requests_without_the_header(mesh: Mesh) -> None:
    mesh.start(plan(Canary("api", "feat", 20)))
    conn = Conn(mesh.listen_ports["api"])
    n = 1000
    counts = Counter(conn.send("api")[1] for _ in range(n))
    # Binomial(1000, 0.2): mean 200, sd 12.6. ±57 is 4.5 sd: a correct split fails less than
    # once in 100 000 runs; a 10% or 30% split (100 or 300) always fails.
    assert abs(counts["api.feat"] - 200) <= 57, counts
    assert counts["api.feat"] + counts["api.baseline"] == n
    # the routing header still decides for previews
    assert {conn.send("api", {HEADER: "feat"})[1] for _ in range(20)} == {"api.feat"}


def test_sticky_canary_keeps_each_user_on_one_version(mesh: Mesh) -> None:
    mesh.start(plan(Canary("web", "feat", 20, "x-user-id")))
    gateway = Conn(mesh.gateway_port)
    rng = random.Random(20)
    users = [str(rng.randrange(10**6, 10**7)) for _ in range(200)]
    seen: dict[str, set[str | None]] = {}
    for user in users:
        for _ in range(20):
            seen.setdefault(user, set()).add(gateway.send("shop.localhost", {"x-user-id": user})[1])
    assert all(len(versions) == 1 for versions in seen.values()), seen
    in_canary = {u for u, v in seen.items() if v == {"web.feat"}}
    # Envoy's bucket for every user is the one Python computes (and Istio's regex, the same)
    assert in_canary == {u for u in users if bucket_of(u) < 20}
    # random ids: Binomial(200, 0.2), mean 40, sd 5.7; ±25 is 4.4 sd
    assert abs(len(in_canary) - 40) <= 25, len(in_canary)
    # without the sticky header: the weighted split
    counts = Counter(gateway.send("shop.localhost")[1] for _ in range(500))
    assert abs(counts["web.feat"] - 100) <= 40, counts  # Binomial(500, 0.2): 4.5 sd


def test_every_sticky_weight_is_accepted_and_agrees_with_python(mesh: Mesh) -> None:
    mesh.start(plan(Canary("api", "feat", 1, "x-user-id")))
    conn = Conn(mesh.listen_ports["api"])
    rng = random.Random(3)
    values = ([str(rng.randrange(10**9)) for _ in range(12)]
              + ["", "7", "ab", "x-9f", "é1", "user 42", "Z!"])
    for weight in range(1, 101):
        mesh.apply(plan(Canary("api", "feat", weight, "x-user-id")))
        expected = {v: "api.feat" if bucket_of(v) < weight else "api.baseline" for v in values}

        def agrees() -> bool:
            return all(conn.send("api", {"x-user-id": v})[1] == want for v, want in expected.items())

        wait_until(agrees, timeout=5, what=f"weight {weight} in effect")
    assert "update_failure" not in mesh.envoy.stderr()


def test_mirror_copies_gets_and_heads_only(mesh: Mesh) -> None:
    mesh.start(plan(Mirror("api", "feat")))
    conn = Conn(mesh.listen_ports["api"])
    for method in ("GET", "HEAD", "GET", "POST", "PUT", "DELETE", "HEAD"):
        status, upstream, route = conn.send("api", method=method)
        assert (status, upstream) == (200, "api.baseline"), method
        assert route == ("api-mirror" if method in ("GET", "HEAD") else "api-baseline")
    copies = backends(mesh).of("api.feat").seen
    wait_until(lambda: len(copies) >= 4, timeout=5, what="four mirrored requests")
    time.sleep(0.2)  # a late copy of a write would show up by now
    assert sorted(s.method for s in copies) == ["GET", "GET", "HEAD", "HEAD"]
    # Envoy marks a copy by suffixing the host: the branch's version can tell copies apart
    assert all(s.headers["host"].startswith("api-shadow") for s in copies)
    assert [s.method for s in backends(mesh).of("api.baseline").seen] == [
        "GET", "HEAD", "GET", "POST", "PUT", "DELETE", "HEAD"]
    # with the routing header the fork answers itself and nothing is copied
    assert conn.send("api", {HEADER: "feat"})[1] == "api.feat"
    time.sleep(0.2)
    assert [s.headers["host"] for s in copies[4:]] == ["api"]

    # the access log holds each copy as a record of its own, with the original's request id
    def records() -> tuple[list[Hop], list[Hop]]:
        hops = mesh.envoy.hops()
        return [h for h in hops if not h.mirror], [h for h in hops if h.mirror]

    wait_until(lambda: len(records()[0]) == 8 and len(records()[1]) == 4, timeout=5,
               what="8 request records and 4 mirror records")
    originals, mirrored = records()
    assert [(h.method, h.served_by) for h in originals[:7]] == [
        (m, "api@baseline") for m in ("GET", "HEAD", "GET", "POST", "PUT", "DELETE", "HEAD")]
    assert {(h.method, h.served_by, h.status) for h in mirrored} == {
        ("GET", "api@feat", 200), ("HEAD", "api@feat", 200)}
    by_id = {h.request_id: h for h in originals}
    assert all(by_id[h.request_id].rule == "api-mirror" for h in mirrored)
    assert all(h.authority.startswith("api-shadow") for h in mirrored)


def test_mirror_percentage(mesh: Mesh) -> None:
    mesh.start(plan(Mirror("api", "feat", 25)))
    conn = Conn(mesh.listen_ports["api"])
    for _ in range(800):
        conn.send("api")
    copies = backends(mesh).of("api.feat").seen
    time.sleep(0.3)
    # Binomial(800, 0.25): mean 200, sd 12.2; ±55 is 4.5 sd
    assert abs(len(copies) - 200) <= 55, len(copies)


def test_switch_and_back_take_effect_without_a_restart(mesh: Mesh) -> None:
    mesh.start(plan())
    pid = mesh.envoy.proc.pid if mesh.envoy.proc else None
    gateway = Conn(mesh.gateway_port)
    api = Conn(mesh.listen_ports["api"])
    assert gateway.send("shop.localhost")[1] == "web.baseline"

    mesh.apply(plan(Switch("web", "feat"), Switch("api", "feat")))
    wait_until(lambda: gateway.send("shop.localhost")[1] == "web.feat", timeout=5, what="switch")
    assert {gateway.send("shop.localhost")[1] for _ in range(50)} == {"web.feat"}
    assert {api.send("api")[1] for _ in range(50)} == {"api.feat"}  # same connection as before
    assert gateway.send("other.shop.localhost", {HEADER: "nobody"})[1] == "web.baseline"

    mesh.apply(plan())
    wait_until(lambda: gateway.send("shop.localhost")[1] == "web.baseline", timeout=5, what="back")
    assert {api.send("api")[1] for _ in range(50)} == {"api.baseline"}
    assert mesh.envoy.proc is not None and mesh.envoy.proc.pid == pid and mesh.envoy.running


def test_explain_agrees_with_envoy(mesh: Mesh) -> None:
    from devmesh.plan.explain import explain, parse_request

    p = plan(Canary("web", "feat", 30, "x-user-id"), Mirror("api", "feat"))
    mesh.start(p)
    gateway = Conn(mesh.gateway_port)
    api = Conn(mesh.listen_ports["api"])
    requests = [f"GET / -H 'x-user-id: {u}'" for u in ("1", "22", "4250", "99", "abc")]
    requests += ["GET /", "POST /", f"GET / -H '{HEADER}: feat'", "HEAD /",
                 "GET http://feat.shop.localhost/"]
    for text in requests:
        req = parse_request(text)
        hops = {h.at: h for h in explain(p, req)}
        for at, conn, host in (("gateway", gateway, req.host or "shop.localhost"),
                               ("api", api, "api")):
            headers = req.header_map() if at == "gateway" else hops["api"].headers
            status, upstream, route = conn.send(host, headers, req.method)
            hop = hops[at]
            assert route == hop.rule.name, (text, at)
            assert upstream in {d["upstream"] for d in hop.destinations()}, (text, at)


# =========================================================================== resilience


def test_retries_recover_from_failures_named_in_retry_on(mesh: Mesh) -> None:
    policy = Resilience(retries=Retries(2, ("5xx",)))
    mesh.start(plan(resilience={"api": policy}))
    conn = Conn(mesh.listen_ports["api"])
    baseline = backends(mesh).of("api.baseline")
    baseline.fail_next = 2
    assert conn.send("api")[0] == 200  # two 503s, then the third attempt answers
    assert len(baseline.seen) == 3
    baseline.fail_next = 3
    assert conn.send("api")[0] == 503  # one failure too many
    stock = backends(mesh).of("stock.baseline")  # no policy: no retries
    stock.fail_next = 1
    assert Conn(mesh.listen_ports["stock"]).send("stock")[0] == 503 and len(stock.seen) == 1


def test_the_route_timeout_cuts_a_slow_answer(mesh: Mesh) -> None:
    mesh.start(plan(resilience={"api": Resilience(timeout=0.3)}))
    backends(mesh).of("api.baseline").delay = 1.0
    started = time.monotonic()
    status, _, _ = Conn(mesh.listen_ports["api"]).send("api")
    assert status == 504 and time.monotonic() - started < 0.9


def test_the_circuit_breaker_limits_requests_in_flight(mesh: Mesh) -> None:
    breaker = CircuitBreaker(max_connections=1, max_pending_requests=1, max_requests=1,
                             max_retries=0)
    mesh.start(plan(resilience={"api": Resilience(circuit_breaker=breaker)}))
    backends(mesh).of("api.baseline").delay = 0.5
    statuses: list[int] = []

    def call() -> None:
        statuses.append(Conn(mesh.listen_ports["api"]).send("api")[0])

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(503) >= 3 and 200 in statuses, statuses
    # the 503s are Envoy's own: the breaker tripped (the backend never failed)
    # Which breaker counter a request lands on (pending requests, requests, connections)
    # depends on timing; any of them means Envoy refused the request itself.
    overflow = {name: n for name, n in mesh.envoy.stats("api.baseline.upstream_").items()
                if name.endswith("_overflow")}
    assert sum(overflow.values()) >= 1, overflow
    assert len(backends(mesh).of("api.baseline").seen) == statuses.count(200)


def test_outlier_detection_ejects_and_the_backend_still_counts_as_ready(mesh: Mesh) -> None:
    outlier = OutlierDetection(consecutive_5xx=3, interval=0.1, base_ejection_time=30.0,
                               max_ejection_percent=100)
    mesh.start(plan(resilience={"api": Resilience(outlier_detection=outlier)}))
    conn = Conn(mesh.listen_ports["api"])
    backends(mesh).of("api.baseline").fail_next = 3
    for _ in range(3):
        assert conn.send("api")[0] == 503
    wait_until(lambda: "failed_outlier_check" in mesh.envoy.admin("/clusters"), timeout=5,
               what="the ejection")
    # one host per cluster: Envoy still sends to it (panic mode), and the runtime still
    # reports it ready
    assert conn.send("api")[0] == 200
    assert mesh.envoy.health()["api.baseline"] is True


def test_first_match_and_envoy_agree_on_methods_and_headers(mesh: Mesh) -> None:
    p = plan(Mirror("api", "feat"))
    mesh.start(p)
    conn = Conn(mesh.listen_ports["api"])
    cases = [({}, "GET"), ({}, "HEAD"), ({}, "POST"), ({HEADER: "feat"}, "GET"),
             ({HEADER: "other"}, "GET"), ({"X-Devmesh-Env": "feat"}, "POST")]
    for headers, method in cases:
        rule = first_match(p.routes_for("api").rules, "api", headers, method)
        assert conn.send("api", headers, method)[2] == rule.name, (headers, method)


def test_weights_are_exact_in_expectation(mesh: Mesh) -> None:
    """Envoy's split for a few weights, to the same 4.5-sd bound (a weight off by 10 fails)."""
    mesh.start(plan(Canary("api", "feat", 50)))
    conn = Conn(mesh.listen_ports["api"])
    for weight in (5, 50, 95):
        mesh.apply(plan(Canary("api", "feat", weight)))
        time.sleep(0.05)
        n = 400
        hits = sum(conn.send("api")[1] == "api.feat" for _ in range(n))
        sd = math.sqrt(n * weight / 100 * (1 - weight / 100))
        assert abs(hits - n * weight / 100) <= 4.5 * sd + 1, (weight, hits)


def test_a_rate_limit_refuses_each_version_beyond_its_own_bucket(mesh: Mesh) -> None:
    limited = Resilience(rate_limit=RateLimit(requests_per_second=5, burst=5))
    mesh.start(plan(Canary("api", "feat", 50), resilience={"api": limited}))
    conn = Conn(mesh.listen_ports["api"])
    answers = Counter((status, upstream) for status, upstream, _ in (conn.send("api") for _ in range(60)))
    # 60 quick requests split 50/50: each version lets about its burst (5, plus what a second
    # refills while they run) through and the mesh answers the rest 429 itself
    for version in ("api.baseline", "api.feat"):
        assert 5 <= answers[(200, version)] <= 15, answers
    assert sum(n for (status, _), n in answers.items() if status == 429) >= 30, answers
    # a service without a limit is not touched
    stock = Conn(mesh.listen_ports["stock"])
    assert {stock.send("stock")[0] for _ in range(60)} == {200}
    # the records name the refusals as the mesh's own (flag RL): limited, not failed
    wait_until(lambda: sum(h.limited for h in mesh.envoy.hops()) >= 30, timeout=5, what="limited records")
    assert not any(h.failed for h in mesh.envoy.hops())
