"""The daemon: one runner per configured target, safe reloads, cached exposition.

Reload swaps in a new config only after all of it has parsed; a bad file keeps the old
config running, logs one line and sets cdnprobe_config_last_reload_successful to 0.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from prober.config import AnyTarget, Config, load_config
from prober.daemon.metrics import DaemonCollector, render, render_counted
from prober.daemon.runner import ReportHook, TargetRunner
from prober.daemon.shard import Shard, select
from prober.daemon.snapshot import TargetSnapshot
from prober.daemon.tasks import Tasks
from prober.errors import ConfigError
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
        self._slots = asyncio.Semaphore(config.concurrency)
        self.runners: dict[str, TargetRunner] = {}
        self.reload_ok = True
        self.reload_at: datetime | None = clock()
        self._reload_lock = asyncio.Lock()
        self._cached: tuple[tuple[tuple[object, ...], int], bytes] = (((), 0), b"")
        self.tasks = Tasks(lambda: self.runners, clock)
        self._gzipped: bytes | None = None
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
            self._slots = asyncio.Semaphore(new.concurrency)
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
        """The text format: probe series rendered once per published cycle, process live.

        Snapshots are replaced whole on every change, so "the same snapshot objects and
        reload state as last time" means the cached bytes are still exact.
        """
        # the task counts by value (small ints are not always the same object)
        tasks = sum(self.tasks.outcomes.values())
        key = (*self.snapshots(), self.reload_ok, self.reload_at)
        (cached_key, cached_tasks), body = self._cached
        if (
            tasks != cached_tasks
            or len(key) != len(cached_key)
            or any(a is not b for a, b in zip(key, cached_key, strict=True))
        ):
            probes, counts = render_counted(self.snapshots())
            self._check_budget(counts)
            body = probes + generate_latest(self.daemon_registry)
            self._cached = ((key, tasks), body)
            self._gzipped = None
        return body + generate_latest(self.process_registry)

    def exposition_gzip(self) -> bytes:
        """The same, gzip-encoded: the cached part compressed once per change, the live
        process series as a second gzip member (a reader takes the members as one stream)."""
        body = self.exposition()
        cached = self._cached[1]
        if self._gzipped is None:
            self._gzipped = gzip.compress(cached, compresslevel=6, mtime=0)
        return self._gzipped + gzip.compress(body[len(cached) :], compresslevel=1, mtime=0)

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
