from __future__ import annotations

import pytest

from prober.discovery import parse_resolver
from prober.errors import UsageError
from prober.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("2", 2), (1.5, 1.5)],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 m", "5x", "m5", "-1s"])
def test_bad_durations_raise(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"), [("4096", 4096), ("1KiB", 1024), ("64MiB", 64 << 20), ("1G", 1 << 30), (7, 7)]
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "big", "1.5G", "1XB"])
def test_bad_sizes_raise(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
     ("[::1]:5353", ("::1", 5353)), ("::1", ("::1", 53))],
)  # fmt: skip
def test_resolver_specs(spec: str, parsed: tuple[str, int]) -> None:
    assert parse_resolver(spec) == parsed


@pytest.mark.parametrize("spec", ["dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1", "[::1]x"])
def test_bad_resolver_specs(spec: str) -> None:
    with pytest.raises(UsageError, match="bad resolver"):
        parse_resolver(spec)
