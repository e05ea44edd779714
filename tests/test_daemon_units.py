"""The daemon's pure parts with plain values: version history, verdict tracking, metrics, page."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    """Hashes only on the two identity series: each edge's, and (for comparing regions, as
    the contract's vantage extension adds) the reference's, which carries no ETag."""
    text = exposition(snapshot(report_for((A, body("aa" * 32)))))
    for line in text.splitlines():
        if "etag=" in line:
            assert line.startswith("cdnprobe_edge_object_info")
        if "sha256=" in line:
            assert line.startswith(("cdnprobe_edge_object_info", "cdnprobe_object_reference_info"))
    assert 'cdnprobe_object_reference_info{path="/p",sha256="aaaaaaaaaaaa",target="t"} 1.0' in text


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


# ---- status page: problems first, for a person woken at night ----------------------------

NEW, OLD = "Mon, 23 Nov 2026 13:00:00 GMT", "Mon, 23 Nov 2026 12:56:40 GMT"  # 200 s apart
C, D = Edge("192.0.2.3", 4), Edge("192.0.2.4", 4)


def night_snapshots() -> list[TargetSnapshot]:
    """A healthy target named to sort first, and a broken one: a stale edge 3m 20s behind, a
    truncated edge, and an edge that recovered; edge_states say since when."""
    from prober.errors import ErrorReason

    new = Observation(status=200, size=37101, bytes_read=37101, sha256="aa" * 32, etag='"n"',
                      last_modified=NEW)  # fmt: skip
    old = replace(new, size=35577, bytes_read=35577, sha256="bb" * 32, last_modified=OLD)
    cut = replace(new, bytes_read=18550, sha256=None, error=ErrorReason.TRUNCATED,
                  detail="body ended at 18550 of 37101 bytes <b>")  # fmt: skip
    path = "/dists/stable/main/binary-amd64/Packages.gz"
    broken = report_for((A, new), (B, new), (C, old), (D, cut), path=path)
    since = T0 - timedelta(hours=2)
    states = {
        (path, A.address): EdgeState(Verdict.OK, since),
        (path, B.address): EdgeState(
            Verdict.OK, T0 - timedelta(minutes=5), T0 - timedelta(minutes=5)
        ),
        (path, C.address): EdgeState(Verdict.STALE, T0 - timedelta(minutes=12)),
        (path, D.address): EdgeState(Verdict.ERROR, T0 - timedelta(seconds=40)),
    }
    broken_snap = replace(snapshot(broken), name="zz-repo", edge_states=states)
    healthy = replace(snapshot(report_for((A, body("x")), (B, body("x")))), name="aa-healthy")
    return [healthy, broken_snap]


def test_status_page_puts_the_summary_and_broken_targets_first() -> None:
    page = status_page(night_snapshots(), T0)
    summary = page.index("class='summary broken'")
    assert summary < page.index("<h2") and summary < page.index("<table>")
    assert "<b>Targets:</b> 1 broken, 1 healthy" in page
    assert "(each by its worst verdict): 1 error, 1 stale, 4 ok" in page
    assert page.index("<h2 id='zz-repo'") < page.index("<h2 id='aa-healthy'")
    assert (
        "<li>zz-repo: 192.0.2.3 stale, 3m 20s behind for "
        "/dists/stable/main/binary-amd64/Packages.gz, since 13:48:00Z (12m ago)</li>"
    ) in page


def test_status_page_cells_say_since_when_how_far_behind_and_how_much_came() -> None:
    page = status_page(night_snapshots(), T0)
    stale = page[page.index("<td class=stale>") :].split("</td>")[0]
    assert stale.startswith("<td class=stale>stale, 3m 20s behind<small>since 13:48:00Z (12m ago)")
    cut = page[page.index("<td class=error>") :].split("</td>")[0]
    assert "error: truncated" in cut and "HTTP 200, 18550 of 37101 bytes" in cut
    assert "body ended at 18550 of 37101 bytes &lt;b&gt;" in cut  # the detail, escaped
    assert "<small>recovered 13:55:00Z (5m ago)</small>" in page
    assert "<b>" not in page.replace("<b>Targets:</b>", "").replace("<b>Edges</b>", "")


def test_status_page_without_problems_says_so() -> None:
    page = status_page([night_snapshots()[0]], T0)
    assert "class='summary'" in page and "<p>No problems.</p>" in page
    assert "1 healthy" in page and "0 broken" in page


def test_human_durations_use_two_units_at_most() -> None:
    from prober.daemon.statuspage import human_duration

    cases = {0: "0s", 45: "45s", 60: "1m", 200: "3m 20s", 7200: "2h", 7500: "2h 5m",
             90000: "1d 1h", 86400 * 3: "3d"}  # fmt: skip
    assert {s: human_duration(s) for s in cases} == cases


def _png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB(A) rows of an 8-bit PNG (what Chromium writes), unfiltered."""
    import struct
    import zlib

    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, head = 8, b"", b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        head = data if kind == b"IHDR" else head
        idat += data if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", head[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a, b = line[i - bpp] if i >= bpp else 0, prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pred = (a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c)
                    else b if abs(p - b) <= abs(p - c) else c)  # fmt: skip
            line[i] = (line[i] + (0, a, b, (a + b) // 2, pred)[kind]) & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i : i + 3]) for r in rows for i in range(0, stride, bpp)]


def test_status_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The page as a browser draws it: the red summary box at the top, the stale and error
    colours below; the screenshot is kept at tmp_path/status.png for a person to look at."""
    import shutil
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium is not None, "chromium is not installed (.ci/run installs it)"
    page = tmp_path / "status.html"
    page.write_text(status_page(night_snapshots(), T0), encoding="utf-8")
    shot = tmp_path / "status.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars"]  # fmt: skip
    proc = subprocess.run(
        [chromium, *flags, "--window-size=1280,900", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    width, height, pixels = _png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    top = pixels[: width * height // 3]
    assert bytes((204, 0, 0)) in top  # .summary.broken border, drawn in the top third
    assert bytes((0xFF, 0xF1, 0xC2)) in pixels and bytes((0xF4, 0xB3, 0xB3)) in pixels


def test_status_page_counts_an_object_served_nowhere_as_broken() -> None:
    """Every edge agreeing on a 404 is consistent, and still a broken target (a typo'd path)."""
    missing = Observation(status=404, size=0, bytes_read=0, sha256="e3" * 32)
    page = status_page([snapshot(report_for((A, missing), (B, missing)))], T0)
    assert "<b>Targets:</b> 1 broken, 0 healthy" in page
    summary = page[: page.index("<h2")]
    assert "<li>t: " in summary and "404" in summary  # the conclusion, as check says it
