"""`cdnprobe wait`: the publish gate. Rounds of `check` until one in which every edge is
healthy and consistent, or the deadline; which edges have converged, and since when.

The rounds run one after another on the same connections (a CheckSession): a round that
overruns `every` is followed at once by the next, never overlapped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prober.check import CheckSession
from prober.kinds.base import Clock, utc_now
from prober.model import Kind, Report, TargetReport, Verdict

EdgeKey = tuple[str, str]  # (target name, address)


def round_ok(report: Report) -> bool:
    """What `check` exits 0 on: every name resolved, every object healthy."""
    return not any(t.dns_error for t in report.targets) and all(
        o.healthy for t in report.targets for o in t.objects
    )


def edge_health(target: TargetReport) -> dict[str, bool]:
    """Per edge address: ok on every object of the target, with the origin answering and
    each plain object served (an edge agreeing on a 404 has not converged)."""
    healthy: dict[str, bool] = {e.address: True for e in target.edges}
    for obj in target.objects:
        served = obj.origin_error is None and (obj.kind is not Kind.PLAIN or obj.reference_served)
        for result in obj.results:
            ok = result.verdict is Verdict.OK and served
            healthy[result.edge.address] = healthy.get(result.edge.address, True) and ok
    return healthy


@dataclass(slots=True)
class Convergence:
    """Since when each edge has stayed ok (None: not ok in the last round). Pure."""

    since: dict[EdgeKey, datetime | None] = field(default_factory=dict)

    def update(self, report: Report, now: datetime) -> None:
        seen: dict[EdgeKey, datetime | None] = {}
        for target in report.targets:
            for address, ok in edge_health(target).items():
                key = (target.name, address)
                seen[key] = (self.since.get(key) or now) if ok else None
        self.since = seen  # an edge that left DNS is no longer waited for

    @property
    def waiting(self) -> list[EdgeKey]:
        return [key for key, since in self.since.items() if since is None]

    def progress(self, rounds: int) -> str:
        total, waiting = len(self.since), self.waiting
        line = f"round {rounds}: {total - len(waiting)} of {total} edges converged"
        if waiting:
            line += "; waiting for " + ", ".join(address for _, address in waiting)
        return line


@dataclass(frozen=True, slots=True)
class WaitResult:
    report: Report  # the last round
    converged: bool
    rounds: int
    elapsed_s: float
    since: dict[EdgeKey, datetime | None]
    ever_resolved: bool  # some round resolved every name


async def wait_until_converged(
    session: CheckSession,
    *,
    deadline_s: float,
    every_s: float,
    names: Sequence[str] = (),
    progress: Callable[[str], None] = lambda line: None,
    clock: Clock = utc_now,
) -> WaitResult:
    started = time.monotonic()
    convergence = Convergence()
    rounds, ever_resolved = 0, False
    while True:
        round_started = time.monotonic()
        report = await session.round(names)
        rounds += 1
        ever_resolved = ever_resolved or not any(t.dns_error for t in report.targets)
        convergence.update(report, clock())
        progress(convergence.progress(rounds))
        elapsed = time.monotonic() - started
        done = round_ok(report)
        if done or elapsed >= deadline_s:
            return WaitResult(report, done, rounds, elapsed, dict(convergence.since), ever_resolved)
        pause = every_s - (time.monotonic() - round_started)
        await asyncio.sleep(max(0.0, min(pause, deadline_s - elapsed)))
