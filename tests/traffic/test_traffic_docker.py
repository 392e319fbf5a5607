"""`devmesh traffic` on the docker runtime: the starter app, the real CLI, the real Docker engine
and the real Envoy's access log.

Two branches beside the baseline: ``feat`` changes api (three hops by its preview host:
web@baseline → api@feat → stock@baseline); ``nofwd`` changes web so that it no longer passes
x-request-id on (its calls to api show as requests of their own, with one hint).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.docker_env import ENVOY_IMAGE, StarterShop, get, run_git, starter_shop

pytestmark = pytest.mark.docker


class Shop(StarterShop):
    def send(self, env: str | None, request_id: str) -> dict[str, Any]:
        status, body, headers = get(self.port, self.host(env), "/", {"x-request-id": request_id})
        assert status == 200, body
        return body

    def traffic(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.ok("traffic", "--json", "--last", "1000", *args).stdout))

    def chains_of(self, ids: set[str], *args: str, timeout: float = 10) -> dict[str, dict[str, Any]]:
        """The chains of these request ids, once the mesh has logged them (about once a second)."""
        deadline = time.monotonic() + timeout
        while True:
            found = {c["request_id"]: c for c in self.traffic(*args)["chains"] if c["request_id"] in ids}
            if set(found) == ids or time.monotonic() > deadline:
                return found
            time.sleep(0.3)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[Shop]:
    with starter_shop(tmp_path_factory.mktemp("traffic"), Shop) as shop:
        root = shop.root
        run_git(root, "checkout", "-q", "-b", "feat")
        api = root / "services" / "api" / "app.py"
        api.write_text(api.read_text().replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"'))
        run_git(root, "commit", "-qam", "api v2")
        shop.ok("up", "--detach")
        run_git(root, "checkout", "-q", "main")
        run_git(root, "checkout", "-q", "-b", "nofwd")
        web = root / "services" / "web" / "app.py"
        text = web.read_text()
        assert "for name in (HEADER, REQUEST_ID):" in text
        web.write_text(text.replace("for name in (HEADER, REQUEST_ID):", "for name in (HEADER,):"))
        run_git(root, "commit", "-qam", "web forgets the request id")
        shop.ok("up", "--detach")
        yield shop


def served(body: dict[str, Any]) -> list[str]:
    """What the starter says served each hop: web, then api, then stock."""
    return [f"web@{body['env']}", f"api@{body['api']['env']}", f"stock@{body['api']['stock']['env']}"]


def test_three_hop_chains_by_preview_host_match_what_served(shop: Shop) -> None:
    answers = {}
    for i in range(4):
        answers[f"feat-{i}"] = shop.send("feat", f"feat-{i}")
        answers[f"base-{i}"] = shop.send(None, f"base-{i}")
    chains = shop.chains_of(set(answers))
    assert set(chains) == set(answers)
    for request_id, body in answers.items():
        chain = chains[request_id]
        hops = chain["hops"]
        assert [f"{h['service']}@{h['env']}" for h in hops] == served(body), request_id
        assert [h["depth"] for h in hops] == [0, 1, 2]
        assert chain["linked"] and chain["status"] == 200
        assert hops[0]["listener"] == "gateway" and hops[0]["caller"] == "outside"
        assert hops[1]["caller"] == hops[0]["service"] + "@" + hops[0]["env"]
        assert hops[2]["caller"] == hops[1]["service"] + "@" + hops[1]["env"]
        want_header = "feat" if request_id.startswith("feat") else None
        assert {h["route_header"] for h in hops} == {want_header}
        assert all(h["ms"] >= 0 and h["retries"] == 0 and not h["mirror"] for h in hops)
        assert hops[0]["ms"] >= hops[1]["ms"] >= hops[2]["ms"]
    assert chains["feat-0"]["path_text"] == "web@baseline → api@feat → stock@baseline"
    assert chains["base-0"]["path_text"] == "web@baseline → api@baseline → stock@baseline"

    # the figures: every version that served, and only those
    figures = {(v["service"], v["env"]): v for v in shop.traffic()["versions"]}
    assert figures[("api", "feat")]["requests"] >= 4
    assert figures[("api", "baseline")]["requests"] >= 4
    assert figures[("web", "baseline")]["requests"] >= 8
    assert all(v["error_pct"] == 0 and v["p95_ms"] is not None for v in figures.values())
    assert ("stock", "feat") not in figures

    # --env: only requests that reached the environment
    only = shop.chains_of({"feat-1", "base-1"}, "--env", "feat", timeout=0)
    assert set(only) == {"feat-1"}

    # the text form: one line a request, then the figures
    text = shop.ok("traffic", "--branch", "feat", "--last", "3").stdout
    lines = [line for line in text.splitlines() if "→" in line]
    assert len(lines) == 3 and all("web@baseline → api@feat → stock@baseline  200" in x for x in lines)
    assert f"GET feat.{shop.app}.localhost" in lines[0]
    assert "REQUESTS" in text and "api      feat" in text


def test_a_service_that_drops_the_request_id_shows_unlinked_hops_and_one_hint(shop: Shop) -> None:
    body = shop.send("nofwd", "nofwd-0")
    assert served(body) == ["web@nofwd", "api@baseline", "stock@baseline"]
    chains = shop.chains_of({"nofwd-0"})
    assert chains["nofwd-0"]["path_text"] == "web@nofwd"  # its call to api got an id of its own
    report = shop.traffic("--env", "nofwd")
    assert any(n.startswith("web does not pass x-request-id on to its calls") for n in report["notes"])
    orphans = [c for c in shop.traffic()["chains"] if not c["linked"]]
    assert orphans and orphans[-1]["path_text"] == "api@baseline → stock@baseline"
    assert orphans[-1]["hops"][0]["caller"] == "web@nofwd"
    done = shop.ok("traffic", "--last", "1")
    assert "note: web does not pass x-request-id" in done.stderr


def test_follow_prints_each_request_once_logged_and_stops_cleanly(shop: Shop) -> None:
    env = {**os.environ, "DEVMESH_ENVOY_IMAGE": ENVOY_IMAGE, **shop.env}
    proc = subprocess.Popen([sys.executable, "-m", "devmesh", "traffic", "-f", "--json", "--branch", "feat"],
                            cwd=shop.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)  # attached to Envoy's log
        ids = {f"follow-{i}" for i in range(3)}
        for request_id in sorted(ids):
            shop.send("feat", request_id)
        shop.send(None, "follow-baseline")  # not feat's: filtered out
        seen: dict[str, Any] = {}
        deadline = time.monotonic() + 15
        assert proc.stdout is not None
        while set(seen) != ids and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line:
                chain = json.loads(line)
                seen[chain["request_id"]] = chain
        assert set(seen) == ids, seen
        assert all(c["path_text"] == "web@baseline → api@feat → stock@baseline" for c in seen.values())
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "follow-baseline" not in out


def test_bad_input_is_refused_with_exit_2(shop: Shop) -> None:
    done = shop.run("traffic", "--service", "nosuch")
    assert done.returncode == 2 and "has no service 'nosuch'" in done.stderr
    done = shop.run("traffic", "--window", "0")
    assert done.returncode == 2 and "--window" in done.stderr


def test_a_rate_limit_answers_429_beyond_it_and_goes_when_unset(shop: Shop) -> None:
    config = shop.root / "devmesh.yaml"
    before = config.read_text()
    limited = before.replace("    entry: true", "    entry: true\n    values: {rate_limit: 5}", 1)
    assert limited != before
    config.write_text(limited)
    try:
        shop.ok("up", "--detach")
        statuses = Counter(get(shop.port, shop.host(), "/", {"x-request-id": f"limit-{i}"})[0]
                           for i in range(40))
        # 40 quick requests to web@baseline, 5 a second: its burst (5) and what refills while
        # they run get through, the mesh answers the rest itself
        assert 5 <= statuses[200] <= 15 and statuses[429] == 40 - statuses[200], statuses
        ids = {f"limit-{i}" for i in range(40)}
        chains = shop.chains_of(ids)
        refused = [c for c in chains.values() if c["status"] == 429]
        assert len(refused) == statuses[429]
        assert all(c["hops"][0]["limited"] and c["path_text"] == "web@baseline (limited)"
                   for c in refused), json.dumps(refused[:1])
        figures = {(v["service"], v["env"]): v for v in shop.traffic()["versions"]}
        assert figures[("web", "baseline")]["limited"] >= statuses[429]
        assert figures[("web", "baseline")]["error_pct"] == 0  # the mesh's refusals are not web's errors
    finally:
        config.write_text(before)
        shop.ok("up", "--detach")
    assert {get(shop.port, shop.host(), "/")[0] for _ in range(40)} == {200}
