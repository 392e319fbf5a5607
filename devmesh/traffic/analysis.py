"""A canary judged by its numbers against the baseline's over the same window. Pure.

Both sides count only requests without the routing header (the traffic the canary splits;
previews and mirror copies are left out). A step is judged once each side has served
``min_requests`` of them: the canary passes when its error rate is at most the baseline's plus
``max_error_increase`` points, and its p95 latency at most ``max_latency_ratio`` × the
baseline's, or the baseline's plus ``latency_slack_ms``, whichever is more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from devmesh.traffic.stats import VersionFigures


@dataclass(frozen=True)
class Thresholds:
    min_requests: int = 20
    max_error_increase: float = 1.0
    max_latency_ratio: float = 1.2
    latency_slack_ms: int = 5
    step_timeout: float = 300.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, float]) -> Thresholds:
        return cls(int(settings["min_requests"]), float(settings["max_error_increase"]),
                   float(settings["max_latency_ratio"]), int(settings["latency_slack_ms"]),
                   float(settings["step_timeout"]))

    def latency_limit(self, baseline_p95: int) -> float:
        return max(baseline_p95 * self.max_latency_ratio, baseline_p95 + self.latency_slack_ms)


def answered(figures: VersionFigures) -> int:
    """Requests the version answered itself (a rate limit's refusals are not its answers)."""
    return figures.requests - figures.limited


def figures_text(figures: VersionFigures) -> str:
    p95 = "-" if figures.p95_ms is None else f"{figures.p95_ms} ms"
    return (f"{answered(figures)} requests, {figures.error_pct:.1f}% errors "
            f"({figures.failed}), p95 {p95}")


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str  # why it failed, or what it passed with
    canary: VersionFigures
    baseline: VersionFigures

    def figures(self) -> str:
        return f"canary {figures_text(self.canary)}; baseline {figures_text(self.baseline)}"


def judge(canary: VersionFigures, baseline: VersionFigures, t: Thresholds) -> Verdict | None:
    """The verdict on one step, or None while either side has too few requests."""
    if answered(canary) < t.min_requests or answered(baseline) < t.min_requests:
        return None
    allowed = baseline.error_pct + t.max_error_increase
    if canary.error_pct > allowed:
        return Verdict(False, f"error rate {canary.error_pct:.1f}% is above the baseline's "
                              f"{baseline.error_pct:.1f}% + {t.max_error_increase:g} point(s)",
                       canary, baseline)
    if canary.p95_ms is not None and baseline.p95_ms is not None:
        limit = t.latency_limit(baseline.p95_ms)
        if canary.p95_ms > limit:
            return Verdict(False, f"p95 latency {canary.p95_ms} ms is above {limit:g} ms "
                                  f"({t.max_latency_ratio:g} × the baseline's {baseline.p95_ms} ms, "
                                  f"or + {t.latency_slack_ms} ms)", canary, baseline)
    return Verdict(True, f"error rate {canary.error_pct:.1f}% (allowed {allowed:.1f}%), "
                         f"p95 {canary.p95_ms} ms", canary, baseline)
