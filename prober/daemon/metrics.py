"""Target snapshots → the Prometheus text exposition. Pure.

Metrics are a view of the last published snapshot: an edge that left DNS is simply absent
from the next snapshot, so its series (and stale hash labels) vanish with no bookkeeping.
Hashes and ETags appear only as labels of cdnprobe_edge_object_info.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, cast

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
from prober.model import DnsAnswer, Kind, ObjectReport, Verdict

LAST = " (from the last probe cycle)"
LABEL_MAX = 64
STATE = {Verdict.OK: 0, Verdict.STALE: 1, Verdict.DIVERGENT: 2, Verdict.ERROR: 3}
EDGE = ["target", "address", "family"]
OBJECT = ["target", "path"]
EDGE_OBJECT = ["target", "path", "address"]
TARGET = ["target"]
SUITE_EDGE = ["target", "suite", "address"]
SUITE_FILE = ["target", "suite", "file", "address"]


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

    __slots__ = ("_head", "_keys", "_name", "_order", "lines")

    def __init__(self, name: str, doc: str, labels: list[str], kind: str) -> None:
        self._name = name
        help_text = doc.replace("\\", r"\\").replace("\n", r"\n")
        self._head = f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
        self._order = sorted(range(len(labels)), key=lambda i: labels[i])
        self._keys = [labels[i] for i in self._order]
        self.lines: list[str] = []

    def key(self, values: list[str]) -> str:
        return ",".join(
            f'{k}="{_escape(values[i])}"' for k, i in zip(self._keys, self._order, strict=True)
        )

    def add(self, key: str, value: float) -> None:
        text = _SMALL.get(value)  # type: ignore[call-overload]
        if text is None:
            text = _go_float_seen(value)
        self.lines.append(f"{self._name}{{{key}}} {text}\n")

    def add_metric(self, values: list[str], value: float) -> None:
        self.add(self.key(values), value)

    def text(self) -> str:
        return self._head + "".join(self.lines)

    def __len__(self) -> int:
        return len(self.lines)


# The metric families, in exposition order: (attribute, type, name, labels, help). Help
# texts of series from the last cycle end with LAST; counters and histograms accumulate.
FAMILIES: tuple[tuple[str, str, str, list[str], str], ...] = (
    (
        "edge_up",
        "gauge",
        "cdnprobe_edge_up",
        EDGE,
        "1 if the edge gave a complete response to every path" + LAST,
    ),
    (
        "match",
        "gauge",
        "cdnprobe_edge_object_match",
        EDGE_OBJECT,
        "1 if the edge's object equals the reference" + LAST,
    ),
    (
        "stale",
        "gauge",
        "cdnprobe_edge_object_stale",
        EDGE_OBJECT,
        "1 if the edge's object is an older version than the reference" + LAST,
    ),
    (
        "state",
        "gauge",
        "cdnprobe_edge_object_state",
        EDGE_OBJECT,
        "Verdict of the edge's object: 0 ok, 1 stale, 2 divergent, 3 error" + LAST,
    ),
    (
        "size",
        "gauge",
        "cdnprobe_edge_object_size_bytes",
        EDGE_OBJECT,
        "Bytes received for the object" + LAST,
    ),
    (
        "lag",
        "gauge",
        "cdnprobe_edge_object_lag_seconds",
        EDGE_OBJECT,
        "Reference Last-Modified (or when the edge's version was superseded) minus the "
        "edge's; 0 when it matches" + LAST,
    ),
    (
        "behind",
        "gauge",
        "cdnprobe_edge_object_versions_behind",
        EDGE_OBJECT,
        "How many references ago the edge's object was current; 0 when it matches" + LAST,
    ),
    (
        "status",
        "gauge",
        "cdnprobe_edge_http_status",
        EDGE_OBJECT,
        "Last HTTP status code, 0 when none" + LAST,
    ),
    (
        "object_hash_age",
        "gauge",
        "cdnprobe_edge_object_hash_age_cycles",
        EDGE_OBJECT,
        "0 if the body was fetched and hashed in the last cycle; N if the edge answered 304 to"
        " its own last validators and its hash is from N cycles ago (revalidate)" + LAST,
    ),
    (
        "since",
        "gauge",
        "cdnprobe_edge_object_verdict_since_timestamp_seconds",
        EDGE_OBJECT,
        "When the edge's object took its current verdict" + LAST,
    ),
    (
        "recovered",
        "gauge",
        "cdnprobe_edge_object_last_recovered_timestamp_seconds",
        EDGE_OBJECT,
        "When the edge's object last went back to ok" + LAST,
    ),
    (
        "variants",
        "gauge",
        "cdnprobe_object_variants",
        OBJECT,
        "Number of distinct variants across edges" + LAST,
    ),
    (
        "divergent",
        "gauge",
        "cdnprobe_object_edges_divergent",
        OBJECT,
        "Edges whose object is not the reference" + LAST,
    ),
    (
        "reference_status",
        "gauge",
        "cdnprobe_object_reference_status",
        OBJECT,
        "HTTP status of the reference variant (0 when no edge answered); a non-2xx reference"
        " means the object is served nowhere" + LAST,
    ),
    (
        "reference_info",
        "gauge",
        "cdnprobe_object_reference_info",
        ["target", "path", "sha256"],
        "Identity of the reference: first 12 hex digits of its body hash, for comparing"
        " regions" + LAST,
    ),
    (
        "info",
        "gauge",
        "cdnprobe_edge_object_info",
        ["target", "path", "address", "sha256", "etag"],
        "Identity of what the edge serves: first 12 hex digits of the body hash, ETag cut to "
        "64" + LAST,
    ),
    (
        "dns",
        "gauge",
        "cdnprobe_dns_addresses",
        ["target", "family"],
        "Number of addresses the name resolved to" + LAST,
    ),
    (
        "dropped",
        "gauge",
        "cdnprobe_dns_addresses_dropped",
        TARGET,
        "Addresses resolved but not probed because of the target's max_edges" + LAST,
    ),
    (
        "dns_up",
        "gauge",
        "cdnprobe_dns_up",
        TARGET,
        "1 if the name resolved to at least one address" + LAST,
    ),
    (
        "vantage_addresses",
        "gauge",
        "cdnprobe_vantage_addresses",
        ["target", "vantage", "family"],
        "Addresses the vantage (or resolver) was given" + LAST,
    ),
    (
        "vantage_up",
        "gauge",
        "cdnprobe_vantage_up",
        ["target", "vantage"],
        "1 if the vantage's query got an answer with addresses" + LAST,
    ),
    (
        "edge_seen",
        "gauge",
        "cdnprobe_edge_seen",
        ["target", "address", "vantage"],
        "1 for each vantage (or resolver) that was sent to the edge" + LAST,
    ),
    (
        "errors",
        "counter",
        "cdnprobe_probe_errors_total",
        ["target", "address", "reason"],
        "Failed fetches by error reason, counted per probe cycle",
    ),
    (
        "received",
        "counter",
        "cdnprobe_received_bytes_total",
        ["target", "address"],
        "Body bytes received from the edge, counted per probe cycle",
    ),
    (
        "duration",
        "histogram",
        "cdnprobe_request_duration_seconds",
        TARGET,
        "Time of one edge request, body included, counted per probe cycle",
    ),
    (
        "last",
        "gauge",
        "cdnprobe_cycle_last_timestamp_seconds",
        TARGET,
        "End of the last finished probe cycle",
    ),
    (
        "cycle_s",
        "gauge",
        "cdnprobe_cycle_duration_seconds",
        TARGET,
        "Duration of the last finished probe cycle",
    ),
    (
        "cycles",
        "counter",
        "cdnprobe_cycles_total",
        TARGET,
        "Probe cycles finished",
    ),
    (
        "interval",
        "gauge",
        "cdnprobe_target_interval_seconds",
        TARGET,
        "Configured probe interval of the target",
    ),
    (
        "skipped",
        "counter",
        "cdnprobe_cycles_skipped_total",
        TARGET,
        "Probe cycles skipped because the previous one was still running",
    ),
    (
        "target_series",
        "gauge",
        "cdnprobe_target_series",
        TARGET,
        "Series the target exports now (its series: full or problems)",
    ),
    (
        "apt_match",
        "gauge",
        "cdnprobe_apt_index_match",
        SUITE_FILE,
        "1 if the index file the edge served matches the size and SHA-256 in that edge's own "
        "Release" + LAST,
    ),
    (
        "apt_fail",
        "gauge",
        "cdnprobe_apt_edge_would_fail",
        SUITE_EDGE,
        "1 if apt-get update against this edge alone would fail for the selected indexes" + LAST,
    ),
    (
        "apt_date",
        "gauge",
        "cdnprobe_apt_release_timestamp_seconds",
        SUITE_EDGE,
        "Date of the edge's Release, as a Unix timestamp" + LAST,
    ),
    (
        "apt_valid",
        "gauge",
        "cdnprobe_apt_release_valid_until_seconds",
        SUITE_EDGE,
        "Valid-Until of the edge's Release, as a Unix timestamp (absent when it has none)" + LAST,
    ),
    (
        "apt_packages",
        "gauge",
        "cdnprobe_apt_packages",
        SUITE_FILE,
        "Packages in the index apt reads, per edge" + LAST,
    ),
    (
        "go_match",
        "gauge",
        "cdnprobe_goproxy_module_match",
        ["target", "module", "version", "address"],
        "1 if the edge's module zip is readable and its h1: and go.mod hash equal go.sum's "
        "(or, without go.sum, what most edges serve)" + LAST,
    ),
    (
        "sums_match",
        "gauge",
        "cdnprobe_artifact_checksum_match",
        ["target", "artifact", "address"],
        "1 if the artifact the edge serves has the SHA-256 (and size) its manifest lists" + LAST,
    ),
    (
        "hash_age",
        "gauge",
        "cdnprobe_artifact_hash_age_cycles",
        ["target", "artifact", "address"],
        "0 if the artifact was hashed in the last cycle; N if its metadata was unchanged "
        "(rehash_every) or it answered 304 to its own last validators (revalidate) and the "
        "hash is from N cycles ago" + LAST,
    ),
    (
        "apt_problems",
        "gauge",
        "cdnprobe_apt_problems",
        ["target", "suite", "address", "reason"],
        "Problems of the edge's repository by reason (size_mismatch, hash_mismatch, missing, "
        "fetch_error, expired, by_hash_missing, expected_package_missing, bad_release, not_signed, "
        "bad_signature, no_pubkey, not_valid_yet, weak_hashes, redirect_refused)" + LAST,
    ),
)


class Families:
    """The metric families of one exposition, filled target by target."""

    def __init__(self, family: Callable[[str, str, list[str], str], Any] = _Text) -> None:
        """`family` makes each family (the text writer; tests pass prometheus_client's)."""
        for attr, kind, name, labels, doc in FAMILIES:
            if kind == "histogram":  # a few samples per target: prometheus_client's own
                made: Any = HistogramMetricFamily(name, doc, labels=labels)
            else:
                made = family(name, doc, labels, kind)
            setattr(self, attr, made)

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...  # the attributes FAMILIES names

    def text(self) -> bytes:
        return b"".join(self.chunks())

    def chunks(self) -> Iterator[bytes]:
        """The exposition family by family, each family emptied once written: at a million
        series, its lines are most of a render's memory."""
        for family in vars(self).values():
            if isinstance(family, Metric):  # the histogram: a few samples per target
                yield generate_latest(_Fixed([family]))
            else:
                yield family.text().encode()
                family.lines = []

    def add_target(self, snap: TargetSnapshot) -> int:
        """The target's series; returns how many were written (its own count included)."""
        before = self.lines()
        self._add_target(snap)
        count = self.lines() - before + 1
        self.target_series.add_metric([snap.name], count)
        return count

    def lines(self) -> int:
        """Series written so far: sample lines of every family."""
        return sum(len(f.samples) if isinstance(f, Metric) else len(f) for f in vars(self).values())

    def _add_target(self, snap: TargetSnapshot) -> None:
        name = snap.name
        self.interval.add_metric([name], snap.interval_s)
        self.cycles.add_metric([name], snap.cycles)
        self.skipped.add_metric([name], snap.skipped)
        for (address, reason), count in sorted(snap.errors.items()):
            self.errors.add_metric([name, address, reason], count)
        for address, count in sorted(snap.received.items()):
            self.received.add_metric([name, address], count)
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
        if report.dns is not None:
            self._add_vantages(name, report.dns)
        # an edge is up if it answered every object completely
        answered = [
            {r.edge.address for r in obj.results if r.observation.complete}
            for obj in report.objects
        ]
        for edge in report.edges:
            complete = all(edge.address in addresses for addresses in answered)
            self.edge_up.add_metric([name, edge.address, str(edge.family)], 1 if complete else 0)
        for obj in report.objects:
            keep = None if snap.series == "full" else _not_ok(obj)
            self._add_object(snap, obj, keep)

    def _add_vantages(self, name: str, dns: DnsAnswer) -> None:
        """Vantage names come from the config (or are resolver addresses from it), never from
        DNS: bounded labels."""
        for vantage in dns.vantages:
            for family in (4, 6):
                count = sum(1 for e in vantage.addresses if e.family == family)
                self.vantage_addresses.add_metric([name, vantage.name, str(family)], count)
            self.vantage_up.add_metric([name, vantage.name], 1 if vantage.addresses else 0)
        for edge, names in dns.seen_by:
            for vantage_name in names:
                self.edge_seen.add_metric([name, edge.address, vantage_name], 1)

    def _add_histogram(self, snap: TargetSnapshot) -> None:
        bounds = [*(f"{b:g}" for b in DURATION_BUCKETS), "+Inf"]
        buckets = list(zip(bounds, snap.durations.buckets, strict=True))
        self.duration.add_metric([snap.name], buckets, snap.durations.total)

    def _add_apt(self, snap: TargetSnapshot, obj: ObjectReport, keep: Keep) -> None:
        suite = obj.suite or ""
        for address, result in obj.apt:
            edge = [snap.name, suite, address]
            self.apt_fail.add_metric(edge, 1 if result.would_fail else 0)
            release = result.release
            if release is not None and release.date is not None:
                self.apt_date.add_metric(edge, release.date.timestamp())
            if release is not None and release.valid_until is not None:
                self.apt_valid.add_metric(edge, release.valid_until.timestamp())
            reasons: dict[str, int] = {}
            for problem in result.problems:
                reasons[str(problem.reason)] = reasons.get(str(problem.reason), 0) + 1
            for reason, count in sorted(reasons.items()):
                self.apt_problems.add_metric([*edge, reason], count)
            if keep is not None and address not in keep:
                continue  # per edge x file: only where the edge is not ok (series: problems)
            for file, match in sorted(result.index_match):
                self.apt_match.add_metric([snap.name, suite, file, address], 1 if match else 0)
            for file, count in sorted(result.packages):
                self.apt_packages.add_metric([snap.name, suite, file, address], count)

    def _add_goproxy(self, snap: TargetSnapshot, obj: ObjectReport, keep: Keep) -> None:
        module, _, version = (obj.name or "").partition("@")
        for check in obj.checks:
            if keep is not None and check.address not in keep:
                continue
            match = 0 if check.problem else 1
            self.go_match.add_metric([snap.name, module, version, check.address], match)

    def _add_checksums(self, snap: TargetSnapshot, obj: ObjectReport, keep: Keep) -> None:
        for check in obj.checks:
            if keep is not None and check.address not in keep:
                continue
            labels = [snap.name, obj.name or "", check.address]
            self.sums_match.add_metric(labels, 0 if check.problem else 1)
            result = next((r for r in obj.results if r.edge.address == check.address), None)
            if result is not None:
                self.hash_age.add_metric(labels, result.observation.hash_age_cycles)

    # the per-kind series of an object, beside the ones every object has
    _BY_KIND: ClassVar[Mapping[Kind, str]] = MappingProxyType(
        {Kind.APT: "_add_apt", Kind.GOPROXY: "_add_goproxy", Kind.CHECKSUMS: "_add_checksums"}
    )

    def _add_object(self, snap: TargetSnapshot, obj: ObjectReport, keep: Keep = None) -> None:
        """The object's series; `keep`: the only edges whose per edge x path series are
        written (series: problems), None for all (series: full)."""
        by_kind = self._BY_KIND.get(obj.kind)
        if by_kind is not None:
            getattr(self, by_kind)(snap, obj, keep)
        name, path = snap.name, obj.path
        self.variants.add_metric([name, path], len(obj.variants))
        self.divergent.add_metric([name, path], len(obj.divergent_edges))
        ref = obj.reference
        self.reference_status.add_metric([name, path], ref.status or 0 if ref else 0)
        if ref is not None and ref.sha256:
            self.reference_info.add_metric([name, path, ref.sha256[:12]], 1)
        for r in obj.results:
            if keep is not None and r.edge.address not in keep:
                continue
            labels = [name, path, r.edge.address]
            key = self.match.key(labels)  # the same for every family labelled EDGE_OBJECT
            obs = r.observation
            self.match.add(key, 1 if r.verdict is Verdict.OK else 0)
            self.stale.add(key, 1 if r.verdict is Verdict.STALE else 0)
            self.state.add(key, STATE[r.verdict])
            self.size.add(key, obs.bytes_read)
            self.status.add(key, obs.status or 0)
            self.object_hash_age.add(key, obs.hash_age_cycles)
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


Keep = frozenset[str] | None  # the edges whose per edge x path series are written; None: all


def _not_ok(obj: ObjectReport) -> frozenset[str]:
    return frozenset(r.edge.address for r in obj.results if r.verdict is not Verdict.OK)


def render(snapshots: Iterable[TargetSnapshot]) -> bytes:
    """The probe series in the text exposition format, written directly."""
    return render_counted(snapshots)[0]


def render_counted(snapshots: Iterable[TargetSnapshot]) -> tuple[bytes, dict[str, int]]:
    """The exposition and the series each target wrote."""
    out, counts = filled(snapshots)
    return out.text(), counts


def filled(snapshots: Iterable[TargetSnapshot]) -> tuple[Families, dict[str, int]]:
    """The families of the snapshots' series, to be written, and the series of each target."""
    out = Families()
    counts = {snap.name: out.add_target(snap) for snap in snapshots}
    return out, counts


@dataclass(frozen=True, slots=True)
class Compressed:
    """A text kept only gzip-encoded (one gzip member): at a million series 3 MiB instead of
    90, written again a bounded chunk at a time for a scraper that does not accept gzip."""

    gzip: bytes
    size: int  # bytes of the text itself

    @classmethod
    def of(cls, chunks: Iterable[bytes]) -> Compressed:
        # level 1: a third of level 6's CPU on this repetitive text (0.16 s against 0.39 s
        # for 77 MiB), for 2.7 MiB instead of 2.0
        deflate = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip framing
        parts, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            parts.append(deflate.compress(chunk))
        parts.append(deflate.flush())
        return cls(b"".join(parts), size)

    def chunks(self, limit: int = 1 << 20) -> Iterator[bytes]:
        """The text, decompressed at most `limit` bytes at a time."""
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = self.gzip
        while data:
            chunk = inflate.decompress(data, limit)
            data = inflate.unconsumed_tail
            if chunk:
                yield chunk
        rest = inflate.flush()
        if rest:
            yield rest

    def text(self) -> bytes:
        return b"".join(self.chunks())


class _Fixed(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


class DaemonCollector(Collector):
    """Process-wide series: build info and the outcome of the last config reload."""

    def __init__(
        self,
        reload_state: Callable[[], tuple[bool, datetime | None]],
        shard: Shard | None = None,
        tasks: Callable[[], dict[str, int]] = dict,
        over_budget: Callable[[], bool] = lambda: False,
    ) -> None:
        self._reload_state = reload_state
        self._shard = shard
        self._tasks = tasks
        self._over_budget = over_budget

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
        tasks = CounterMetricFamily(
            "cdnprobe_tasks",
            "Task API checks finished, by outcome (consistent, inconsistent, error)",
            labels=["outcome"],
        )
        counts = self._tasks()
        for outcome in ("consistent", "inconsistent", "error"):
            tasks.add_metric([outcome], counts.get(outcome, 0))
        yield tasks
        yield GaugeMetricFamily(
            "cdnprobe_series_budget_exceeded",
            "1 if this instance exports more series than its series_budget",
            value=1 if self._over_budget() else 0,
        )
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
