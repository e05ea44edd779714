"""A daemon holding one realistic snapshot (edges x paths), for measuring /metrics alone."""

from __future__ import annotations

from datetime import UTC, datetime

from prober.compare import compare_object
from prober.config import Config, PlainTarget
from prober.daemon.core import Daemon
from prober.daemon.snapshot import Histogram, TargetSnapshot
from prober.model import DnsAnswer, Edge, Observation, TargetReport


def daemon_with_snapshot(edges: int, paths: int) -> Daemon:
    now = datetime.now(UTC)
    found = [Edge(f"192.0.2.{i}" if i < 250 else f"198.51.100.{i - 250}", 4) for i in range(edges)]
    objects = []
    for p in range(paths):
        observed = [
            (
                e,
                Observation(
                    200,
                    1000,
                    1000,
                    f"{(p + (i == 3)):064x}",
                    f'"{p}"',
                    "Mon, 23 Nov 2026 13:00:00 GMT",
                ),
            )
            for i, e in enumerate(found)
        ]
        objects.append(compare_object(f"https://h/p{p}", "h", f"/p{p}", observed))
    report = TargetReport(
        "bench", "h", DnsAnswer("h", tuple(found), "test"), tuple(objects), now, now
    )
    config = Config(
        targets=[PlainTarget(name="bench", url="https://h", paths=[f"/p{p}" for p in range(paths)])]
    )
    daemon = Daemon(config)
    snapshot = TargetSnapshot("bench", "h", tuple(f"/p{p}" for p in range(paths)), 30, report, {},
                              Histogram().observe([0.01] * edges * paths), 1)  # fmt: skip

    class Fixed:
        def __init__(self) -> None:
            self.snapshot = snapshot

    daemon.runners = {"bench": Fixed()}  # type: ignore[dict-item]  # only .snapshot is read
    return daemon
