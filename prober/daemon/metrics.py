"""Target snapshots → Prometheus metric families. Pure, plus a collector for an injected registry.

Metrics are a view of the last published snapshot: an edge that left DNS is simply absent
from the next snapshot, so its series (and stale hash labels) vanish with no bookkeeping.
Hashes and ETags appear only as labels of cdnprobe_edge_object_info.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from prober import __version__
from prober.daemon.shard import Shard
from prober.daemon.snapshot import DURATION_BUCKETS, TargetSnapshot
from prober.errors import one_line
from prober.model import ObjectReport, Verdict

LAST = " (from the last probe cycle)"
LABEL_MAX = 64
STATE = {Verdict.OK: 0, Verdict.STALE: 1, Verdict.DIVERGENT: 2, Verdict.ERROR: 3}
EDGE = ["target", "address", "family"]
OBJECT = ["target", "path"]
EDGE_OBJECT = ["target", "path", "address"]


def label(value: str | None, limit: int = LABEL_MAX) -> str:
    """Edge-supplied text as a bounded label: control characters escaped, cut to `limit`."""
    return one_line(value)[:limit] if value else ""


_go_float = cast(Callable[[float], str], floatToGoString)  # the library's own float format
# Most values are small integers (0/1 flags, verdicts, HTTP statuses): their text, made once.
_SMALL = {n: _go_float(n) for n in range(600)}
# The rest are mostly timestamps (verdict since, last recovered) that stay the same from one
# cycle to the next: each formatted once while it lasts.
_go_float_seen = lru_cache(maxsize=1 << 14)(_go_float)


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


class _Text:
    """A gauge or counter family written straight as text, the bytes prometheus_client's
    generate_latest writes for the same samples (labels sorted by name; tested), at a
    fraction of the cost: no sample objects, and one label string shared by the families
    with the same labels."""

    __slots__ = ("_head", "_keys", "_lines", "_name", "_order")

    def __init__(self, name: str, doc: str, labels: list[str], kind: str) -> None:
        self._name = name
        help_text = doc.replace("\\", r"\\").replace("\n", r"\n")
        self._head = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
        self._order = sorted(range(len(labels)), key=lambda i: labels[i])
        self._keys = [labels[i] for i in self._order]
        self._lines: list[str] = []

    def key(self, values: list[str]) -> str:
        return ",".join(
            f'{k}="{_escape(values[i])}"' for k, i in zip(self._keys, self._order, strict=True)
        )

    def add(self, key: str, value: float) -> None:
        text = _SMALL.get(value)  # type: ignore[call-overload]
        if text is None:
            text = _go_float_seen(value)
        self._lines.append(f"{self._name}{{{key}}} {text}\n")

    def add_metric(self, values: list[str], value: float) -> None:
        self.add(self.key(values), value)

    def text(self) -> str:
        return self._head + "".join(self._lines)


class _Reference:
    """The same family through prometheus_client's objects: what /metrics would cost if it
    rendered through the library on every scrape (the benchmark's baseline)."""

    def __init__(self, name: str, doc: str, labels: list[str], kind: str) -> None:
        family = GaugeMetricFamily if kind == "gauge" else CounterMetricFamily
        self.metric: Metric = family(name, doc, labels=labels)

    def key(self, values: list[str]) -> list[str]:
        return values

    def add(self, key: list[str], value: float) -> None:
        self.metric.add_metric(key, value)  # type: ignore[attr-defined]

    add_metric = add  # the key is the label values themselves


class _Families:
    """The metric families of one exposition, filled target by target."""

    def __init__(self, text: bool = True) -> None:
        kind: Any = _Text if text else _Reference

        def g(name: str, doc: str, labels: list[str]) -> Any:
            return kind(name, doc, labels, "gauge")

        def c(name: str, doc: str, labels: list[str]) -> Any:
            return kind(name, doc, labels, "counter")

        self.edge_up = g(
            "cdnprobe_edge_up",
            "1 if the edge gave a complete response to every path" + LAST,
            labels=EDGE,
        )
        self.match = g(
            "cdnprobe_edge_object_match",
            "1 if the edge's object equals the reference" + LAST,
            labels=EDGE_OBJECT,
        )
        self.stale = g(
            "cdnprobe_edge_object_stale",
            "1 if the edge's object is an older version than the reference" + LAST,
            labels=EDGE_OBJECT,
        )
        self.state = g(
            "cdnprobe_edge_object_state",
            "Verdict of the edge's object: 0 ok, 1 stale, 2 divergent, 3 error" + LAST,
            labels=EDGE_OBJECT,
        )
        self.size = g(
            "cdnprobe_edge_object_size_bytes",
            "Bytes received for the object" + LAST,
            labels=EDGE_OBJECT,
        )
        self.lag = g(
            "cdnprobe_edge_object_lag_seconds",
            "Reference Last-Modified (or when the edge's version was superseded) minus the edge's;"
            " 0 when it matches" + LAST,
            labels=EDGE_OBJECT,
        )
        self.behind = g(
            "cdnprobe_edge_object_versions_behind",
            "How many references ago the edge's object was current; 0 when it matches" + LAST,
            labels=EDGE_OBJECT,
        )
        self.status = g(
            "cdnprobe_edge_http_status",
            "Last HTTP status code, 0 when none" + LAST,
            labels=EDGE_OBJECT,
        )
        self.since = g(
            "cdnprobe_edge_object_verdict_since_timestamp_seconds",
            "When the edge's object took its current verdict" + LAST,
            labels=EDGE_OBJECT,
        )
        self.recovered = g(
            "cdnprobe_edge_object_last_recovered_timestamp_seconds",
            "When the edge's object last went back to ok" + LAST,
            labels=EDGE_OBJECT,
        )
        self.variants = g(
            "cdnprobe_object_variants",
            "Number of distinct variants across edges" + LAST,
            labels=OBJECT,
        )
        self.divergent = g(
            "cdnprobe_object_edges_divergent",
            "Edges whose object is not the reference" + LAST,
            labels=OBJECT,
        )
        self.info = g(
            "cdnprobe_edge_object_info",
            "Identity of what the edge serves: first 12 hex digits of the body hash, ETag cut to 64"
            + LAST,
            labels=[*EDGE_OBJECT, "sha256", "etag"],
        )
        self.dns = g(
            "cdnprobe_dns_addresses",
            "Number of addresses the name resolved to" + LAST,
            labels=["target", "family"],
        )
        self.dropped = g(
            "cdnprobe_dns_addresses_dropped",
            "Addresses resolved but not probed because of the target's max_edges" + LAST,
            labels=["target"],
        )
        self.dns_up = g(
            "cdnprobe_dns_up",
            "1 if the name resolved to at least one address" + LAST,
            labels=["target"],
        )
        self.errors = c(
            "cdnprobe_probe_errors_total",
            "Failed fetches by error reason, counted per probe cycle",
            labels=["target", "address", "reason"],
        )
        self.duration = HistogramMetricFamily(
            "cdnprobe_request_duration_seconds",
            "Time of one edge request, body included, counted per probe cycle",
            labels=["target"],
        )
        self.last = g(
            "cdnprobe_cycle_last_timestamp_seconds",
            "End of the last finished probe cycle",
            labels=["target"],
        )
        self.cycle_s = g(
            "cdnprobe_cycle_duration_seconds",
            "Duration of the last finished probe cycle",
            labels=["target"],
        )
        self.cycles = c("cdnprobe_cycles_total", "Probe cycles finished", labels=["target"])
        self.interval = g(
            "cdnprobe_target_interval_seconds",
            "Configured probe interval of the target",
            labels=["target"],
        )
        self.skipped = c(
            "cdnprobe_cycles_skipped_total",
            "Probe cycles skipped because the previous one was still running",
            labels=["target"],
        )
        suite_edge, suite_file = (
            ["target", "suite", "address"],
            ["target", "suite", "file", "address"],
        )
        self.apt_match = g(
            "cdnprobe_apt_index_match",
            "1 if the index file the edge served matches the size and SHA-256 in that edge's"
            " own Release" + LAST,
            labels=suite_file,
        )
        self.apt_fail = g(
            "cdnprobe_apt_edge_would_fail",
            "1 if apt-get update against this edge alone would fail for the selected indexes"
            + LAST,
            labels=suite_edge,
        )
        self.apt_date = g(
            "cdnprobe_apt_release_timestamp_seconds",
            "Date of the edge's Release, as a Unix timestamp" + LAST,
            labels=suite_edge,
        )
        self.apt_valid = g(
            "cdnprobe_apt_release_valid_until_seconds",
            "Valid-Until of the edge's Release, as a Unix timestamp (absent when it has none)"
            + LAST,
            labels=suite_edge,
        )
        self.apt_packages = g(
            "cdnprobe_apt_packages",
            "Packages in the index apt reads, per edge" + LAST,
            labels=suite_file,
        )
        self.go_match = g(
            "cdnprobe_goproxy_module_match",
            "1 if the edge's module zip is readable and its h1: and go.mod hash equal go.sum's "
            "(or, without go.sum, what most edges serve)" + LAST,
            labels=["target", "module", "version", "address"],
        )
        self.sums_match = g(
            "cdnprobe_artifact_checksum_match",
            "1 if the artifact the edge serves has the SHA-256 (and size) its manifest lists"
            + LAST,
            labels=["target", "artifact", "address"],
        )
        self.hash_age = g(
            "cdnprobe_artifact_hash_age_cycles",
            "0 if the artifact was hashed in the last cycle; N if its metadata was unchanged and"
            " the hash is from N cycles ago (rehash_every)" + LAST,
            labels=["target", "artifact", "address"],
        )
        self.apt_problems = g(
            "cdnprobe_apt_problems",
            "Problems of the edge's repository by reason (size_mismatch, hash_mismatch, missing, "
            "fetch_error, expired, by_hash_missing, expected_package_missing, bad_release)" + LAST,
            labels=[*suite_edge, "reason"],
        )

    def metrics(self) -> Iterator[Metric]:
        for family in vars(self).values():
            yield family if isinstance(family, Metric) else family.metric

    def text(self) -> bytes:
        parts = []
        for family in vars(self).values():
            if isinstance(family, Metric):  # the histogram: a few samples per target
                parts.append(generate_latest(_Fixed([family])).decode())
            else:
                parts.append(family.text())
        return "".join(parts).encode()

    def add_target(self, snap: TargetSnapshot) -> None:
        name = snap.name
        self.interval.add_metric([name], snap.interval_s)
        self.cycles.add_metric([name], snap.cycles)
        self.skipped.add_metric([name], snap.skipped)
        for (address, reason), count in sorted(snap.errors.items()):
            self.errors.add_metric([name, address, reason], count)
        self._add_histogram(snap)
        report = snap.report
        if report is None:
            return
        self.last.add_metric([name], report.finished_at.timestamp())
        self.cycle_s.add_metric([name], (report.finished_at - report.started_at).total_seconds())
        self.dns_up.add_metric([name], 0 if report.dns_error else 1)
        resolved = report.dns.resolved if report.dns else ()
        for family in (4, 6):
            count = sum(1 for e in resolved if e.family == family)
            self.dns.add_metric([name, str(family)], count)
        self.dropped.add_metric([name], len(report.dns.dropped) if report.dns else 0)
        # an edge is up if it answered every object completely
        answered = [
            {r.edge.address for r in obj.results if r.observation.complete}
            for obj in report.objects
        ]
        for edge in report.edges:
            complete = all(edge.address in addresses for addresses in answered)
            self.edge_up.add_metric([name, edge.address, str(edge.family)], 1 if complete else 0)
        for obj in report.objects:
            self._add_object(snap, obj)

    def _add_histogram(self, snap: TargetSnapshot) -> None:
        bounds = [*(f"{b:g}" for b in DURATION_BUCKETS), "+Inf"]
        buckets = list(zip(bounds, snap.durations.buckets, strict=True))
        self.duration.add_metric([snap.name], buckets, snap.durations.total)

    def _add_apt(self, snap: TargetSnapshot, obj: ObjectReport) -> None:
        suite = obj.suite or ""
        for address, result in obj.apt:
            edge = [snap.name, suite, address]
            self.apt_fail.add_metric(edge, 1 if result.would_fail else 0)
            release = result.release
            if release is not None and release.date is not None:
                self.apt_date.add_metric(edge, release.date.timestamp())
            if release is not None and release.valid_until is not None:
                self.apt_valid.add_metric(edge, release.valid_until.timestamp())
            for file, match in sorted(result.index_match.items()):
                self.apt_match.add_metric([snap.name, suite, file, address], 1 if match else 0)
            for file, count in sorted(result.packages.items()):
                self.apt_packages.add_metric([snap.name, suite, file, address], count)
            reasons: dict[str, int] = {}
            for problem in result.problems:
                reasons[str(problem.reason)] = reasons.get(str(problem.reason), 0) + 1
            for reason, count in sorted(reasons.items()):
                self.apt_problems.add_metric([*edge, reason], count)

    def _add_checks(self, snap: TargetSnapshot, obj: ObjectReport) -> None:
        for check in obj.checks:
            match = 0 if check.problem else 1
            if check.kind == "h1":
                module, _, version = (obj.name or "").partition("@")
                self.go_match.add_metric([snap.name, module, version, check.address], match)
            else:
                labels = [snap.name, obj.name or "", check.address]
                self.sums_match.add_metric(labels, match)
                result = next((r for r in obj.results if r.edge.address == check.address), None)
                if result is not None:
                    self.hash_age.add_metric(labels, result.observation.hash_age_cycles)

    def _add_object(self, snap: TargetSnapshot, obj: ObjectReport) -> None:
        if obj.suite is not None:
            self._add_apt(snap, obj)
        if obj.checks:
            self._add_checks(snap, obj)
        name, path = snap.name, obj.path
        self.variants.add_metric([name, path], len(obj.variants))
        self.divergent.add_metric([name, path], len(obj.divergent_edges))
        for r in obj.results:
            labels = [name, path, r.edge.address]
            key = self.match.key(labels)  # the same for every family labelled EDGE_OBJECT
            obs = r.observation
            self.match.add(key, 1 if r.verdict is Verdict.OK else 0)
            self.stale.add(key, 1 if r.verdict is Verdict.STALE else 0)
            self.state.add(key, STATE[r.verdict])
            self.size.add(key, obs.bytes_read)
            self.status.add(key, obs.status or 0)
            if r.lag_s is not None:
                self.lag.add(key, r.lag_s)
            if r.versions_behind is not None:
                self.behind.add(key, r.versions_behind)
            sha = (obs.sha256 or "")[:12]
            self.info.add_metric([*labels, sha, label(obs.etag)], 1)
            state = snap.edge_states.get((path, r.edge.address))
            if state is not None:
                self.since.add(key, state.since.timestamp())
                if state.last_recovered is not None:
                    self.recovered.add(key, state.last_recovered.timestamp())


def families(snapshots: Iterable[TargetSnapshot]) -> Iterator[Metric]:
    """The probe series as prometheus_client objects (the reference rendering)."""
    out = _Families(text=False)
    for snap in snapshots:
        out.add_target(snap)
    yield from out.metrics()


def render(snapshots: Iterable[TargetSnapshot]) -> bytes:
    """The probe series in the text exposition format, written directly."""
    out = _Families(text=True)
    for snap in snapshots:
        out.add_target(snap)
    return out.text()


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


class SnapshotCollector(Collector):
    """Yields the families of whatever snapshots `source` returns at collect time."""

    def __init__(self, source: Callable[[], Iterable[TargetSnapshot]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        return families(self._source())


class DaemonCollector(Collector):
    """Process-wide series: build info and the outcome of the last config reload."""

    def __init__(
        self, reload_state: Callable[[], tuple[bool, datetime | None]], shard: Shard | None = None
    ) -> None:
        self._reload_state = reload_state
        self._shard = shard

    def collect(self) -> Iterator[Metric]:
        build = GaugeMetricFamily("cdnprobe_build_info", "cdnprobe version", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        shard = GaugeMetricFamily(
            "cdnprobe_shard_info",
            "This instance's shard (--shard INDEX/COUNT)",
            labels=["index", "count"],
        )
        index, count = (self._shard.index, self._shard.count) if self._shard else (0, 1)
        shard.add_metric([str(index), str(count)], 1)
        yield shard
        ok, when = self._reload_state()
        yield GaugeMetricFamily(
            "cdnprobe_config_last_reload_successful",
            "1 if the last config load or reload succeeded",
            value=1 if ok else 0,
        )
        if when is not None:
            yield GaugeMetricFamily(
                "cdnprobe_config_last_reload_success_timestamp_seconds",
                "When the config was last loaded successfully",
                value=when.timestamp(),
            )
