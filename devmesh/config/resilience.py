"""A service's traffic policy: timeouts, retries, circuit breaking and outlier detection, as
both runtimes render it (see docs/strategies.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from devmesh.config.diagnostics import describe
from devmesh.config.fields import StrictModel

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
# Envoy's durations stop near 10,000 years and Istio's at what protobuf holds; no request,
# retry or ejection in a preview environment needs more than a day, so that is the bound.
MAX_DURATION_S = 24 * 3600.0
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
RETRY_CONDITIONS = ("5xx", "connect-failure", "gateway-error", "refused-stream", "reset",
                    "retriable-4xx")


def _duration(value: Any) -> float:
    """``30s``, ``1.5s``, ``250ms``, ``2m`` or a number of seconds → seconds."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION_RE.fullmatch(value.strip())
        if found:
            seconds = float(found.group(1)) * _DURATION_UNITS[found.group(2)]
    if seconds is None or (0 < seconds < 0.001):
        raise PydanticCustomError(
            "devmesh_duration", "expected a duration such as 30s, 1.5s, 250ms or 2m, got {got}",
            {"got": describe(value)},
        )
    if not seconds <= MAX_DURATION_S:  # also NaN
        raise PydanticCustomError(
            "devmesh_duration", "expected a duration of at most 24h, got {got}",
            {"got": describe(value)},
        )
    return round(seconds, 3)


# Istio's connection pool and outlier detection settings are int32 (Envoy's uint32).
INT32_MAX = 2**31 - 1
# Retries beyond a handful only multiply load on a failing service; Istio takes an int32, but
# a hundred is already far past any sensible setting.
MAX_RETRY_ATTEMPTS = 100


def _count(minimum: int, maximum: int = INT32_MAX) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise PydanticCustomError(
                "devmesh_count", "expected a whole number of at least {min}, got {got}",
                {"min": minimum, "got": describe(value)},
            )
        if value > maximum:
            raise PydanticCustomError(
                "devmesh_count", "expected a whole number of at most {max}, got {got}",
                {"max": maximum, "got": describe(value)},
            )
        return value

    return check


def _percentage(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise PydanticCustomError(
            "devmesh_percent", "expected a whole number 0–100, got {got}", {"got": describe(value)}
        )
    return value


def _retry_on(value: Any) -> tuple[str, ...]:
    words = [w.strip() for w in value.split(",")] if isinstance(value, str) else None
    if not words or not all(w in RETRY_CONDITIONS for w in words):
        raise PydanticCustomError(
            "devmesh_retry_on",
            "expected retry conditions separated by commas, from {known}; got {got}",
            {"known": ", ".join(RETRY_CONDITIONS), "got": describe(value)},
        )
    return tuple(dict.fromkeys(words))


Duration = Annotated[float, BeforeValidator(_duration)]
Count = Annotated[int, BeforeValidator(_count(0))]
RetryAttempts = Annotated[int, BeforeValidator(_count(0, MAX_RETRY_ATTEMPTS))]
PositiveCount = Annotated[int, BeforeValidator(_count(1))]
Percentage = Annotated[int, BeforeValidator(_percentage)]
RetryOn = Annotated[tuple[str, ...], BeforeValidator(_retry_on)]


class RetrySettings(StrictModel):
    """Retry ``attempts`` more times on ``retry_on``; 0 attempts turns retries off."""

    attempts: RetryAttempts = 2
    retry_on: RetryOn = ("connect-failure", "refused-stream")
    per_try_timeout: Duration = 0.0  # 0: only the request timeout applies


class CircuitBreakerSettings(StrictModel):
    max_connections: PositiveCount = 1024
    max_pending_requests: PositiveCount = 1024
    max_requests: PositiveCount = 1024
    max_retries: Count = 3


class OutlierDetectionSettings(StrictModel):
    consecutive_5xx: PositiveCount = 5
    interval: Duration = 10.0
    base_ejection_time: Duration = 30.0
    max_ejection_percent: Percentage = 100


class RateLimitSettings(StrictModel):
    """At most ``requests_per_second`` to each version of the service, with bursts of up to
    ``burst`` (0: as many as a second's); 0 requests per second: no limit."""

    requests_per_second: Count = 0
    burst: Count = 0


class ResilienceSettings(StrictModel):
    """A service's traffic policy (from its preset, usually): both runtimes render it."""

    timeout: Duration = 0.0  # 0: no limit
    retries: RetrySettings | None = None
    circuit_breaker: CircuitBreakerSettings | None = None
    outlier_detection: OutlierDetectionSettings | None = None
    rate_limit: RateLimitSettings | None = None

