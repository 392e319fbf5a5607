"""Quantities as proxies read them: durations."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """Seconds as a protobuf duration string, which Istio and Envoy both read: ``30s``, ``0.25s``.

    Millisecond precision, with no trailing zeros, so ``1.0`` is ``1s`` and not ``1.000s``.
    """
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"

