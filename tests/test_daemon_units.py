"""The daemon's pure parts with plain values: version history, verdict tracking, metrics, page."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest

from prober.compare import compare_object
from prober.daemon.history import EdgeState, VerdictTracker, VersionHistory
from prober.daemon.metrics import label, render
from prober.daemon.snapshot import Histogram, TargetSnapshot
from prober.daemon.statuspage import status_page
from prober.model import DnsAnswer, Edge, Observation, TargetReport, Verdict
from tests.daemon import parse
from tests.reference_metrics import SnapshotCollector

T0 = datetime(2026, 11, 23, 14, tzinfo=UTC)
A, B = Edge("192.0.2.1", 4), Edge("2001:db8::1", 6)


def body(sha: str, etag: str = '"e"') -> Observation:
    return Observation(status=200, size=5, bytes_read=5, sha256=sha, etag=etag)


def report_for(
    *observed: tuple[Edge, Observation], path: str = "/p", at: datetime = T0
) -> TargetReport:
    obj = compare_object("https://h" + path, "h", path, list(observed))
    edges = tuple(sorted({e for e, _ in observed}))
    return TargetReport("t", "h", DnsAnswer("h", edges, "test"), (obj,), at, at)


def test_history_supersedes_the_old_reference() -> None:
    history = VersionHistory()
    history.observe(report_for((A, body("v1"))).objects[0], T0)
    history.observe(report_for((A, body("v2"))).objects[0], T0 + timedelta(minutes=1))
    past = history.past("/p")
    assert [p.sha256 for p in past] == ["v2", "v1"]
    assert past[0].superseded_at is None
    assert past[1].superseded_at == T0 + timedelta(minutes=1)


def test_history_is_bounded() -> None:
    history = VersionHistory(depth=3)
    for i in range(10):
        history.observe(report_for((A, body(f"v{i}"))).objects[0], T0 + timedelta(seconds=i))
    assert [p.sha256 for p in history.past("/p")] == ["v9", "v8", "v7"]


def test_tracker_reports_changes_not_repeats() -> None:
    """A verdict is news when it changes; a healthy first sight and repeats are not."""
    tracker = VerdictTracker()
    ok = report_for((A, body("x")), (B, body("x")))
    assert tracker.update(ok.objects, T0) == []
    bad = report_for(
        (A, body("x")), (B, Observation(status=404, sha256="n")), (Edge("192.0.2.9", 4), body("x"))
    )
    changes = tracker.update(bad.objects, T0 + timedelta(seconds=30))
    assert [(c.address, c.verdict, c.previous) for c in changes] == [
        ("2001:db8::1", Verdict.DIVERGENT, Verdict.OK)
    ]
    assert tracker.update(bad.objects, T0 + timedelta(seconds=60)) == []
    back = tracker.update(ok.objects, T0 + timedelta(seconds=90))
    assert [(c.verdict, c.held_s) for c in back] == [(Verdict.OK, 60)]
    assert tracker.states[("/p", "2001:db8::1")].last_recovered == T0 + timedelta(seconds=90)
    assert ("/p", "192.0.2.9") not in tracker.states  # left DNS: forgotten


def snapshot(report: TargetReport) -> TargetSnapshot:
    return TargetSnapshot(
        "t", "h", ("/p",), 30.0, report=report, cycles=1,
        errors={("192.0.2.1", "timeout"): 2}, durations=Histogram().observe([0.02, 3.0]),
    )  # fmt: skip


def exposition(*snaps: TargetSnapshot) -> str:
    """What /metrics serves: the directly written text."""
    return render(snaps).decode()


def reference(*snaps: TargetSnapshot) -> str:
    """The same series rendered by prometheus_client from its own objects."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snaps))
    return generate_latest(registry).decode()


def test_text_renderer_writes_what_prometheus_client_writes() -> None:
    """Byte for byte, on series with escapes in labels, floats, counters, histograms,
    missing optional series and two targets."""
    odd_path = '/dists/"we\\ird"/InRelease'
    first = snapshot(
        report_for(
            (A, body("aa" * 32, etag='W/"x\\y"')),
            (B, Observation(status=404, size=None, bytes_read=123456789012, sha256="n")),
            path=odd_path,
        )
    )
    states = {
        (odd_path, A.address): EdgeState(Verdict.OK, T0, last_recovered=T0),
        (odd_path, B.address): EdgeState(Verdict.DIVERGENT, T0 + timedelta(seconds=0.5)),
    }
    first = replace(first, edge_states=states)
    second = TargetSnapshot("other", "h2", ("/p",), 0.25, report=None, cycles=7, skipped=3)
    empty = TargetSnapshot("none", "h3", ("/p",), 30.0)
    for snaps in [(first,), (first, second, empty), (), (second,)]:
        assert exposition(*snaps) == reference(*snaps)
    assert '\\"we\\\\ird\\"' in exposition(first)  # quotes and backslashes escaped


def test_metrics_are_a_view_of_the_snapshot() -> None:
    scrape = parse(exposition(snapshot(report_for((A, body("aa" * 32)), (B, body("bb" * 32))))))
    assert scrape.get("cdnprobe_object_variants", target="t", path="/p") == 2
    assert scrape.get("cdnprobe_dns_addresses", family="6") == 1
    info = scrape.series("cdnprobe_edge_object_info", address="192.0.2.1")
    assert info[0]["sha256"] == "aa" * 6
    assert scrape.get("cdnprobe_probe_errors_total", reason="timeout") == 2
    assert scrape.get("cdnprobe_request_duration_seconds_bucket", le="0.025") == 1
    assert scrape.get("cdnprobe_request_duration_seconds_count") == 2
    # The next snapshot without edge B: none of B's series remain.
    later = parse(exposition(snapshot(report_for((A, body("aa" * 32))))))
    assert not any(("address", B.address) in lbls for s in later.samples.values() for lbls in s)


def test_hash_labels_only_on_info() -> None:
    text = exposition(snapshot(report_for((A, body("aa" * 32)))))
    for line in text.splitlines():
        if "sha256=" in line or "etag=" in line:
            assert line.startswith("cdnprobe_edge_object_info")


def test_hostile_etag_is_bounded_and_escaped() -> None:
    nasty = '"' + "<script>\x1b[31m\n" * 20 + '"'
    assert len(label(nasty)) == 64
    assert "\x1b" not in label(nasty) and "\n" not in label(nasty)
    page = status_page([snapshot(report_for((A, body("aa", etag=nasty))))], T0)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_status_page_has_a_cell_per_edge_and_path_and_the_conclusion() -> None:
    report = report_for((A, body("aa" * 32)), (B, Observation(status=404, sha256="n")))
    page = status_page([snapshot(report)], T0)
    assert page.count("<td class=ok>") == 1 and page.count("<td class=divergent>") == 1
    assert "<li>1 of 2 edges serves a different p (2001:db8::1)</li>" in page


def test_duration_histogram_counts_as_prometheus_client_does() -> None:
    """Cumulative `le` buckets, a value on a bound counted in it, +Inf for the rest, summed
    over cycles: the same counts as prometheus_client's own Histogram for the same values."""
    from prometheus_client import Histogram as ClientHistogram

    from prober.daemon.snapshot import DURATION_BUCKETS

    cycles = [[0.005, 0.0051, 0.0, 0.25, 60.0, 61.0, 2.4999], [0.01, 1e9, 0.0049], []]
    registry = CollectorRegistry()
    reference = ClientHistogram("d", "d", buckets=DURATION_BUCKETS, registry=registry)
    ours = Histogram()
    for values in cycles:
        ours = ours.observe(values)
        for value in values:
            reference.observe(value)
    expected = [
        int(s.value) for s in next(iter(registry.collect())).samples if s.name == "d_bucket"
    ]
    assert list(ours.buckets) == expected
    assert ours.count == 10 and ours.total == sum(sum(c) for c in cycles)
