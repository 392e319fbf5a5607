"""How fast the traffic pipeline reads the mesh's records, and whether its memory stays flat.

    python benchmarks/traffic_ingest.py [--records 1000000] [--checkpoints 5]

Generates access log lines in the Envoy record format (devmesh.traffic.records) — three-hop
requests through the gateway, by preview host or not, a few 5xx, some 429s, a mirror copy now
and then — one record a millisecond of log time, and feeds them through a ``TrafficStore`` as
``devmesh traffic`` and the analysis do. Prints:

- the rate of ``json.loads`` alone on the same lines (the floor of any JSON reader: the
  baseline of this run), and of the whole pipeline (read, hop, window figures, latest hops),
  with their ratio; the target is at least 20,000 records/s;
- at each checkpoint, the memory Python holds (tracemalloc) and the process's RSS: flat means
  the later checkpoints hold no more than the first;
- how long building the chains of the latest hops and the figures takes (what a screen
  refresh does).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
import tracemalloc
from collections.abc import Iterator

from devmesh.traffic.records import FORMAT, GATEWAY, RecordReader, dotted_upstream
from devmesh.traffic.store import TrafficStore

CALLERS = {"172.18.0.2": "web@baseline", "172.18.0.3": "api@baseline", "172.18.0.4": "api@feat",
           "172.18.0.5": "web@feat"}


def lines(n: int, seed: int = 7) -> Iterator[str]:
    rng = random.Random(seed)
    start = 1_796_000_000.0
    made = 0
    request = 0
    while made < n:
        request += 1
        at = start + made / 1000
        preview = rng.random() < 0.3
        env = "feat" if preview else None
        api_env = "feat" if preview or rng.random() < 0.2 else "baseline"
        status = 429 if rng.random() < 0.02 else (500 if rng.random() < 0.01 else 200)
        rid = f"{request:08x}-5a7e-4c1b-9f00-{request:012x}"
        base = {"devmesh": FORMAT, "kind": "request", "route_header": env, "method": "GET", "path": "/",
                "flags": "RL" if status == 429 else "-", "attempts": 1}
        hops = [
            dict(base, listener="mesh:8000", time=f"{at + 0.002:.3f}", id=rid, authority="stock:8000",
                 peer="172.18.0.4" if api_env == "feat" else "172.18.0.3", rule="stock-baseline",
                 upstream="stock.baseline", status=200, ms=rng.randint(1, 4)),
            dict(base, listener="mesh:8000", time=f"{at + 0.001:.3f}", id=rid, authority="api:8000",
                 peer="172.18.0.2", rule=f"api-{api_env}", upstream=f"api.{api_env}", status=status,
                 ms=rng.randint(3, 12)),
            dict(base, listener=GATEWAY, time=f"{at:.3f}", id=rid, authority="feat.shop.localhost:8080",
                 peer="172.18.0.1", rule="preview-feat", upstream="web.baseline", status=status,
                 ms=rng.randint(6, 30)),
        ]
        if rng.random() < 0.05:
            hops.append(dict(hops[1], kind="mirror", upstream="api.feat", authority="api-shadow:8000"))
        for hop in hops:
            yield json.dumps(hop)
        made += len(hops)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--checkpoints", type=int, default=5)
    args = parser.parse_args()

    sample = list(lines(100_000))
    began = time.perf_counter()
    for text in sample:
        json.loads(text)
    floor = len(sample) / (time.perf_counter() - began)
    store = TrafficStore(RecordReader(dotted_upstream, CALLERS.get))
    began = time.perf_counter()
    store.extend(sample)
    rate = len(sample) / (time.perf_counter() - began)
    print(f"json.loads alone: {floor:,.0f} records/s (the baseline of this run)")
    print(f"pipeline:         {rate:,.0f} records/s = {rate / floor:.2f}× json.loads (target ≥ 20,000/s)")

    # Ingest only is timed: each checkpoint's lines are made first.
    store = TrafficStore(RecordReader(dotted_upstream, CALLERS.get))
    every = max(args.records // args.checkpoints, 1)
    source = lines(args.records)
    done = 0
    first_rss = None
    while done < args.records:
        chunk = [next(source) for _ in range(min(every, args.records - done))]
        began = time.perf_counter()
        store.extend(chunk)
        rate = len(chunk) / (time.perf_counter() - began)
        done += len(chunk)
        del chunk
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        first_rss = first_rss or rss
        print(f"{done:>9,} records: {rate:,.0f} records/s, peak RSS {rss:.0f} MiB "
              f"({rss / first_rss:.2f}× the first checkpoint), {len(store.hops):,} hops kept")
    assert store.reader.unparsed == 0

    # What the store itself holds, traced, after a first and a fifth of the records.
    tracemalloc.start()
    traced = TrafficStore(RecordReader(dotted_upstream, CALLERS.get))
    held = []
    source = lines(args.records)
    for part in range(5):
        traced.extend(next(source) for _ in range(args.records // 5))
        held.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    print("store memory after each fifth of the records (traced): "
          + ", ".join(f"{h / 2**20:.1f} MiB" for h in held) + f" = {held[-1] / held[0]:.2f}× the first")

    began = time.perf_counter()
    chains = store.chains(last=200)
    figures = store.figures()
    took = (time.perf_counter() - began) * 1000
    print(f"chains of the latest {len(store.hops):,} hops and the figures of {len(figures)} versions: "
          f"{took:.0f} ms ({len(chains)} chains shown)")


if __name__ == "__main__":
    main()
