"""The shared formatter of durations."""

from __future__ import annotations

import pytest

from devmesh.units import duration


@pytest.mark.parametrize(("seconds", "text"), [
    (30, "30s"), (30.0, "30s"), (0.25, "0.25s"), (1.5, "1.5s"), (0.001, "0.001s"),
    (0.0004, "0s"), (0.0006, "0.001s"), (0, "0s"), (86400, "86400s"), (2.1234, "2.123s"),
])
def test_duration_is_a_protobuf_duration_with_millisecond_precision(seconds: float, text: str) -> None:
    assert duration(seconds) == text

