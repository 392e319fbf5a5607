"""`devmesh canary SERVICE --auto` on the docker runtime: the starter app, the real CLI, the real
Docker engine and the real Envoy, with requests flowing through the gateway meanwhile.

Two branches fork api: ``bad`` answers 500 to every request, ``good`` is a healthy v2. The
project's own canary preset walks 20 → 50 → 100 % and judges a step after 10 requests a side.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.docker_env import ENVOY_IMAGE, StarterShop, get, run_git, starter_shop

pytestmark = pytest.mark.docker

QUICK = """\
description: a quick canary for tests
variables: {}
defaults:
  kind: canary
  steps: [20, 50, 100]
  sticky_header: ""
  analysis: {min_requests: 10, max_error_increase: 1, max_latency_ratio: 1.5,
             latency_slack_ms: 50, step_timeout: 60}
"""


@dataclass
class Load:
    """Requests without the routing header through the gateway, in a thread, until stopped."""

    port: int
    host: str
    stop: threading.Event = field(default_factory=threading.Event)
    answers: list[tuple[int, str | None]] = field(default_factory=list)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            try:
                conn.request("GET", "/", headers={"Host": self.host})
                resp = conn.getresponse()
                body = json.loads(resp.read() or b"{}")
                self.answers.append((resp.status, (body.get("api") or {}).get("env")))
            except (OSError, http.client.HTTPException, ValueError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            time.sleep(0.01)


class Shop(StarterShop):
    def reset(self) -> None:
        assert self.run("switch", "api", "--back").returncode == 0


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, docker_engine: None) -> Iterator[Shop]:
    with starter_shop(tmp_path_factory.mktemp("canary-auto"), Shop) as shop:
        root = shop.root
        (root / "presets" / "strategies").mkdir(parents=True)
        (root / "presets" / "strategies" / "quick.yaml").write_text(QUICK)
        run_git(root, "add", "-A")
        run_git(root, "commit", "-qm", "test presets")
        api = root / "services" / "api" / "app.py"
        original = api.read_text()
        for branch, text in (
            ("good", original.replace('"SHOP_VERSION", "v1"', '"SHOP_VERSION", "v2"')),
            ("bad", original.replace('status = 502 if "error" in stock else 200', "status = 500")),
        ):
            assert text != original
            run_git(root, "checkout", "-q", "main")
            run_git(root, "checkout", "-q", "-b", branch)
            api.write_text(text)
            run_git(root, "commit", "-qam", f"api: {branch}")
            shop.ok("up", "--detach")
        run_git(root, "checkout", "-q", "main")
        yield shop


@pytest.fixture
def load(shop: Shop) -> Iterator[Load]:
    shop.reset()
    running = Load(shop.port, shop.host())
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running
    running.stop.set()
    thread.join(timeout=15)


def api_envs(shop: Shop, n: int = 30) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        status, body, _ = get(shop.port, shop.host())
        seen[f"{status} {body.get('api', {}).get('env')}"] += 1
    return seen


def test_a_fork_answering_500_is_aborted_and_gets_no_default_traffic(shop: Shop, load: Load) -> None:
    done = shop.run("canary", "api", "--auto", "--preset", "quick", "--branch", "bad")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "api@bad at 20%: waiting for 10 requests without x-devmesh-env" in done.stderr
    assert ("api: aborted at step 1 of 3 (20%): error rate 100.0% is above the baseline's 0.0% "
            "+ 1 point(s) (canary ") in done.stderr
    assert "hint: the baseline serves every request again" in done.stderr
    # the baseline serves everything again, and the stored strategy says why
    assert api_envs(shop) == Counter({"200 baseline": 30})
    routes = shop.run("routes").stdout
    assert "canary: 0% of requests without x-devmesh-env go to bad's version of api — aborted at step 1" in routes
    # what the mesh recorded agrees: bad's version answered 500s, and only while at 20 %
    report = json.loads(shop.run("traffic", "--json", "--last", "0", "--service", "api").stdout)
    bad = next(v for v in report["versions"] if v["env"] == "bad")
    assert bad["error_pct"] == 100.0 and bad["requests"] >= 10
    # the next command explains it too, and a canary by hand starts again from the first step
    again = shop.run("canary", "api", "--next", "--preset", "quick", "--branch", "bad")
    assert again.returncode == 0 and "api: canary: 20% of requests" in again.stdout
    assert "api's canary was left by --auto: aborted at step 1 of 3 (20%): error rate" in again.stderr
    assert "aborted" not in shop.run("routes").stdout


def test_a_healthy_fork_reaches_the_last_step(shop: Shop, load: Load) -> None:
    done = shop.run("canary", "api", "--auto", "--preset", "quick", "--branch", "good")
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("step 1 of 3 (20%) passed", "step 2 of 3 (50%) passed", "step 3 of 3 (100%) passed"):
        assert step in done.stderr, done.stderr
    assert "api: auto: passed every step (20%, 50%, 100%)" in done.stdout
    assert api_envs(shop) == Counter({"200 good": 30})
    assert "canary: 100% of requests without x-devmesh-env go to good's version of api" in shop.run("routes").stdout
    assert all(status == 200 for status, _ in load.answers)  # no request failed on the way


def test_ctrl_c_leaves_the_step_explained_and_auto_goes_on_from_it(shop: Shop) -> None:
    shop.reset()  # no load: the first step waits for its requests
    env = {**os.environ, "DEVMESH_ENVOY_IMAGE": ENVOY_IMAGE, **shop.env}
    proc = subprocess.Popen([sys.executable, "-m", "devmesh", "canary", "api", "--auto", "--preset", "quick",
                             "--branch", "good"], cwd=shop.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    lines: list[str] = []
    while not any("waiting for" in line for line in lines):
        line = proc.stderr.readline()
        assert line, "".join(lines)
        lines.append(line)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "auto analysis stopped by hand at step 1 of 3 (20%)" in err
    routes = shop.run("routes").stdout
    assert "20% of requests without x-devmesh-env go to good's version of api — auto analysis stopped by hand" in routes
    assert api_envs(shop, 40)["200 good"] > 0  # still at 20 %


def test_thresholds_that_make_no_sense_are_refused(shop: Shop) -> None:
    nonsense = shop.root / "presets" / "strategies" / "nonsense.yaml"
    before = shop.run("routes").stdout
    try:
        for old, new, wanted in (
                ("max_latency_ratio: 1.5", "max_latency_ratio: 0.5", "a ratio of at least 1"),
                ("min_requests: 10", "min_requests: 0", "a whole number of requests, at least 1"),
                ("step_timeout: 60", "step_timeout: -1", "seconds above 0"),
                ("latency_slack_ms: 50", "latency_slack: 50", "not an analysis threshold")):
            nonsense.write_text(QUICK.replace(old, new))
            done = shop.run("canary", "api", "--auto", "--preset", "nonsense", "--branch", "good")
            assert done.returncode == 2, done.stderr
            assert "nonsense.yaml: defaults.analysis." in done.stderr and wanted in done.stderr, done.stderr
    finally:
        nonsense.unlink()
    assert shop.run("routes").stdout == before  # nothing was applied
    done = shop.run("canary", "api", "--auto", "--weight", "20")
    assert done.returncode == 2 and "--auto takes no --weight" in done.stderr
