"""Series a Prometheus can keep, at the daemon against the nginx lab: `series: problems`
writes the per edge x path series only where an edge is not ok (they appear when it goes
wrong and vanish when it recovers), the series budget says when it is exceeded, and
/metrics is gzip-encoded for a scraper that asks."""

from __future__ import annotations

import gzip
import urllib.request
from pathlib import Path

from tests.daemon import RunningDaemon, Scrape, parse
from tests.lab import Lab

PATH = "/dists/stable/InRelease"
NEW, OLD = 1_790_000_000, 1_789_990_000
STALE = "127.0.0.3"


def config_text(lab: Lab, extra: str = "") -> str:
    return (
        f"dns_min_interval: 0s\n{extra}targets:\n  - name: repo\n"
        f"    url: https://repo.test:{lab.port}\n    paths: [{PATH}, /other]\n    interval: 1s\n"
        f'    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n'
    )


def addresses(scrape: Scrape, name: str) -> set[str]:
    return {s["address"] for s in scrape.series(name, path=PATH)}


def test_problems_mode_exports_pairs_only_while_they_are_not_ok(lab: Lab, tmp_path: Path) -> None:
    lab.write(PATH, b"Suite: stable\nVersion: 2\n", mtime=NEW)
    lab.write("/other", b"other\n", mtime=NEW)
    lab.write(PATH, b"Suite: stable\nVersion: 1\n", edges=[STALE], mtime=OLD)
    config = tmp_path / "problems.yaml"
    config.write_text(config_text(lab, "series: problems\n"))
    daemon = RunningDaemon(config).start()
    try:
        scrape = daemon.wait_for(lambda s: s.get("cdnprobe_edge_object_stale", address=STALE) == 1)
        per_pair = [
            "cdnprobe_edge_object_match", "cdnprobe_edge_object_stale",
            "cdnprobe_edge_object_state", "cdnprobe_edge_object_size_bytes",
            "cdnprobe_edge_http_status", "cdnprobe_edge_object_info",
            "cdnprobe_edge_object_verdict_since_timestamp_seconds",
        ]  # fmt: skip
        for name in per_pair:
            assert addresses(scrape, name) == {STALE}, name
        assert not scrape.series("cdnprobe_edge_object_match", path="/other")
        # the per-edge and per-object families stay whole
        assert len(scrape.series("cdnprobe_edge_up", target="repo")) == len(lab.edges)
        assert scrape.get("cdnprobe_object_edges_divergent", path=PATH) == 1
        assert scrape.get("cdnprobe_object_variants", path="/other") == 1
        exported = sum(
            1
            for samples in scrape.samples.values()
            for labels in samples
            if ("target", "repo") in labels
        )
        assert scrape.get("cdnprobe_target_series", target="repo") == exported
        lab.write(PATH, b"Suite: stable\nVersion: 2\n", edges=[STALE], mtime=NEW)
        healed = daemon.wait_for(lambda s: not s.series("cdnprobe_edge_object_match"))
        assert not healed.series("cdnprobe_edge_object_stale")
        assert healed.get("cdnprobe_object_edges_divergent", path=PATH) == 0
    finally:
        daemon.kill()


def test_full_mode_is_the_default_and_the_budget_says_when_it_is_exceeded(
    lab: Lab, tmp_path: Path
) -> None:
    lab.write(PATH, b"Suite: stable\n", mtime=NEW)
    lab.write("/other", b"other\n", mtime=NEW)
    config = tmp_path / "budget.yaml"
    config.write_text(config_text(lab, "series_budget: 20\n"))
    daemon = RunningDaemon(config).start()
    try:
        scrape = daemon.wait_for(
            lambda s: (s.get("cdnprobe_cycles_total", target="repo") or 0) >= 2
        )
        assert addresses(scrape, "cdnprobe_edge_object_match") == {e.address for e in lab.edges}
        assert scrape.get("cdnprobe_series_budget_exceeded") == 1
        assert (scrape.get("cdnprobe_target_series", target="repo") or 0) > 20
        over = [line for line in daemon.log().splitlines() if "series_budget" in line]
        assert len(over) == 1 and "target=repo" in over[0], daemon.log()
        request = urllib.request.Request(
            daemon.base + "/metrics", headers={"Accept-Encoding": "gzip"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Encoding"] == "gzip"
            zipped = parse(gzip.decompress(response.read()).decode())
        assert zipped.get("cdnprobe_target_series", target="repo") is not None
        assert "process_cpu_seconds_total" in zipped.samples
    finally:
        daemon.kill()
