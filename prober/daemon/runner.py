"""One configured target inside the daemon: its schedule, its cycles, its running totals.

Cycles of one target never overlap: a tick that finds the previous cycle still running is
skipped and counted. After each cycle a new frozen TargetSnapshot replaces the old one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from types import MappingProxyType

from prober.config import AnyTarget
from prober.daemon.history import VerdictChange, VerdictTracker, VersionHistory
from prober.daemon.snapshot import TargetSnapshot
from prober.kinds import kind_of, revalidation
from prober.kinds.base import WATCH, Clock, ProbeContext, tools_for, utc_now
from prober.model import TargetReport
from prober.render import iso_utc, safe

log = logging.getLogger("cdnprobe")
ReportHook = Callable[[TargetSnapshot], None]


class RunnerStopped(RuntimeError):
    """A cycle asked of a runner that a reload or the daemon's stop is draining."""


class TargetRunner:
    def __init__(
        self,
        config: AnyTarget,
        *,
        slots: asyncio.Semaphore,
        dns_min_interval_s: float,
        concurrency_total: int = 64,
        clock: Clock = utc_now,
        on_report: ReportHook | None = None,
        series: str = "full",
    ) -> None:
        self.config = config
        self.row = kind_of(config)
        self.spec = self.row.spec(config)
        discoverer, fetcher = tools_for(
            config,
            slots=slots,
            concurrency_total=concurrency_total,
            dns_min_interval_s=dns_min_interval_s,
            # Keep connections across cycles: TLS handshakes are most of a probe's cost.
            keepalive_s=max(60.0, 2 * config.interval),
        )
        self._fetcher = fetcher
        self._context = ProbeContext(discoverer, fetcher, clock, max_in_flight=concurrency_total)
        self._clock = clock
        self._on_report = on_report
        self.history = VersionHistory()
        self.tracker = VerdictTracker()
        self._errors: dict[tuple[str, str], int] = {}
        self._dns_error: str | None = None
        paths = self.row.paths(self.spec)
        self.snapshot = TargetSnapshot(
            config.name, config.host, paths, config.interval, series=config.series or series
        )
        self._cycle: asyncio.Task[TargetSnapshot] | None = None
        # a cycle asked for while one runs: its future and the callers' start callbacks
        self._pending: tuple[asyncio.Future[TargetSnapshot], list[Callable[[], None]]] | None = None
        self._stopping = False
        self._schedule: asyncio.Task[None] | None = None
        # names the waiting tasks' expectations need read from the indexes (APT packages)
        self._watching: Counter[str] = Counter()

    def inherit(self, old: TargetRunner) -> None:
        """Keep what an earlier runner of the same target learnt (after a reload)."""
        self.history = old.history
        self.history.keep_only(set(self.snapshot.paths))
        self.tracker = old.tracker
        self._errors = old._errors
        # a copy: the old runner may still finish a cycle while it drains; without the old
        # runner's watched names (its tasks move here and watch them here)
        self._context.memory = dict(old._context.memory)
        # kept answers were taken under the old settings (CA, body limit, paths): the first
        # cycle after a reload that changed the target is a full pass
        self._context.memory.pop(revalidation.MEMORY, None)
        self._context.memory.pop(WATCH, None)
        self.snapshot = replace(
            old.snapshot,
            paths=self.snapshot.paths,
            interval_s=self.snapshot.interval_s,
            series=self.snapshot.series,
        )

    # ---- scheduling ---------------------------------------------------------------------

    def start(self) -> None:
        self._schedule = asyncio.create_task(
            self._run_schedule(), name=f"schedule:{self.config.name}"
        )

    async def _run_schedule(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.config.interval
        # A small random offset, so targets with the same interval do not fire together.
        await asyncio.sleep(random.uniform(0, min(interval, 10.0) / 4))
        next_at = loop.time()
        while True:
            if self.running:
                self.snapshot = replace(self.snapshot, skipped=self.snapshot.skipped + 1)
                log.warning(
                    "target=%s cycle skipped: the previous one is still running", self.config.name
                )
            else:
                self._start_cycle()
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    @property
    def running(self) -> bool:
        return self._cycle is not None and not self._cycle.done()

    def _start_cycle(self) -> asyncio.Task[TargetSnapshot]:
        self._cycle = asyncio.create_task(self._run_cycle(), name=f"cycle:{self.config.name}")
        return self._cycle

    async def cycle_now(self) -> TargetSnapshot:
        """Run one cycle now, or wait for the one already running; never two at once."""
        task = self._cycle if self.running and self._cycle else self._start_cycle()
        return await asyncio.shield(task)

    async def fresh_cycle(self, on_start: Callable[[], None] = lambda: None) -> TargetSnapshot:
        """The snapshot of a cycle that begins after this call (never a result from before
        it). With a cycle running, every caller shares the one pending cycle that starts when
        it ends: at most one running and one pending, however many callers."""
        if self._stopping:
            raise RunnerStopped(self.config.name)
        if not self.running:
            on_start()
            return await asyncio.shield(self._start_cycle())
        if self._pending is None:
            self._pending = (asyncio.get_running_loop().create_future(), [])
            assert self._cycle is not None
            self._cycle.add_done_callback(self._start_pending)
        future, starters = self._pending
        starters.append(on_start)
        return await asyncio.shield(future)

    def _start_pending(self, _: object) -> None:
        if self._pending is None:
            return
        future, starters = self._pending
        self._pending = None
        if self._stopping:
            future.set_exception(RunnerStopped(self.config.name))
            return
        # A scheduled cycle may have begun in the meantime: it began after every waiter's
        # call too, so they share it rather than start a second one beside it.
        task = self._cycle if self.running and self._cycle else self._start_cycle()
        for start in starters:
            start()

        def settle(done: asyncio.Task[TargetSnapshot]) -> None:
            if future.done():
                return
            if done.cancelled():
                future.cancel()
            elif done.exception() is not None:
                future.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                future.set_result(done.result())

        task.add_done_callback(settle)

    async def drain(self, grace_s: float) -> None:
        """Stop scheduling; let a running cycle finish within `grace_s`, then cancel it."""
        self._stopping = True
        if self._schedule is not None:
            self._schedule.cancel()
            await asyncio.gather(self._schedule, return_exceptions=True)
        if self._cycle is not None and not self._cycle.done():
            await asyncio.wait([self._cycle], timeout=grace_s)
            self._cycle.cancel()
            await asyncio.gather(self._cycle, return_exceptions=True)
        await self._fetcher.close()

    # ---- one cycle ----------------------------------------------------------------------

    async def _run_cycle(self) -> TargetSnapshot:
        try:
            report = await self._one_cycle()
        except Exception as exc:  # noqa: BLE001 - a bug in one cycle must not stop the daemon
            log.error("target=%s cycle failed: %s: %s", self.config.name, type(exc).__name__, exc)
            return self.snapshot
        self._publish(report)
        if self._on_report is not None:
            self._on_report(self.snapshot)
        return self.snapshot

    def watch(self, names: Iterable[str], *, stop: bool = False) -> None:
        """Cycles that start from now on also read these package names' versions (for a
        task's expectations), until the task stops watching them."""
        if stop:
            self._watching.subtract(names)
        else:
            self._watching.update(names)
        self._watching = +self._watching  # drop names nobody watches any more
        self._context.memory[WATCH] = frozenset(self._watching)

    async def _one_cycle(self) -> TargetReport:
        """One probe of this target's kind, with what the target remembers between cycles."""
        self._context.past = {path: self.history.past(path) for path in self.snapshot.paths}
        return await self.row.probe(self.spec, self._context)

    def _publish(self, report: TargetReport) -> None:
        now = report.finished_at
        for obj in report.objects:
            self.history.observe(obj, now)
        for change in self.tracker.update(report.objects, now):
            log.info(_change_line(self.config.name, change))
        self._log_dns(report)
        durations = self._count(report)
        old = self.snapshot
        self.snapshot = replace(
            old,
            report=report,
            errors=MappingProxyType(dict(self._errors)),
            received=MappingProxyType(self._received(report)),
            durations=old.durations.observe(durations),
            cycles=old.cycles + 1,
            edge_states=MappingProxyType(dict(self.tracker.states)),
            versions=MappingProxyType({p: self.history.versions(p) for p in old.paths}),
        )

    def _received(self, report: TargetReport) -> dict[str, int]:
        """Body bytes received per address (the fetcher counts every exchange, index files
        and origins included); an edge that left DNS, or an origin no longer asked, is
        forgotten, its series removed."""
        present = {e.address for e in report.edges} | set(report.origins)
        received = self._fetcher.received
        for address in [a for a in received if a not in present]:
            del received[address]
        return dict(received)

    def _count(self, report: TargetReport) -> list[float]:
        """Add this cycle's errors to the totals; forget edges that left DNS."""
        present = {e.address for e in report.edges}
        for key in [k for k in self._errors if k[0] not in present]:
            del self._errors[key]
        durations = []
        for obj in report.objects:
            for r in obj.results:
                durations.append(r.observation.elapsed_s)
                if r.observation.error is not None:
                    key = (r.edge.address, str(r.observation.error))
                    self._errors[key] = self._errors.get(key, 0) + 1
        return durations

    def _log_dns(self, report: TargetReport) -> None:
        if report.dns_error != self._dns_error:
            if report.dns_error:
                log.warning("target=%s dns failed: %s", self.config.name, report.dns_error)
            else:
                count = len(report.edges)
                log.info("target=%s dns recovered: %d addresses", self.config.name, count)
            self._dns_error = report.dns_error


def _change_line(target: str, change: VerdictChange) -> str:
    line = (
        f"target={target} path={safe(change.path)} address={change.address} "
        f"verdict={change.verdict} since={iso_utc(change.since)}"
    )
    if change.previous is not None:
        line += f" previous={change.previous}"
    if change.held_s is not None:
        line += f" previous_for={change.held_s:.0f}s"
    return line
