"""Limits: safe defaults, immutability and validation of every field."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from netaio_core import PROTOCOL_MAX_FRAME_SIZE, Limits


def test_defaults() -> None:
    limits = Limits()
    assert limits.max_frame_size == PROTOCOL_MAX_FRAME_SIZE == 9 + 2 * 0xFFFF
    assert limits.idle_timeout is None
    assert limits.frame_timeout is not None
    assert limits.frame_timeout > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_frame_size = 10  # type: ignore[misc]


def test_smallest_valid_values() -> None:
    limits = Limits(
        max_frame_size=9,
        max_connections=1,
        idle_timeout=0.001,
        frame_timeout=None,
        write_buffer_limit=1,
        write_timeout=0.001,
        connect_timeout=None,
        shutdown_grace=0,
    )
    assert limits.max_frame_size == 9
    assert limits.shutdown_grace == 0


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"max_frame_size": 8}, r"max_frame_size must be at least 9 \(one header\)"),
    ({"max_connections": 0}, r"max_connections must be at least 1"),
    ({"write_buffer_limit": 0}, r"write_buffer_limit must be at least 1"),
    ({"idle_timeout": 0}, r"idle_timeout must be positive or None"),
    ({"frame_timeout": -1.0}, r"frame_timeout must be positive or None"),
    ({"connect_timeout": 0.0}, r"connect_timeout must be positive or None"),
    ({"write_timeout": 0}, r"write_timeout must be positive"),
    ({"shutdown_grace": -0.5}, r"shutdown_grace >= 0"),
]


@pytest.mark.parametrize(("changes", "match"), INVALID, ids=[next(iter(c)) for c, _ in INVALID])
def test_invalid_values_are_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Limits(**changes)
