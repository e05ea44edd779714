"""What one target publishes after a cycle: its last report plus the running totals.

A snapshot is frozen and replaced whole, so a scrape sees one cycle or the next, never a mix.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from types import MappingProxyType

from prober.daemon.history import EdgeState, Version
from prober.model import TargetReport

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

_EMPTY: Mapping[object, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative counts per bucket (the last is +Inf), their sum and count."""

    buckets: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)
    total: float = 0.0

    @property
    def count(self) -> int:
        return self.buckets[-1]

    def observe(self, values: list[float]) -> Histogram:
        per_bucket = [0] * len(self.buckets)
        for value in values:  # the first bucket whose bound is >= value (le), else +Inf
            per_bucket[bisect_left(DURATION_BUCKETS, value)] += 1
        counts = zip(self.buckets, accumulate(per_bucket), strict=True)
        return Histogram(tuple(a + b for a, b in counts), self.total + sum(values))


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    name: str
    host: str
    paths: tuple[str, ...]
    interval_s: float
    report: TargetReport | None = None
    errors: Mapping[tuple[str, str], int] = field(default_factory=lambda: MappingProxyType({}))
    durations: Histogram = Histogram()
    cycles: int = 0
    skipped: int = 0
    edge_states: Mapping[tuple[str, str], EdgeState] = field(
        default_factory=lambda: MappingProxyType({})
    )
    versions: Mapping[str, tuple[Version, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    received: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    series: str = "full"  # full, or problems: per edge x path series only where not ok
