"""The traffic model without a proxy: records read from access log lines, chains, figures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devmesh.traffic.chains import unlinked_hint
from devmesh.traffic.records import FORMAT, GATEWAY, OUTSIDE, RecordReader, dotted_upstream, istio_upstream
from devmesh.traffic.stats import RuleTaken, WindowStats, percentile
from devmesh.traffic.store import Filter, TrafficStore

CALLERS = {"10.0.0.2": "web@baseline", "10.0.0.3": "api@feat", "10.0.0.4": "api@baseline",
           "10.0.0.5": "stock@baseline", "10.0.0.6": "api@other"}


def line(**fields: Any) -> str:
    doc = {"devmesh": FORMAT, "kind": "request", "listener": "mesh:8000", "time": "1000.000",
           "id": "r1", "route_header": None, "method": "GET", "path": "/", "authority": "api:8000",
           "peer": "10.0.0.2", "rule": "api-baseline", "upstream": "api.baseline", "status": 200,
           "flags": "-", "ms": 3, "attempts": 1}
    doc.update(fields)
    return json.dumps(doc)


def reader() -> RecordReader:
    return RecordReader(dotted_upstream, CALLERS.get)


def test_a_record_names_the_version_that_served_it_and_who_called() -> None:
    hop = reader().read(line(route_header="feat", upstream="api.feat", attempts=3, ms=12))
    assert hop is not None
    assert (hop.service, hop.env, hop.served_by, hop.caller) == ("api", "feat", "api@feat", "web@baseline")
    assert (hop.route_header, hop.retries, hop.ms, hop.status, hop.mirror) == ("feat", 2, 12, 200, False)
    gateway = reader().read(line(listener=GATEWAY, peer="172.18.0.1", upstream="web.feat"))
    assert gateway is not None and gateway.caller == OUTSIDE


def test_istio_records_name_versions_by_subset_and_keep_to_their_app() -> None:
    upstream_of = istio_upstream("devmesh-shop")
    assert upstream_of("outbound|8000|feat|api.devmesh-shop.svc.cluster.local") == ("api", "feat")
    assert upstream_of("outbound|8000||api.devmesh-shop.svc.cluster.local") is None  # no subset: no version
    assert upstream_of("outbound|8000|feat|api.devmesh-other.svc.cluster.local") is None
    for other in ("inbound|8000||", "PassthroughCluster", "BlackHoleCluster", "api.feat"):
        assert upstream_of(other) is None
    r = RecordReader(upstream_of, CALLERS.get, app="shop")
    mine = r.read(line(app="shop", listener=GATEWAY, upstream="outbound|8000|baseline|web.devmesh-shop.svc.cluster.local"))
    assert mine is not None and (mine.served_by, mine.caller) == ("web@baseline", OUTSIDE)
    assert r.read(line(app="other", listener=GATEWAY)) is None  # the shared gateway's record for another app
    sidecar = r.read(line(upstream="outbound|8000|feat|api.devmesh-shop.svc.cluster.local"))  # no app field
    assert sidecar is not None and sidecar.served_by == "api@feat"
    assert (r.records, r.others, r.unparsed) == (2, 1, 0)
    # a 429 the serving side's rate limit gave, as the caller's proxy records it (no flag RL)
    limited = r.read(line(status=429, limited="1"))
    assert limited is not None and limited.limited and not limited.failed
    own = r.read(line(status=429))  # a version's own 429
    assert own is not None and not own.limited
    # the agent's lines beside Envoy's in a sidecar's log are messages too
    assert r.read("2026-12-03T10:00:00.123456Z\tinfo\tads\tADS: new connection") is None
    assert r.read("2026/12/03 12:30:14 INFO GOMEMLIMIT is updated package=…") is None
    assert (r.messages, r.unparsed) == (2, 0)


def test_lines_that_are_not_records_are_counted_never_fatal() -> None:
    r = reader()
    lines = ["", "[2026-12-03 10:00:00.000][1][warning][config] something Envoy says",
             "{not json", '{"devmesh": 99, "time": "1"}', "plain text", json.dumps([1, 2]),
             line(time="yesterday"), line()]
    hops = [r.read(text) for text in lines]
    assert [h is not None for h in hops] == [False] * 7 + [True]
    assert (r.records, r.messages, r.unparsed) == (1, 1, 5)
    assert r.first_unparsed == "{not json"


def test_no_upstream_and_unknown_callers() -> None:
    r = reader()
    hop = r.read(line(upstream=None, rule="unknown-host", status=404, peer="10.9.9.9"))
    assert hop is not None and (hop.service, hop.served_by, hop.caller) == (None, "-", "10.9.9.9")
    assert r.unknown_callers == {"10.9.9.9"}
    assert dotted_upstream("outbound|8000|feat|api.shop.svc") is None
    assert dotted_upstream("api.feat") == ("api", "feat")


def three_hops(request_id: str, env: str = "feat", start: float = 1000.0) -> list[str]:
    # logged as the proxy answers: the innermost first
    return [
        line(id=request_id, time=f"{start + 0.002:.3f}", peer="10.0.0.3" if env == "feat" else "10.0.0.6",
             authority="stock:8000",
             upstream="stock.baseline", route_header=env, ms=1),
        line(id=request_id, time=f"{start + 0.001:.3f}", peer="10.0.0.2", upstream=f"api.{env}",
             route_header=env, ms=4),
        line(id=request_id, time=f"{start:.3f}", listener=GATEWAY, peer="172.18.0.1",
             authority=f"{env}.shop.localhost:8080", upstream="web.baseline", route_header=env, ms=7),
    ]


def test_hops_of_one_request_make_one_chain_in_call_order() -> None:
    store = TrafficStore(reader())
    store.extend(three_hops("a") + three_hops("b", start=1001.0))
    chains = store.chains()
    assert [c.request_id for c in chains] == ["a", "b"]
    assert chains[0].text() == "web@baseline → api@feat → stock@baseline  200  7 ms"
    assert [(d, h.served_by) for d, h in chains[0].hops] == [
        (0, "web@baseline"), (1, "api@feat"), (2, "stock@baseline")]
    assert all(c.linked for c in chains) and store.notes(chains) == []


def test_same_millisecond_hops_still_link_to_their_caller() -> None:
    store = TrafficStore(reader())
    store.extend([line(id="x", time="5.000", peer="10.0.0.3", upstream="stock.baseline"),
                  line(id="x", time="5.000", peer="10.0.0.2", upstream="api.feat"),
                  line(id="x", time="5.000", listener=GATEWAY, upstream="web.baseline")])
    (chain,) = store.chains()
    assert chain.root.path_text() == "web@baseline → api@feat → stock@baseline"


def test_a_fan_out_and_a_mirror_copy_are_branches() -> None:
    store = TrafficStore(reader())
    store.extend([
        line(id="m", time="7.001", peer="10.0.0.2", upstream="api.baseline"),
        # as Envoy logs a copy: no downstream (it sends the copy itself), no route
        line(id="m", time="7.001", peer=None, listener="mesh:-", upstream="api.feat", kind="mirror",
             authority="api-shadow:8000", rule=None),
        line(id="m", time="7.003", peer="10.0.0.2", upstream="stock.baseline", authority="stock:8000"),
        line(id="m", time="7.000", listener=GATEWAY, upstream="web.baseline", ms=9),
    ])
    (chain,) = store.chains()
    assert chain.text() == ("web@baseline → [api@baseline, api@feat (mirror), stock@baseline]"
                            "  200  9 ms")


def test_calls_without_the_request_id_are_unlinked_with_one_hint() -> None:
    store = TrafficStore(reader())
    # web did not forward x-request-id: the mesh gave its call a fresh id
    store.extend([line(id="fresh-1", time="9.001", peer="10.0.0.2", upstream="api.baseline"),
                  line(id="g1", time="9.000", listener=GATEWAY, upstream="web.baseline"),
                  line(id="fresh-2", time="9.101", peer="10.0.0.2", upstream="api.baseline"),
                  line(id="g2", time="9.100", listener=GATEWAY, upstream="web.baseline")])
    chains = store.chains()
    assert [c.linked for c in chains] == [True, False, True, False]
    assert chains[1].text() == "web@baseline ⇢ api@baseline  200  3 ms"
    (hint,) = store.notes(chains)
    assert hint.startswith("web does not pass x-request-id on to its calls")
    assert unlinked_hint([c for c in chains if c.linked]) is None


def test_filters_by_env_service_and_text() -> None:
    store = TrafficStore(reader())
    store.extend(three_hops("a", "feat") + three_hops("b", "other", start=1001.0))
    assert [c.request_id for c in store.chains(Filter(env="feat"))] == ["a"]
    assert [c.request_id for c in store.chains(Filter(env="baseline"))] == ["a", "b"]
    assert [c.request_id for c in store.chains(Filter(service="stock"))] == ["a", "b"]
    assert [c.request_id for c in store.chains(Filter(text="api@other"))] == ["b"]
    assert [c.request_id for c in store.chains(last=1)] == ["b"]


def test_figures_per_version_over_the_window() -> None:
    store = TrafficStore(reader(), window=10)
    lines = []
    for i in range(100):  # 10 s of api@feat: 10 requests a second, one in ten fails
        lines.append(line(id=f"f{i}", time=f"{100 + i / 10:.3f}", upstream="api.feat",
                          status=500 if i % 10 == 0 else 200, ms=10 + i % 10))
    for i in range(20):  # api@baseline: 20 requests, 5 refused by a rate limit
        lines.append(line(id=f"b{i}", time=f"{100 + i / 2:.3f}", status=429 if i < 5 else 200,
                          flags="RL" if i < 5 else "-", ms=0 if i < 5 else 2))
    store.extend(lines)
    by = {(f.service, f.env): f for f in store.figures()}
    feat, base = by["api", "feat"], by["api", "baseline"]
    assert (feat.requests, feat.failed, feat.limited) == (100, 10, 0)
    assert feat.error_pct == pytest.approx(10.0)
    assert feat.rps == pytest.approx(10.0, rel=0.01)
    assert (feat.p50_ms, feat.p95_ms) == (14, 19)
    assert (base.requests, base.limited, base.failed, base.error_pct) == (20, 5, 0, 0.0)
    assert base.p95_ms == 2  # refused requests are not latency of the app
    assert [f.env for f in store.figures(Filter(env="feat"))] == ["feat"]
    assert [(f.service, f.env) for f in store.figures(Filter(service="api", env="baseline"))] == [("api", "baseline")]
    # the JSON report: the latest chains kept, the figures, and 0 chains for --last 0
    report = store.to_json(Filter(env="feat"), last=3)
    assert [c["request_id"] for c in report["chains"]] == ["f97", "f98", "f99"]
    assert [v["env"] for v in report["versions"]] == ["feat"] and report["records"] == 120
    assert store.to_json(last=0)["chains"] == []
    # a line a request: start (to the millisecond), method, host and path, the chain
    (chain,) = store.chains(Filter(text="api@feat"), last=1)
    assert chain.line().endswith("49.900  GET api:8000/  web@baseline ⇢ api@feat  200  19 ms")


def test_the_window_slides_and_old_seconds_are_dropped() -> None:
    stats = WindowStats(window=5)
    r = reader()
    for second in range(100):
        hop = r.read(line(time=f"{second}.5", ms=second))
        assert hop is not None
        stats.add(hop)
    (fig,) = stats.figures()
    assert fig.requests <= 7 and fig.p95_ms == 99
    assert sum(len(slots) for slots in stats._seconds.values()) <= 7


def test_the_rules_taken_over_the_window_whatever_the_rate() -> None:
    store = TrafficStore(reader(), window=10, max_hops=100)  # far fewer hops kept than counted
    for n in range(3000):  # 300 requests a second for 10 s: gateway → web, web → api
        at = f"{100 + n / 300:.4f}"
        store.add_line(line(id=f"r{n}", time=at, listener=GATEWAY, rule="baseline", upstream="web.baseline"))
        store.add_line(line(id=f"r{n}", time=at, rule="api-feat" if n % 3 == 0 else "api-baseline",
                            upstream="api.feat" if n % 3 == 0 else "api.baseline"))
    store.add_line(line(id="c", time="109.99", upstream="api.feat", kind="mirror", rule=None, peer=None))
    rules = store.stats.rules()
    assert set(rules) == {(GATEWAY, "baseline"), ("api", "api-feat"), ("api", "api-baseline")}
    assert rules[(GATEWAY, "baseline")].requests == 3000  # every one, not the 100 hops kept
    assert rules[("api", "api-feat")].requests == 1000 and rules[("api", "api-baseline")].requests == 2000
    assert rules[(GATEWAY, "baseline")].latest == pytest.approx(100 + 2999 / 300, abs=1e-3)
    # ten seconds later only the latest second's are left; then none
    assert store.stats.rules(now=119.5)[(GATEWAY, "baseline")].requests == 300
    assert store.stats.rules(now=121) == {}
    # old seconds go as new hops come
    store.add_line(line(id="late", time="200.0", rule="api-baseline", upstream="api.baseline"))
    assert store.stats.rules() == {("api", "api-baseline"): RuleTaken(1, 200.0)}
    assert all(s >= 189 for slots in store.stats._rules.values() for s in slots)


def test_percentiles_are_exact_when_fast_and_within_two_percent_when_slow() -> None:
    from collections import Counter

    from devmesh.traffic.stats import _bucket

    fast = Counter(_bucket(ms) for ms in range(1, 101))
    assert (percentile(fast, 0.5), percentile(fast, 0.95)) == (50, 95)
    for ms in (250, 1000, 12_345, 600_000):
        got = percentile(Counter([_bucket(ms)]), 0.5)
        assert got is not None and ms <= got <= ms * 1.021, (ms, got)
    assert percentile(Counter(), 0.5) is None
    with pytest.raises(ValueError, match="longer than 0 s"):
        WindowStats(window=0)


def figures(env: str, requests: int, failed: int = 0, p95: int | None = 10, limited: int = 0) -> Any:
    from devmesh.traffic.stats import VersionFigures

    return VersionFigures("api", env, requests, failed, limited, 0, 60.0, p95, p95)


def test_a_canary_is_judged_only_with_enough_requests_on_both_sides() -> None:
    from devmesh.traffic.analysis import Thresholds, judge

    t = Thresholds(min_requests=10, max_error_increase=1, max_latency_ratio=1.2, latency_slack_ms=5)
    assert judge(figures("feat", 9), figures("baseline", 100), t) is None
    assert judge(figures("feat", 100), figures("baseline", 9), t) is None
    # refused by a rate limit: not answers of the version
    assert judge(figures("feat", 15, limited=6), figures("baseline", 100), t) is None
    ok = judge(figures("feat", 10), figures("baseline", 10), t)
    assert ok is not None and ok.passed


def test_error_rate_and_latency_thresholds() -> None:
    from devmesh.traffic.analysis import Thresholds, judge

    t = Thresholds(min_requests=10, max_error_increase=1, max_latency_ratio=1.2, latency_slack_ms=5)
    bad = judge(figures("feat", 100, failed=3), figures("baseline", 100, failed=1), t)
    assert bad is not None and not bad.passed
    assert bad.reason == "error rate 3.0% is above the baseline's 1.0% + 1 point(s)"
    assert "canary 100 requests, 3.0% errors (3), p95 10 ms; baseline 100 requests" in bad.figures()
    edge = judge(figures("feat", 100, failed=2), figures("baseline", 100, failed=1), t)
    assert edge is not None and edge.passed  # at most the baseline's + 1 point
    # small latencies: the slack decides (2 ms → up to 7 ms); large ones: the ratio (100 → 120)
    assert judge(figures("feat", 50, p95=7), figures("baseline", 50, p95=2), t).passed  # type: ignore[union-attr]
    slow = judge(figures("feat", 50, p95=8), figures("baseline", 50, p95=2), t)
    assert slow is not None and not slow.passed and slow.reason.startswith("p95 latency 8 ms is above 7 ms")
    assert judge(figures("feat", 50, p95=120), figures("baseline", 50, p95=100), t).passed  # type: ignore[union-attr]
    assert not judge(figures("feat", 50, p95=121), figures("baseline", 50, p95=100), t).passed  # type: ignore[union-attr]


@pytest.mark.parametrize(("analysis", "problem"), [
    ({"min_requests": 0}, ("analysis.min_requests", "a whole number of requests, at least 1")),
    ({"min_requests": 2.5}, ("analysis.min_requests", "a whole number")),
    ({"max_error_increase": -1}, ("analysis.max_error_increase", "between 0 and 100")),
    ({"max_latency_ratio": 0.9}, ("analysis.max_latency_ratio", "a ratio of at least 1")),
    ({"max_latency_ratio": True}, ("analysis.max_latency_ratio", "a ratio of at least 1")),
    ({"latency_slack_ms": -5}, ("analysis.latency_slack_ms", "0 or more")),
    ({"step_timeout": 0}, ("analysis.step_timeout", "above 0")),
    ({"p99": 3}, ("analysis.p99", "not an analysis threshold")),
    ([1], ("analysis", "expected a mapping")),
])
def test_analysis_thresholds_that_make_no_sense(analysis: Any, problem: tuple[str, str]) -> None:
    from devmesh.config.presets import analysis_problem

    found = analysis_problem(analysis)
    assert found is not None and found[0] == problem[0] and problem[1] in found[1], found
    assert analysis_problem({"min_requests": 5, "max_latency_ratio": 1, "step_timeout": 0.5}) is None
