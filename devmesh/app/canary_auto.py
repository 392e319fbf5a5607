"""``canary SERVICE --auto``: walk the preset's steps, judging each by what the mesh measured.

At each step the canary's weight is applied, then the mesh's records are read as they come
(devmesh.app.traffic): the service's requests without the routing header that started after
the step did, for the branch's version and for the baseline. Once both have enough, the step
is judged (devmesh.traffic.analysis); a pass moves to the next step, a failure **aborts**: the
canary goes to weight 0 (the baseline serves everything again) and stays stored with the reason
and the figures, so ``routes`` and the next ``canary`` explain it. The last step is judged
too; when it leaves the baseline too few requests (100 %), it is compared with what the
baseline served over the whole run.

Stopping (Ctrl-C, or ``stop``) leaves the canary at the step it was at, stored with a status
saying so; ``canary --auto`` again goes on from that step. A step that waits longer than the
preset's ``step_timeout`` for its requests stops the run the same way.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from devmesh.app.strategies import Applied, _store, canary_sticky, current, require_fork
from devmesh.app.traffic import TrafficFeed
from devmesh.config.presets import analysis_settings, strategy_preset
from devmesh.errors import UserInputError
from devmesh.events import Sink, Step, discard
from devmesh.naming import BASELINE_ENV
from devmesh.plan.strategy import Canary
from devmesh.traffic.analysis import Thresholds, Verdict, figures_text, judge
from devmesh.traffic.records import Hop
from devmesh.traffic.stats import VersionFigures, WindowStats

if TYPE_CHECKING:
    from devmesh.config import Project
    from devmesh.runtime.base import Runtime

PROGRESS_SECONDS = 2.0
POLL_SECONDS = 0.25
# A request routed just before a new weight took effect may start a few ms after it was
# applied; hops starting within this margin of a step's start are left out of it.
SETTLE_SECONDS = 0.2
_FOREVER = 10.0**10  # a window no run outlasts: every hop since the step began


@dataclass(frozen=True)
class AutoOutcome:
    """How a run ended: ``passed`` (every step), ``aborted``, ``stopped`` (a step's requests did
    not come in time) or ``interrupted`` (Ctrl-C)."""

    result: str
    canary: Canary
    verdict: Verdict | None
    message: str


class _Watch:
    """The service's baseline-traffic hops of two versions, from a follower thread."""

    def __init__(self, feed: TrafficFeed, service: str, env: str) -> None:
        self.service, self.env = service, env
        self.stop = threading.Event()
        self.hops: queue.Queue[Hop | BaseException] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(feed,), name="canary-auto", daemon=True)
        self.run_stats = WindowStats(_FOREVER)

    def _read(self, feed: TrafficFeed) -> None:
        try:
            for hop in feed.follow(tail=0, stop=self.stop):
                if (hop.service == self.service and hop.env in (self.env, BASELINE_ENV)
                        and hop.route_header is None and not hop.mirror):
                    self.hops.put(hop)
        except BaseException as exc:  # raised again in the runner's thread
            self.hops.put(exc)

    def drain(self, step: WindowStats, since: float) -> None:
        while True:
            try:
                item = self.hops.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, BaseException):
                raise item
            self.run_stats.add(item)
            if item.time >= since:
                step.add(item)

    def figures(self, stats: WindowStats) -> tuple[VersionFigures, VersionFigures]:
        canary, baseline = stats.figures(versions=[(self.service, self.env), (self.service, BASELINE_ENV)])
        return canary, baseline


def auto_canary(project: Project, rt: Runtime, service: str, env: str, *, preset: str = "canary",
                sticky: str | None = None, sink: Sink = discard, stop: threading.Event | None = None,
                clock: Callable[[], float] = time.time) -> AutoOutcome:
    """Walk ``preset``'s steps for ``service``'s canary to ``env`` (see the module's docstring)."""
    require_fork(rt, env, service)
    chosen = strategy_preset(preset, "canary", project.root)
    t = Thresholds.from_settings(analysis_settings(chosen))
    steps = chosen.steps
    found = current(rt, service)
    same = found if isinstance(found, Canary) and found.env == env else None
    resume = same is not None and same.weight in steps and not (same.status or "").startswith("aborted")
    index = steps.index(same.weight) if resume and same is not None else 0
    header = project.routing.header
    sticky_name = canary_sticky(chosen, same, sticky, header)
    feed = TrafficFeed(rt)  # refuses a runtime whose records cannot be read, before any change
    watch = _Watch(feed, service, env)
    watch.thread.start()
    stop = stop or threading.Event()
    base = Canary(service, env, steps[index], sticky_name, steps, preset)
    canary = base
    verdict: Verdict | None = None

    def put(c: Canary) -> Applied:
        return _store(project, rt, c, sink)

    try:
        if resume:
            sink(Step(f"going on from step {index + 1} of {len(steps)} ({steps[index]}%)"))
        while True:
            weight = steps[index]
            where = f"step {index + 1} of {len(steps)} ({weight}%)"
            canary = replace(base, weight=weight, status=f"auto: judging {where}")
            put(canary)
            started = clock() + SETTLE_SECONDS
            step_stats = WindowStats(_FOREVER)
            sink(Step(f"{service}@{env} at {weight}%: waiting for {t.min_requests} requests "
                      f"without {header} on each side"))
            shown = clock()
            while True:
                if stop.wait(POLL_SECONDS):
                    raise KeyboardInterrupt
                watch.drain(step_stats, started)
                canary_figures, baseline_figures = watch.figures(step_stats)
                if baseline_figures.requests - baseline_figures.limited < t.min_requests and weight == 100:
                    baseline_figures = watch.figures(watch.run_stats)[1]
                verdict = judge(canary_figures, baseline_figures, t)
                if verdict is not None:
                    break
                if clock() - started > t.step_timeout:
                    message = (f"stopped at {where}: in {t.step_timeout:g} s the canary served "
                               f"{canary_figures.requests} and the baseline {baseline_figures.requests} "
                               f"of the {t.min_requests} requests each side needs")
                    canary = replace(canary, status=message)
                    put(canary)
                    return AutoOutcome("stopped", canary, None, message)
                if clock() - shown >= PROGRESS_SECONDS:
                    shown = clock()
                    sink(Step(f"{where}: canary {figures_text(canary_figures)}; "
                              f"baseline {figures_text(baseline_figures)}"))
            if not verdict.passed:
                message = f"aborted at {where}: {verdict.reason} ({verdict.figures()})"
                canary = replace(canary, weight=0, status=message)
                put(canary)
                return AutoOutcome("aborted", canary, verdict, message)
            sink(Step(f"{where} passed: {verdict.figures()}"))
            if index == len(steps) - 1:
                message = (f"auto: passed every step ({', '.join(f'{s}%' for s in steps)}); "
                           f"last: {verdict.figures()}")
                canary = replace(canary, status=message)
                put(canary)
                return AutoOutcome("passed", canary, verdict, message)
            index += 1
    except KeyboardInterrupt:
        message = (f"auto analysis stopped by hand at step {index + 1} of {len(steps)} "
                   f"({steps[index]}%): 'devmesh canary {service} --auto' goes on from there")
        canary = replace(canary, status=message)
        put(canary)
        return AutoOutcome("interrupted", canary, verdict, message)
    finally:
        watch.stop.set()


def check_auto_options(*, weight: int | None, next_step: bool, off: bool, tier: str | None) -> None:
    """``--auto`` walks the steps itself: the options that choose one are refused with it."""
    given = [name for name, value in (("--weight", weight is not None), ("--next", next_step),
                                       ("--off", off), ("--tier", tier is not None)) if value]
    if given:
        raise UserInputError(f"--auto takes no {', '.join(given)}: it walks the preset's steps on "
                             "the running environments itself")
