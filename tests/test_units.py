"""The shared formatters of durations and byte sizes."""

from __future__ import annotations

import pytest

from devmesh.units import byte_size, duration


@pytest.mark.parametrize(("seconds", "text"), [
    (30, "30s"), (30.0, "30s"), (0.25, "0.25s"), (1.5, "1.5s"), (0.001, "0.001s"),
    (0.0004, "0s"), (0.0006, "0.001s"), (0, "0s"), (86400, "86400s"), (2.1234, "2.123s"),
])
def test_duration_is_a_protobuf_duration_with_millisecond_precision(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (1024 * 1024 - 1, "1024.0 KiB"), (1024 ** 2, "1.0 MiB"), (5 * 1024 ** 2 + 1024 ** 2 // 10, "5.1 MiB"),
    (1024 ** 3, "1.0 GiB"), (3 * 1024 ** 4, "3072.0 GiB"),
])
def test_byte_size_uses_binary_units_up_to_gib(size: int, text: str) -> None:
    assert byte_size(size) == text
