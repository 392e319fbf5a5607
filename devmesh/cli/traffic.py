"""`devmesh traffic`: what the mesh did with each request, from its own records.

Each request as the chain of versions that served it (``web@baseline → api@feat →
stock@baseline  200  12 ms``), then per service × version over the window: requests, requests/s,
error %, rate-limited (429) and p50/p95 latency. ``-f`` prints each request once the mesh has
logged all of it, and the figures when stopped (Ctrl-C).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import click

from devmesh.cli import State, pass_state
from devmesh.cli.output import table
from devmesh.cli.target import ENV_OPTION, RUNTIMES, open_for
from devmesh.errors import UserInputError
from devmesh.traffic.chains import build_chains
from devmesh.traffic.records import Hop
from devmesh.traffic.stats import DEFAULT_WINDOW, VersionFigures
from devmesh.traffic.store import Filter

# While following, a request is printed once no record of it came for this long (the mesh
# logs a hop when it is answered, and Envoy writes its log about once a second).
SETTLE_SECONDS = 1.5
_NOTHING = object()  # no hop came within a quarter second: only look for requests that settled


@click.command()
@click.option("--branch", "-b", help="Only requests that reached this branch's environment.")
@ENV_OPTION
@click.option("--service", "-s", help="Only requests that one of this service's versions served.")
@click.option("--grep", help="Only requests whose chain contains this text.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing requests as they come; the figures at Ctrl-C.")
@click.option("--last", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many of the latest requests to print (0: none, only the figures).")
@click.option("--window", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_WINDOW,
              show_default=True, help="Seconds of traffic the figures cover.")
@click.option("--tail", type=click.IntRange(min=0), default=None,
              help="Read only the last N lines of the mesh's log (default: all of it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with -f: one request a line).")
@click.option("--runtime", type=RUNTIMES, help="Override devmesh.yaml's runtime.")
@pass_state
def traffic(state: State, branch: str | None, env_name: str | None, service: str | None,
            grep: str | None, follow: bool, last: int, window: float, tail: int | None,
            as_json: bool, runtime: str | None) -> None:
    """Show each request's path through the mesh and each version's figures."""
    from devmesh.app.traffic import TrafficFeed

    scoped = branch is not None or env_name is not None
    rt, env, project = open_for(state, runtime, None, branch, env_name, need_env=scoped)
    if service is not None and project is not None and service not in project.services:
        raise UserInputError(f"--service: {project.path.name} has no service {service!r} "
                             f"(services: {', '.join(sorted(project.services))})")
    keep = Filter(env=env or None, service=service, text=grep)
    feed = TrafficFeed(rt, window=window)
    if follow:
        _follow(feed, keep, as_json=as_json, tail=tail)
        return
    store = feed.read(tail=tail)
    if as_json:
        click.echo(json.dumps(store.to_json(keep, last=last, now=time.time()), indent=2))
        return
    chains = store.chains(keep)
    shown = chains[-last:] if last else []
    if not store.reader.records:
        click.echo("no requests in the mesh's log yet")
    for chain in shown:
        click.echo(chain.line())
    if len(chains) > len(shown) and shown:
        click.echo(f"({len(chains) - len(shown)} earlier request(s) not shown; --last N shows more)")
    _print_figures(store.figures(keep, now=time.time()), window)
    for note in store.notes(chains):
        click.echo(f"note: {note}", err=True)


def _print_figures(figures: list[VersionFigures], window: float) -> None:
    if not figures:
        click.echo(f"\nno requests in the last {window:g} s")
        return

    def ms(value: int | None) -> str:
        return "-" if value is None else f"{value} ms"

    rows = [(f.service, f.env, str(f.requests), f"{f.rps:.2f}", f"{f.error_pct:.1f}",
             str(f.limited), ms(f.p50_ms), ms(f.p95_ms)) for f in figures]
    click.echo(f"\nlast {window:g} s, per version:")
    click.echo(table(("SERVICE", "VERSION", "REQUESTS", "REQ/S", "ERROR %", "LIMITED", "P50", "P95"), rows))


def _follow(feed: Any, keep: Filter, *, as_json: bool, tail: int | None) -> None:
    stop = threading.Event()
    hops: queue.Queue[Hop | BaseException | None] = queue.Queue()

    def read() -> None:
        try:
            for hop in feed.follow(tail=0 if tail is None else tail, stop=stop):
                hops.put(hop)
        except BaseException as exc:  # handed to the main thread, which raises it
            hops.put(exc)
        hops.put(None)

    reader = threading.Thread(target=read, name="traffic-follow", daemon=True)
    reader.start()
    pending: dict[str | None, tuple[float, list[Hop]]] = {}
    try:
        while True:
            item: Hop | BaseException | object | None
            try:
                item = hops.get(timeout=0.25)
            except queue.Empty:
                item = _NOTHING
            if isinstance(item, BaseException):
                raise item
            if item is None:
                break
            if isinstance(item, Hop):
                _, group = pending.get(item.request_id, (0.0, []))
                group.append(item)
                pending[item.request_id] = (time.monotonic(), group)
            now = time.monotonic()
            settled = [k for k, (at, _) in pending.items() if now - at >= SETTLE_SECONDS]
            done = [h for k in settled for h in pending.pop(k)[1]]
            for chain in build_chains(done):
                if keep.keeps(chain):
                    click.echo(json.dumps(chain.to_json()) if as_json else chain.line())
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
    if not as_json:
        _print_figures(feed.store.figures(keep, now=time.time()), feed.store.stats.window)
        for note in feed.store.notes(feed.store.chains()):
            click.echo(f"note: {note}", err=True)
