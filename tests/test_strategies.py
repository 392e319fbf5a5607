"""Release strategies, pure: sticky buckets, the rules in the RoutePlan, their Istio and Envoy
renderings, `routes --explain`, strategy presets, resilience from presets, the strategy store."""

from __future__ import annotations

import json
import random
import re
import string
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from devmesh.cli import main
from devmesh.config import ConfigErrors, load_text
from devmesh.errors import ConfigError, DevmeshError, UserInputError
from devmesh.naming import BASELINE_ENV
from devmesh.plan import k8s
from devmesh.plan.envoy import parse_cluster_health, render_envoy
from devmesh.plan.explain import explain, parse_request
from devmesh.plan.routing import (
    Backend,
    CircuitBreaker,
    Environment,
    Match,
    OutlierDetection,
    Resilience,
    Retries,
    RoutePlan,
    first_match,
    plan_routes,
)
from devmesh.plan.strategy import (
    DIGIT_ORDER,
    Canary,
    Mirror,
    Switch,
    bucket_of,
    bucket_regex,
    char_digit,
    from_json,
    to_json,
)
from devmesh.config.presets import list_presets, strategy_preset, strategy_presets
from devmesh.routes_state import StrategyStore
from tests.conftest import ProjectFactory
from tests.schemas import validate

HEADER = "x-devmesh-env"
PORTS = {"web": 8080, "api": 8000, "stock": 8000}
RES = Resilience(timeout=30, retries=Retries(2), circuit_breaker=CircuitBreaker(),
                 outlier_detection=OutlierDetection())
FEAT = Environment("feat", ("web", "api"))
OTHER = Environment("other", ("api",))


def shop(*strategies: Any, envs: tuple[Environment, ...] = (FEAT, OTHER),
         resilience: dict[str, Resilience] | None = None) -> RoutePlan:
    return plan_routes(app="shop", header=HEADER, domain="localhost", gateway_port=18080,
                       entry="web", ports=PORTS, environments=envs, strategies=strategies,
                       resilience=resilience)


ALL_STRATEGIES = [
    Canary("api", "feat", 20),
    Canary("api", "feat", 20, "x-user-id"),
    Canary("web", "feat", 35, "x-user-id"),
    Canary("api", "feat", 100, "x-user-id"),
    Canary("api", "feat", 0, "x-user-id"),
    Mirror("api", "feat", 12.5),
    Mirror("web", "feat"),
    Switch("api", "feat"),
    Switch("web", "feat"),
]


# =========================================================================== sticky buckets


def _values() -> list[str]:
    rng = random.Random(11)
    alphabet = string.printable[:95] + "é€\u2603\t"
    out = [''.join(rng.choice(alphabet) for _ in range(rng.randint(0, 5))) for _ in range(4000)]
    return out + [str(i) for i in range(200)] + ["", "0", "9", "a", "é", "user-7", "42 "]


def test_the_regex_of_every_weight_holds_exactly_for_the_values_in_its_buckets() -> None:
    values = _values()
    for weight in range(1, 101):
        pattern = re.compile(bucket_regex(weight))
        for value in values:
            assert (pattern.fullmatch(value) is not None) == (bucket_of(value) < weight), (
                weight, value, bucket_of(value))


def test_buckets_come_from_the_last_two_characters() -> None:
    assert [char_digit(c) for c in "0123456789"] == list(range(10))
    assert char_digit("é") == 0 and char_digit("\t") == 0
    rank = {d: r for r, d in enumerate(DIGIT_ORDER)}
    assert bucket_of("4217") == 10 * rank[1] + rank[7] == 25
    assert bucket_of("user-4217") == bucket_of("17") == bucket_of("9917")
    assert bucket_of("7") == bucket_of("07") and bucket_of("") == 0


def test_raising_the_weight_only_adds_buckets() -> None:
    values = _values()
    for weight in range(1, 100):
        small, big = re.compile(bucket_regex(weight)), re.compile(bucket_regex(weight + 1))
        assert all(big.fullmatch(v) for v in values if small.fullmatch(v)), weight


def test_decimal_ids_split_exactly_and_hex_ids_closely() -> None:
    decimal = [str(i) for i in range(100_000)]
    rng = random.Random(5)
    uuids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(40_000)]
    tokens = [''.join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(12))
              for _ in range(40_000)]
    for weight in (1, 5, 10, 20, 25, 50, 80, 99):
        assert sum(bucket_of(v) < weight for v in decimal) == 1000 * weight
        # 16 hex symbols do not fall evenly on 10 digits; the interleaved order keeps the
        # share within 5 points (6 for sampling), alphanumeric tokens within 3.
        assert abs(100 * sum(bucket_of(v) < weight for v in uuids) / len(uuids) - weight) < 6
        assert abs(100 * sum(bucket_of(v) < weight for v in tokens) / len(tokens) - weight) < 3


def test_regexes_use_only_syntax_re2_and_python_read_alike() -> None:
    for weight in range(1, 100):
        pattern = bucket_regex(weight)
        # classes of \xNN escapes, '.', '*', '?', '|', non-capturing groups: nothing else
        assert re.fullmatch(r"(\(\?:|\)|\?|\||\.|\*|\[\^?(\\x[0-9a-f]{2}(-\\x[0-9a-f]{2})?)+\])+",
                            pattern), pattern
        assert len(pattern) < 1024


# =========================================================================== the plan


def _names(plan: RoutePlan, service: str | None = None) -> list[str]:
    rules = plan.gateway if service is None else plan.routes_for(service).rules
    return [r.name for r in rules]


def test_strategy_rules_sit_between_the_header_rules_and_the_baseline() -> None:
    plan = shop(Canary("api", "feat", 20, "x-user-id"))
    assert _names(plan, "api") == ["api-feat", "api-other", "api-canary-sticky",
                                   "api-canary-sticky-rest", "api-canary", "api-baseline"]
    assert _names(plan) == ["preview-feat", "preview-other", "header-feat", "baseline"]
    assert plan.strategies == (Canary("api", "feat", 20, "x-user-id"),)

    web = shop(Switch("web", "feat"))  # the entry: the gateway gets the rule too
    assert _names(web, "web") == ["web-feat", "web-switch", "web-baseline"]
    assert _names(web) == ["preview-feat", "preview-other", "header-feat", "switch", "baseline"]
    assert _names(shop(Mirror("api", "feat")), "api") == [
        "api-feat", "api-other", "api-mirror", "api-baseline"]


def _go(plan: RoutePlan, service: str, headers: dict[str, str], method: str = "GET") -> str:
    rule = first_match(plan.routes_for(service).rules, service, headers, method)
    return rule.name


def test_requests_carrying_the_routing_header_are_never_touched() -> None:
    for strategy in ALL_STRATEGIES:
        plan = shop(strategy)
        service = strategy.service
        assert _go(plan, service, {HEADER: "feat"}) == f"{service}-feat"
        # another environment's header: its own fork, or the baseline, never the strategy
        expected = "api-other" if service == "api" else f"{service}-baseline"
        assert _go(plan, service, {HEADER: "other", "x-user-id": "1"}) == expected
        assert _go(plan, service, {HEADER: "other"}, "POST") == expected


def test_what_each_strategy_does_with_baseline_traffic() -> None:
    sticky = shop(Canary("api", "feat", 20, "x-user-id"))
    assert _go(sticky, "api", {"x-user-id": "4200"}) == "api-canary-sticky"  # bucket 0
    assert _go(sticky, "api", {"X-User-Id": "4217"}) == "api-canary-sticky-rest"  # bucket 25
    assert _go(sticky, "api", {}) == "api-canary"
    rule = sticky.routes_for("api").rules[4]
    assert [(w.backend.env, w.weight) for w in rule.to] == [(BASELINE_ENV, 80), ("feat", 20)]

    mirror = shop(Mirror("api", "feat", 12.5))
    for method in ("GET", "HEAD"):
        rule = first_match(mirror.routes_for("api").rules, "api", {}, method)
        assert rule.name == "api-mirror"
        assert rule.to[0].backend.env == BASELINE_ENV
        assert rule.mirror is not None and rule.mirror.backend == Backend("api", "feat")
        assert rule.mirror.percent == 12.5
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert _go(mirror, "api", {}, method) == "api-baseline"

    switch = shop(Switch("web", "feat"))
    rule = first_match(switch.gateway, "shop.localhost", {})
    assert rule.name == "switch" and rule.to[0].backend == Backend("web", "feat")
    assert first_match(switch.gateway, "other.shop.localhost", {}).name == "preview-other"


@pytest.mark.parametrize("strategy, message", [
    (Canary("db", "feat", 10), "service 'db', which the project does not have"),
    (Canary("stock", "feat", 10), "'feat', which does not run its own stock"),
    (Mirror("api", "gone"), "'gone', which does not run its own api"),
])
def test_a_strategy_must_name_a_fork_that_runs(strategy: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        shop(strategy)


def test_a_service_has_at_most_one_strategy() -> None:
    with pytest.raises(ValueError, match="two strategies"):
        shop(Canary("api", "feat", 10), Mirror("api", "other"))
    with pytest.raises(ValueError, match="0–100"):
        Canary("api", "feat", 101)
    with pytest.raises(ValueError, match="above 0"):
        Mirror("api", "feat", 0)


def test_strategies_round_trip_through_json() -> None:
    for strategy in ALL_STRATEGIES + [Canary("api", "feat", 25, None, (10, 25), "canary")]:
        assert from_json(json.loads(json.dumps(to_json(strategy)))) == strategy
    for bad in ({"kind": "blue-green", "service": "a", "env": "b"},
                {"kind": "canary", "service": "a", "env": "b", "weight": "20"},
                {"kind": "mirror", "service": "", "env": "b"}):
        with pytest.raises(ValueError):
            from_json(bad)


# =========================================================================== Istio


def _objects(plan: RoutePlan) -> list[dict[str, Any]]:
    out = [k8s._virtual_service(plan, r.service, k8s.namespace_for(plan.app)) for r in plan.services]
    out += [k8s._destination_rule(plan, r.service, k8s.namespace_for(plan.app)) for r in plan.services]
    return out + k8s._gateway_virtual_services(plan)


@pytest.mark.parametrize("strategy", ALL_STRATEGIES, ids=lambda s: f"{s.kind}-{s.service}")
def test_istio_objects_of_every_strategy_pass_the_schemas(strategy: Any) -> None:
    plan = shop(strategy, resilience={s: RES for s in PORTS})
    for obj in _objects(plan):
        validate(obj)
    # YAML without anchors or aliases: what the kind runtime applies is plain
    assert "&id" not in k8s.to_yaml(_objects(plan))


def _http(plan: RoutePlan, service: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in k8s._virtual_service(plan, service, k8s.namespace_for(plan.app))["spec"]["http"]}


def test_istio_sticky_canary_matches_the_bucket_regex_without_the_routing_header() -> None:
    plan = shop(Canary("api", "feat", 20, "x-user-id"))
    routes = _http(plan, "api")
    assert routes["api-canary-sticky"]["match"] == [{
        "headers": {"x-user-id": {"regex": bucket_regex(20)}},
        "withoutHeaders": {HEADER: {}}}]
    assert routes["api-canary-sticky"]["route"][0]["destination"]["subset"] == "feat"
    assert routes["api-canary-sticky-rest"]["match"][0]["headers"] == {"x-user-id": {"regex": ".*"}}
    assert [(d["destination"]["subset"], d["weight"]) for d in routes["api-canary"]["route"]] == [
        ("baseline", 80), ("feat", 20)]
    assert "match" not in routes["api-baseline"]
    # 100%: the zero-weight baseline is left out, as the Envoy renderer does
    full = _http(shop(Canary("api", "feat", 100)), "api")["api-canary"]
    assert full["route"] == [{"destination": {
        "host": "api.devmesh-shop.svc.cluster.local", "subset": "feat", "port": {"number": 8000}}}]


def test_istio_mirror_is_one_match_per_method_with_mirror_percentage() -> None:
    route = _http(shop(Mirror("api", "feat", 12.5)), "api")["api-mirror"]
    assert route["match"] == [{"withoutHeaders": {HEADER: {}}, "method": {"exact": "GET"}},
                              {"withoutHeaders": {HEADER: {}}, "method": {"exact": "HEAD"}}]
    assert route["route"][0]["destination"]["subset"] == "baseline"
    assert route["mirror"] == {"host": "api.devmesh-shop.svc.cluster.local", "subset": "feat",
                               "port": {"number": 8000}}
    assert route["mirrorPercentage"] == {"value": 12.5}


def test_istio_resilience_in_routes_and_destination_rules() -> None:
    res = Resilience(timeout=2.5, retries=Retries(3, ("connect-failure", "5xx"), 0.5),
                     circuit_breaker=CircuitBreaker(10, 20, 30, 4),
                     outlier_detection=OutlierDetection(7, 5.0, 60.0, 50))
    plan = shop(Switch("web", "feat"), resilience={"web": res})
    for route in _http(plan, "web").values():
        assert route["timeout"] == "2.5s"
        assert route["retries"] == {"attempts": 3, "retryOn": "connect-failure,5xx",
                                    "perTryTimeout": "0.5s"}
    gateway = {o["metadata"]["name"]: o for o in k8s._gateway_virtual_services(plan)}
    for route in gateway["shop-gateway-baseline"]["spec"]["http"]:
        assert route["timeout"] == "2.5s"  # the gateway's routes lead to web: web's policy
    # a service without retries does not retry on either runtime (Istio would retry twice)
    assert all(r["retries"] == {"attempts": 0} and "timeout" not in r
               for r in _http(shop(resilience={"api": Resilience()}), "api").values())
    rule = k8s._destination_rule(plan, "web", k8s.namespace_for(plan.app))
    validate(rule)
    assert rule["spec"]["trafficPolicy"] == {
        "connectionPool": {"tcp": {"maxConnections": 10},
                           "http": {"http1MaxPendingRequests": 20, "http2MaxRequests": 30,
                                    "maxRetries": 4}},
        "outlierDetection": {"consecutive5xxErrors": 7, "interval": "5s",
                             "baseEjectionTime": "60s", "maxEjectionPercent": 50}}
    assert "trafficPolicy" not in k8s._destination_rule(plan, "stock", k8s.namespace_for(plan.app))["spec"]


# =========================================================================== Envoy (files)


def _envoy(plan: RoutePlan) -> Any:
    return render_envoy(plan, address_of=lambda b: (f"{b.service}.{b.env}", PORTS[b.service]),
                        gateway_port=10000, admin_port=9901, config_dir="/etc/envoy")


def _envoy_routes(plan: RoutePlan, vhost: str, table: str = "mesh") -> dict[str, dict[str, Any]]:
    (config,) = _envoy(plan).rds[table]["resources"]
    (found,) = [v for v in config["virtual_hosts"] if v["name"] == vhost]
    return {r["name"]: r for r in found["routes"]}


def test_envoy_rendering_of_each_strategy() -> None:
    sticky = _envoy_routes(shop(Canary("api", "feat", 20, "x-user-id")), "api")
    assert sticky["api-canary-sticky"]["match"]["headers"] == [
        {"name": "x-user-id", "string_match": {"safe_regex": {"regex": bucket_regex(20)}}},
        {"name": HEADER, "present_match": True, "invert_match": True}]
    assert sticky["api-canary-sticky"]["route"]["cluster"] == "api.feat"
    assert [(c["name"], c["weight"]) for c in
            sticky["api-canary"]["route"]["weighted_clusters"]["clusters"]] == [
        ("api.baseline", 80), ("api.feat", 20)]

    mirror = _envoy_routes(shop(Mirror("api", "feat", 12.5)), "api")["api-mirror"]
    assert {"name": ":method", "string_match": {"safe_regex": {"regex": "GET|HEAD"}}} in \
        mirror["match"]["headers"]
    assert mirror["route"]["cluster"] == "api.baseline"
    assert mirror["route"]["request_mirror_policies"] == [{
        "cluster": "api.feat",
        "runtime_fraction": {"default_value": {"numerator": 125_000, "denominator": "MILLION"}}}]

    switch = _envoy_routes(shop(Switch("web", "feat")), "any-host", "gateway")
    assert list(switch) == ["header-feat", "switch", "baseline"]
    assert switch["switch"]["route"]["cluster"] == "web.feat"


def test_envoy_resilience_on_routes_and_clusters() -> None:
    res = Resilience(timeout=2.5, retries=Retries(3, ("connect-failure", "5xx"), 0.5),
                     circuit_breaker=CircuitBreaker(10, 20, 30, 4),
                     outlier_detection=OutlierDetection(7, 5.0, 60.0, 50))
    plan = shop(resilience={"api": res, "web": Resilience()})
    for route in _envoy_routes(plan, "api").values():
        assert route["route"]["timeout"] == "2.5s"
        assert route["route"]["retry_policy"] == {"retry_on": "connect-failure,5xx",
                                                  "num_retries": 3, "per_try_timeout": "0.5s"}
    for route in _envoy_routes(plan, "web").values():
        assert route["route"]["timeout"] == "0s" and "retry_policy" not in route["route"]
    clusters = {c["name"]: c for c in _envoy(plan).cds["resources"]}
    assert clusters["api.feat"]["circuit_breakers"] == {"thresholds": [{
        "priority": "DEFAULT", "max_connections": 10, "max_pending_requests": 20,
        "max_requests": 30, "max_retries": 4}]}
    assert clusters["api.baseline"]["outlier_detection"] == {
        "consecutive_5xx": 7, "interval": "5s", "base_ejection_time": "60s",
        "max_ejection_percent": 50}
    assert "circuit_breakers" not in clusters["web.baseline"]


def test_an_ejected_host_still_counts_as_ready() -> None:
    text = ("api.baseline::10.0.0.2:8000::health_flags::/failed_outlier_check\n"
            "api.feat::10.0.0.3:8000::health_flags::/failed_active_hc/failed_outlier_check\n")
    assert parse_cluster_health(text) == {"api.baseline": True, "api.feat": False}
    doc = {"cluster_statuses": [{"name": "api.baseline", "host_statuses": [
        {"health_status": {"failed_outlier_check": True, "eds_health_status": "HEALTHY"}}]}]}
    assert parse_cluster_health(doc) == {"api.baseline": True}


# =========================================================================== explain


def test_parse_request_reads_a_command_line_without_a_shell() -> None:
    req = parse_request("POST http://feat.shop.localhost:8080/cart?x=1 -H 'X-User-Id: 42' "
                        "-H 'note: a; rm -rf /'")
    assert (req.method, req.path, req.host) == ("POST", "/cart?x=1", "feat.shop.localhost:8080")
    assert req.headers == (("x-user-id", "42"), ("note", "a; rm -rf /"))
    assert parse_request("/").method == "GET"
    assert parse_request("-X head / -H 'Host: shop.localhost'").host == "shop.localhost"
    for bad, message in (("GET / -H nocolon", "'Name: value'"), ("GET /a /b", "unexpected '/b'"),
                         ("GET / -H 'x: \"open", "cannot split"), ("GET / --data x", "unknown option"),
                         ("GET / -H", "needs a value")):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_request(bad)


def test_explain_follows_the_gateway_then_every_service() -> None:
    plan = shop(Canary("web", "feat", 20, "x-user-id"), Mirror("api", "other"))
    hops = {h.at: h for h in explain(plan, parse_request("GET / -H 'x-user-id: 4250'"))}
    assert hops["gateway"].rule.name == "canary-sticky"
    assert hops["gateway"].describe_destination() == "web.feat"
    assert hops["api"].rule.name == "api-mirror"
    assert hops["api"].describe_destination() == "api.baseline (a copy of 100% of these to api.other)"
    # a preview host sets the routing header: every service sees it, strategies stay out
    hops = {h.at: h for h in explain(plan, parse_request("GET http://other.shop.localhost/"))}
    assert hops["gateway"].rule.name == "preview-other"
    assert hops["api"].rule.name == "api-other" and hops["web"].rule.name == "web-baseline"
    post = {h.at: h for h in explain(plan, parse_request("POST /"))}
    assert post["gateway"].describe_destination() == "web.baseline 80% / web.feat 20%"
    assert post["api"].rule.name == "api-baseline"


# =========================================================================== presets


def test_shipped_strategy_presets() -> None:
    found = strategy_presets()
    assert {n: p.kind for n, p in found.items()} == {
        "canary": "canary", "mirror": "mirror", "red-black": "switch", "rolling": "rolling"}
    assert found["canary"].steps == (10, 25, 50, 100)
    assert set(found["canary"].variables) == {"steps", "sticky_header", "min_requests", "max_error_increase",
                                              "max_latency_ratio", "latency_slack_ms", "step_timeout"}
    assert found["canary"].settings["analysis"] == {"min_requests": 20, "max_error_increase": 1,
                                                    "max_latency_ratio": 1.2, "latency_slack_ms": 5,
                                                    "step_timeout": 300}
    assert found["rolling"].settings == {"max_surge": "25%", "max_unavailable": 0}
    assert k8s.rolling_update(found["rolling"].settings) == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}


def _project_preset(root: Path, name: str, text: str) -> None:
    folder = root / "presets" / "strategies"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)


def test_a_project_adds_and_overrides_strategy_presets(tmp_path: Path) -> None:
    _project_preset(tmp_path, "careful", "description: slow\nvariables:\n  steps:\n"
                    "    default: [1, 5, 20, 100]\ndefaults:\n  kind: canary\n  steps: ${steps}\n")
    _project_preset(tmp_path, "mirror", "variables: {}\ndefaults:\n  kind: mirror\n  percent: 5\n")
    found = strategy_presets(tmp_path)
    assert found["careful"].steps == (1, 5, 20, 100)
    assert found["mirror"].settings == {"percent": 5}
    listing = {(p.category, p.name): p for p in list_presets(tmp_path)}
    assert listing[("strategy", "careful")].source.endswith("presets/strategies/careful.yaml")
    assert listing[("strategy", "canary")].source == "devmesh"
    assert listing[("service", "python-web")].source == "devmesh"
    with pytest.raises(UserInputError, match="is a mirror preset, not a canary one; canary "
                                             "presets: canary, careful"):
        strategy_preset("mirror", "canary", tmp_path)
    with pytest.raises(UserInputError, match="did you mean 'careful'"):
        strategy_preset("carefull", "canary", tmp_path)


@pytest.mark.parametrize("body, field, message", [
    ("defaults:\n  kind: blue-green\n", "defaults.kind", "expected one of canary, mirror"),
    ("defaults:\n  kind: mirror\n  weight: 5\n", "defaults.weight", "not a setting of a mirror"),
    ("defaults:\n  kind: canary\n  steps: [50, 10]\n", "defaults.steps", "rising list"),
    ("defaults:\n  kind: mirror\n  percent: 0\n", "defaults.percent", "above 0"),
    ("defaults:\n  kind: canary\n  steps: [10]\n  sticky_header: X User\n",
     "defaults.sticky_header", "lower-case header name"),
])
def test_a_broken_strategy_preset_names_its_file_and_field(tmp_path: Path, body: str, field: str,
                                                           message: str) -> None:
    _project_preset(tmp_path, "broken", body)
    with pytest.raises(ConfigError) as caught:
        strategy_presets(tmp_path)
    assert caught.value.field == field and message in caught.value.problem
    assert caught.value.file.endswith("broken.yaml")


def test_devmesh_presets_lists_presets_with_variables(make_project: ProjectFactory,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    _project_preset(root, "careful", "description: slow canary\nvariables:\n  steps:\n"
                    "    description: weights\n    default: [1, 100]\n"
                    "defaults:\n  kind: canary\n  steps: ${steps}\n")
    with pytest.raises(SystemExit) as done:
        main(["-c", str(root / "devmesh.yaml"), "presets", "--json"])
        raise SystemExit(0)
    assert done.value.code == 0
    listed = {(p["category"], p["name"]): p for p in json.loads(capsys.readouterr().out)["presets"]}
    web = {v["name"]: v["default"] for v in listed[("service", "python-web")]["variables"]}
    assert web["timeout"] == "30s" and web["retries"] == 2 and web["max_connections"] == 1024
    careful = listed[("strategy", "careful")]
    assert careful["kind"] == "canary" and careful["variables"] == [
        {"name": "steps", "default": [1, 100], "description": "weights"}]
    main(["-c", str(root / "devmesh.yaml"), "presets"])
    text = capsys.readouterr().out
    assert "Strategy presets:" in text and "careful [canary]: slow canary" in text
    assert re.search(r"steps = \[1, 100\]\s+weights", text)


# =========================================================================== resilience


PRESET_SERVICE = """\
app: shop
services:
  api:
    context: services/api
    preset: python-web
{values}"""


def _project(tmp_path: Path, values: str = "") -> Any:
    (tmp_path / "services" / "api").mkdir(parents=True, exist_ok=True)
    (tmp_path / "services" / "api" / "Dockerfile").write_text("FROM scratch\n")
    return load_text(PRESET_SERVICE.format(values=values), tmp_path / "devmesh.yaml", "devmesh.yaml")


def test_resilience_comes_from_the_preset_and_its_values(tmp_path: Path) -> None:
    from devmesh.plan.routing import plan_for_project, resilience_of

    default = resilience_of(_project(tmp_path))["api"]
    assert default == Resilience(
        timeout=30.0, retries=Retries(2, ("connect-failure", "refused-stream")),
        circuit_breaker=CircuitBreaker(1024, 1024, 1024, 3),
        outlier_detection=OutlierDetection(5, 10.0, 30.0, 100))
    tuned = _project(tmp_path, "    values:\n      timeout: 250ms\n      retries: 0\n"
                               "      retry_on: 5xx,reset\n      ejection_time: 2m\n")
    policy = resilience_of(tuned)["api"]
    assert policy.timeout == 0.25 and policy.retries is None
    assert policy.outlier_detection is not None and policy.outlier_detection.base_ejection_time == 120
    plan = plan_for_project(tuned, [])
    assert plan.routes_for("api").resilience == policy
    route = k8s._virtual_service(plan, "api", k8s.namespace_for(plan.app))["spec"]["http"][0]
    assert (route["timeout"], route["retries"]) == ("0.25s", {"attempts": 0})


def test_a_rate_limit_comes_from_the_preset_and_renders_for_both_meshes(tmp_path: Path) -> None:
    from devmesh.plan.routing import RateLimit, plan_for_project, resilience_of

    assert resilience_of(_project(tmp_path))["api"].rate_limit is None  # 0: no limit
    assert resilience_of(_project(tmp_path, "    values:\n      rate_limit: 5\n"))["api"].rate_limit \
        == RateLimit(5, 5)  # a burst of a second's worth
    project = _project(tmp_path, "    values:\n      rate_limit: 5\n      rate_limit_burst: 12\n")
    plan = plan_for_project(project, [Environment("feat", ("api",))], [Canary("api", "feat", 50)])
    assert plan.routes_for("api").resilience.rate_limit == RateLimit(5, 12)  # type: ignore[union-attr]
    # Istio: one EnvoyFilter for the service, a bucket on each pod's sidecar (one pod a version)
    objects = k8s.render_objects(project, plan)
    filters = [o for o in objects if o["kind"] == "EnvoyFilter" and o["metadata"]["name"].endswith("-rate-limit")]
    assert [f["metadata"]["name"] for f in filters] == ["api-rate-limit"]
    validate(filters[0])
    spec = filters[0]["spec"]
    assert spec["workloadSelector"] == {"labels": {k8s.APP_LABEL: "shop", k8s.SERVICE_LABEL: "api"}}
    patch = spec["configPatches"][0]
    assert patch["match"]["context"] == "SIDECAR_INBOUND" and patch["patch"]["operation"] == "INSERT_BEFORE"
    assert patch["patch"]["value"]["typed_config"]["token_bucket"] == {
        "max_tokens": 12, "tokens_per_fill": 5, "fill_interval": "1s"}
    assert [o["kind"] for o in k8s.tier_traffic(plan, "api")] == ["DestinationRule", "VirtualService", "EnvoyFilter"]
    # Envoy: every route to api asks for the bucket of the cluster it chose, one per version
    for route in _envoy_routes(plan, "api").values():
        assert route["route"]["rate_limits"] == [{"actions": [{"destination_cluster": {}}]}]
    files = _envoy(plan)
    hcm = files.lds["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    limiter = hcm["http_filters"][0]["typed_config"]
    assert hcm["http_filters"][-1]["name"] == "envoy.filters.http.router"
    assert {d["entries"][0]["value"]: d["token_bucket"]["tokens_per_fill"] for d in limiter["descriptors"]} \
        == {"api.baseline": 5, "api.feat": 5}
    # without a limit nothing is rendered for it, in either mesh
    plain = plan_for_project(_project(tmp_path), [])
    assert not [o for o in k8s.render_objects(_project(tmp_path), plain)
                if o["kind"] == "EnvoyFilter" and o["metadata"]["name"].endswith("-rate-limit")]
    hcm = _envoy(plain).lds["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["envoy.filters.http.router"]


@pytest.mark.parametrize("values, message", [
    ("      timeout: soon\n",
     'devmesh.yaml:7: services.api.values.timeout: expected a duration such as 30s, 1.5s, '
     '250ms or 2m, got "soon"'),
    ("      retry_on: 5xx,always\n",
     "devmesh.yaml:7: services.api.values.retry_on: expected retry conditions separated by "
     "commas, from 5xx, connect-failure, gateway-error, refused-stream, reset, retriable-4xx; "
     'got "5xx,always"'),
    ("      max_connections: 0\n",
     "devmesh.yaml:7: services.api.values.max_connections: expected a whole number of at "
     "least 1, got 0"),
    ("      rate_limit: fast\n",
     'devmesh.yaml:7: services.api.values.rate_limit: expected a whole number of at least 0, got "fast"'),
])
def test_bad_resilience_values_are_blamed_on_the_value(tmp_path: Path, values: str,
                                                       message: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        _project(tmp_path, "    values:\n" + values)
    assert str(caught.value) == message


# =========================================================================== the store


def test_the_store_keeps_one_strategy_per_service(tmp_path: Path) -> None:
    store = StrategyStore(tmp_path / "app")
    assert store.load() == ()
    assert store.put(Canary("api", "feat", 10)) is None
    assert store.put(Mirror("web", "feat")) is None
    assert store.put(Switch("api", "feat")) == Canary("api", "feat", 10)
    assert store.load() == (Switch("api", "feat"), Mirror("web", "feat"))
    assert store.prune(lambda s: s.service != "web") == [Mirror("web", "feat")]
    assert store.remove("api") == Switch("api", "feat") and store.remove("api") is None
    assert json.loads(store.path.read_text()) == {"version": 1, "strategies": []}
    store.clear()
    assert not store.path.exists()


def test_a_broken_store_says_which_file_and_how_to_recover(tmp_path: Path) -> None:
    store = StrategyStore(tmp_path)
    store.path.write_text('{"version": 1, "strategies": [{"kind": "teleport"}]}')
    with pytest.raises(DevmeshError) as caught:
        store.load()
    assert str(store.path) in str(caught.value) and "delete it" in (caught.value.hint or "")


def test_concurrent_changes_are_not_lost(tmp_path: Path) -> None:
    store = StrategyStore(tmp_path)
    services = [f"svc{i}" for i in range(24)]
    threads = [threading.Thread(target=lambda s=s: StrategyStore(tmp_path).put(Switch(s, "feat")))
               for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s.service for s in store.load()) == sorted(services)


def test_match_describes_itself_for_routes() -> None:
    assert Match(without_headers=(HEADER,), header_regex=(("x-user-id", bucket_regex(20)),)
                 ).describe() == "x-user-id in sticky buckets 0–19 of 100 and no x-devmesh-env header"
    assert Match(methods=("GET", "HEAD")).describe() == "method GET or HEAD"
    assert yaml.safe_load(yaml.safe_dump({"r": bucket_regex(7)}))["r"] == bucket_regex(7)
