"""Quantities as people and proxies read them: durations and byte sizes."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """Seconds as a protobuf duration string, which Istio and Envoy both read: ``30s``, ``0.25s``.

    Millisecond precision, with no trailing zeros, so ``1.0`` is ``1s`` and not ``1.000s``.
    """
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def byte_size(size: int) -> str:
    """A byte count in binary units for a progress line: ``512 B``, ``1.5 KiB``, ``2.0 GiB``.

    Whole bytes below 1 KiB, one decimal above; GiB is the largest unit, so a huge size
    stays in GiB rather than growing a unit nobody reads.
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
