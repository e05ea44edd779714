"""The probe series through prometheus_client's own objects: the reference the daemon's
text writer (prober.daemon.metrics) is held to, byte for byte, and the benchmark's
rendering-on-every-scrape baseline. Test and benchmark code, not the product."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from prober.daemon.metrics import Families
from prober.daemon.snapshot import TargetSnapshot


class ReferenceFamily:
    """One gauge or counter family as prometheus_client's Metric, filled like the text one."""

    def __init__(self, name: str, doc: str, labels: list[str], kind: str) -> None:
        family = GaugeMetricFamily if kind == "gauge" else CounterMetricFamily
        self.metric: Metric = family(name, doc, labels=labels)

    def key(self, values: list[str]) -> list[str]:
        return values

    def add(self, key: list[str], value: float) -> None:
        self.metric.add_metric(key, value)  # type: ignore[attr-defined]

    add_metric = add  # the key is the label values themselves

    def __len__(self) -> int:
        return len(self.metric.samples)


def families(snapshots: Iterable[TargetSnapshot]) -> Iterator[Metric]:
    out = Families(ReferenceFamily)
    for snap in snapshots:
        out.add_target(snap)
    for family in vars(out).values():
        yield family if isinstance(family, Metric) else family.metric


class SnapshotCollector(Collector):
    """Yields the families of whatever snapshots `source` returns at collect time."""

    def __init__(self, source: Callable[[], Iterable[TargetSnapshot]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        return families(self._source())
