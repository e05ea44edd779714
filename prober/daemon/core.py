"""The daemon: one runner per configured target, safe reloads, cached exposition.

Reload swaps in a new config only after all of it has parsed; a bad file keeps the old
config running, logs one line and sets cdnprobe_config_last_reload_successful to 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import chain

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from prober.config import AnyTarget, Config, load_config
from prober.daemon.metrics import Compressed, DaemonCollector, filled, render
from prober.daemon.runner import ReportHook, TargetRunner
from prober.daemon.shard import Shard, select
from prober.daemon.snapshot import TargetSnapshot
from prober.daemon.tasks import Tasks
from prober.errors import ConfigError
from prober.fetch import Slots
from prober.kinds.base import Clock, utc_now

log = logging.getLogger("cdnprobe")


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        config_path: str | None = None,
        shard: Shard | None = None,
        clock: Clock = utc_now,
        on_report: ReportHook | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.shard = shard
        self._clock = clock
        self._on_report = on_report
        # one bound on requests in flight for every target, and the connections they share
        self._slots = Slots(config.concurrency)
        self.runners: dict[str, TargetRunner] = {}
        self.reload_ok = True
        self.reload_at: datetime | None = clock()
        self._reload_lock = asyncio.Lock()
        self._cached: tuple[tuple[tuple[object, ...], int], Compressed] = (
            ((), 0),
            Compressed.of(()),
        )
        self.tasks = Tasks(lambda: self.runners, clock)
        self.over_budget = False
        self._budget_logged: set[str] = set()
        reload_state = lambda: (self.reload_ok, self.reload_at)  # noqa: E731
        # What /metrics serves: the probe series written directly (metrics.render), then these.
        self.daemon_registry = CollectorRegistry(auto_describe=False)
        self.daemon_registry.register(
            DaemonCollector(
                reload_state, shard, lambda: dict(self.tasks.outcomes), lambda: self.over_budget
            )
        )
        self.process_registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.process_registry)
        PlatformCollector(registry=self.process_registry)

    # ---- targets ------------------------------------------------------------------------

    def start(self) -> None:
        self._apply(self.config, previous=None)

    def snapshots(self) -> list[TargetSnapshot]:
        return [runner.snapshot for runner in self.runners.values()]

    def _new_runner(self, target: AnyTarget) -> TargetRunner:
        return TargetRunner(
            target,
            slots=self._slots,
            dns_min_interval_s=self.config.dns_min_interval,
            concurrency_total=self.config.concurrency,
            clock=self._clock,
            on_report=self._published,
            series=self.config.series,
        )

    def _published(self, snapshot: TargetSnapshot) -> None:
        if self._on_report is not None:
            self._on_report(snapshot)

    def _apply(self, new: Config, previous: Config | None) -> list[TargetRunner]:
        """Start runners for new or changed targets; returns the runners that must stop."""
        rebuild = previous is not None and (
            new.concurrency != previous.concurrency
            or new.dns_min_interval != previous.dns_min_interval
            or new.series != previous.series
        )
        self.config = new
        if rebuild or previous is None:
            self._slots = Slots(new.concurrency)
        mine = self.my_targets(new)
        retired = [r for name, r in self.runners.items() if name not in {t.name for t in mine}]
        runners: dict[str, TargetRunner] = {}
        for target in mine:
            old = self.runners.get(target.name)
            if old is not None and old.config == target and not rebuild:
                runners[target.name] = old
                continue
            runner = self._new_runner(target)
            if old is not None:
                if old.config.url == target.url:
                    runner.inherit(old)
                retired.append(old)
            runner.start()
            runners[target.name] = runner
        self.runners = runners
        return retired

    def my_targets(self, config: Config) -> list[AnyTarget]:
        """The targets this instance probes: all, or its shard's."""
        return select(config.targets, [t.name for t in config.targets], self.shard)

    # ---- reload -------------------------------------------------------------------------

    async def reload(self) -> str | None:
        """Re-read the config file; returns the error, or None when the new config is live."""
        if self.config_path is None:
            return "no config file to reload (demo)"
        async with self._reload_lock:
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                self.reload_ok = False
                log.error("config reload failed, keeping the running config: %s", exc)
                return str(exc)
            if new.listen != self.config.listen:
                log.warning("listen changed to %s: takes effect on restart", new.listen)
            retired = self._apply(new, self.config)
            self.reload_ok, self.reload_at = True, self._clock()
            targets = f"{len(new.targets)} target" + ("s" * (len(new.targets) != 1))
            log.info("config reloaded: %s, %d probed here", targets, len(self.runners))
        await asyncio.gather(*(r.drain(grace_s=0) for r in retired))
        return None

    async def stop(self, grace_s: float = 3.0) -> None:
        await asyncio.gather(*(r.drain(grace_s) for r in self.runners.values()))
        await self.tasks.stop()

    # ---- exposition ---------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The text format: probe series rendered once per published cycle, process live."""
        return b"".join(self.exposition_body(gzip=False)[1])

    def exposition_gzip(self) -> bytes:
        return b"".join(self.exposition_body(gzip=True)[1])

    def exposition_body(self, gzip: bool) -> tuple[int, Iterator[bytes]]:
        """What a scrape sends: its length, and its parts one after the other. The probe and
        daemon series are rendered once per change and kept gzip-encoded only (3 MiB instead
        of 90 at a million series, most of the memory a render leaves behind): gzip's
        scrapers (Prometheus) get those bytes as they are, and the others get them
        decompressed chunk by chunk. The process series follow, live, as a second gzip
        member for gzip (a reader takes the members as one stream, as Prometheus does)."""
        cached = self._cached_body()
        live = generate_latest(self.process_registry)
        if gzip:
            tail = Compressed.of((live,)).gzip
            return len(cached.gzip) + len(tail), iter((cached.gzip, tail))
        return cached.size + len(live), chain(cached.chunks(), (live,))

    def _cached_body(self) -> Compressed:
        """The probe and daemon series. Snapshots are replaced whole on every change, so "the
        same snapshot objects and reload state as last time" means the cached bytes are
        still exact."""
        # the task counts by value (small ints are not always the same object)
        tasks = sum(self.tasks.outcomes.values())
        snapshots = self.snapshots()
        key = (*snapshots, self.reload_ok, self.reload_at)
        (cached_key, cached_tasks), body = self._cached
        if (
            tasks != cached_tasks
            or len(key) != len(cached_key)
            or any(a is not b for a, b in zip(key, cached_key, strict=True))
        ):
            families, counts = filled(snapshots)
            self._check_budget(counts)
            daemon = generate_latest(self.daemon_registry)  # after the budget: it reports it
            body = Compressed.of(chain(families.chunks(), (daemon,)))
            self._cached = ((key, tasks), body)
        return body

    def _check_budget(self, counts: dict[str, int]) -> None:
        """Above the series budget: one log line per target as it crosses, and a metric."""
        total = sum(counts.values())
        self.over_budget = total > self.config.series_budget
        if not self.over_budget:
            self._budget_logged.clear()
            return
        for name, count in sorted(counts.items(), key=lambda item: -item[1]):
            if name not in self._budget_logged:
                self._budget_logged.add(name)
                log.warning(
                    "target=%s exports %d series; this instance exports %d, over its "
                    "series_budget of %d: consider series: problems",
                    name, count, total, self.config.series_budget,
                )  # fmt: skip

    @staticmethod
    def exposition_of(snapshots: Iterable[TargetSnapshot]) -> bytes:
        return render(snapshots)
