"""Soak: 500 cycles of the daemon's own runner against a lab with mixed faults. Nothing leaks
(asyncio tasks, file descriptors, RSS stay within a bound after warm-up), every cycle publishes,
and the error counters equal the faults injected: nothing double-counted, nothing dropped.

Set SOAK_REPORT=FILE to keep the figures (the README's Reliability section quotes one run).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from prober.config import PlainTarget
from prober.daemon.runner import TargetRunner
from tests.conftest import FaultEdgeFactory
from tests.lab import HOST, Lab

PATH = "/dists/stable/InRelease"
CYCLES, WARM_UP = 500, 50


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_soak_500_cycles_mixed_faults(lab: Lab, fault_edge: FaultEdgeFactory) -> None:
    lab.write(PATH, b"Suite: stable\n" * 100, mtime=1_790_000_000)
    lab.write(PATH, b"Suite: old\n" * 90, edges=["127.0.0.3"], mtime=1_789_990_000)
    truncate = fault_edge("127.0.0.5", "truncate")
    reset = fault_edge("127.0.0.6", "reset")
    every_other = fault_edge("127.0.0.7", "every_other")
    lab.set_dns(
        HOST, ["127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6", "127.0.0.7", "127.0.0.9"]
    )
    config = PlainTarget(
        name="soak", url=f"https://{HOST}:{lab.port}", paths=[PATH], resolvers=[lab.resolver],
        ca_file=lab.ca_file, timeout=5, interval=1, connections_per_edge=2,
    )  # fmt: skip

    async def soak() -> dict[str, object]:
        runner = TargetRunner(config, slots=asyncio.Semaphore(64), dns_min_interval_s=0)
        started = time.monotonic()
        published, previous = 0, None
        warm: dict[str, int] = {}
        peak = {"fds": 0, "tasks": 0, "rss": 0}
        for cycle in range(1, CYCLES + 1):
            snapshot = await runner.cycle_now()
            if snapshot.cycles == cycle and snapshot.report is not previous:
                published += 1  # this cycle, and only it, replaced the published result
            previous = snapshot.report
            now = {"fds": fds(), "tasks": len(asyncio.all_tasks()), "rss": rss_bytes()}
            if cycle == WARM_UP:
                warm = dict(now)
            if cycle > WARM_UP:
                peak = {k: max(peak[k], now[k]) for k in peak}
        await runner.drain(grace_s=0)
        assert snapshot.report is not None
        return {
            "cycles": snapshot.cycles, "published": published, "errors": dict(snapshot.errors),
            "warm": warm, "peak": peak, "seconds": round(time.monotonic() - started, 1),
            "stale": [r.verdict for o in snapshot.report.objects for r in o.results if r.edge.address == "127.0.0.3"],
        }  # fmt: skip

    result = asyncio.run(soak())
    errors = result["errors"]
    assert isinstance(errors, dict)
    assert result["cycles"] == CYCLES and result["published"] == CYCLES
    assert errors == {
        ("127.0.0.5", "truncated"): truncate.requests,
        ("127.0.0.6", "truncated"): reset.requests,
        ("127.0.0.7", "protocol"): every_other.connections // 2,
        ("127.0.0.9", "connect"): CYCLES,
    }
    assert (truncate.requests, reset.requests, every_other.connections, every_other.requests) == (
        CYCLES,
    ) * 3 + (CYCLES // 2,)
    assert result["stale"] == ["stale"]
    warm, peak = result["warm"], result["peak"]
    assert isinstance(warm, dict) and isinstance(peak, dict)
    assert peak["fds"] <= warm["fds"] + 8
    assert peak["tasks"] <= warm["tasks"] + 2
    assert peak["rss"] <= warm["rss"] + 16 * 1024 * 1024
    if report := os.environ.get("SOAK_REPORT"):
        injected = truncate.requests + reset.requests + every_other.connections // 2 + CYCLES
        summary = {**result, "errors_counted": sum(errors.values()), "faults_injected": injected}
        Path(report).write_text(json.dumps({k: v for k, v in summary.items() if k != "errors"}))
