"""Hostile edges never break the prober: each fault gets its own address in one lab, one daemon
probes them all, /metrics keeps answering throughout, and each fault is reported as itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from tests.daemon import RunningDaemon, Scrape, http
from tests.faults import FaultEdge
from tests.lab import HOST, EdgeSpec, Lab

PATH = "/dists/stable/InRelease"
HEALTHY = "127.0.0.2"

# address, fault mode, certificate, the error reason (or verdict) cdnprobe must report
FAULTS: list[tuple[str, str, str, str]] = [
    ("127.0.0.10", "drip", "valid", "timeout"),
    ("127.0.0.11", "endless", "valid", "too_large"),
    ("127.0.0.12", "big_headers", "valid", "protocol"),
    ("127.0.0.13", "garbage", "valid", "protocol"),
    ("127.0.0.14", "reset", "valid", "truncated"),
    ("127.0.0.15", "truncate", "valid", "truncated"),
    ("127.0.0.16", "chunked_cut", "valid", "truncated"),
    ("127.0.0.17", "ok", "expired", "tls"),
    ("127.0.0.18", "ok", "wrong_name", "tls"),
    ("127.0.0.19", "ok", "untrusted", "tls"),
    ("127.0.0.20", "silent", "valid", "timeout"),
    ("127.0.0.21", "status_503", "valid", "divergent"),
    ("127.0.0.22", "http10_early", "valid", "divergent"),
]


def certificate(kind: str, ca: trustme.CA) -> trustme.LeafCert:
    if kind == "expired":
        past = datetime.now(UTC) - timedelta(days=2)
        return ca.issue_cert(HOST, not_before=past - timedelta(days=30), not_after=past)
    if kind == "wrong_name":
        return ca.issue_cert("someone-else.test")
    if kind == "untrusted":
        return trustme.CA().issue_cert(HOST)
    return ca.issue_cert(HOST)


class Hostile:
    def __init__(self, lab: Lab, daemon: RunningDaemon, scrape: Scrape, scrapes: list[int]) -> None:
        self.lab, self.daemon, self.scrape, self.scrapes = lab, daemon, scrape, scrapes


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile")
    lab = Lab(root / "lab", ca, [EdgeSpec(HEALTHY)])
    lab.start()
    edges: list[FaultEdge] = []
    daemon: RunningDaemon | None = None
    try:
        lab.write(PATH, b"Suite: stable\n" * 50, mtime=1_790_000_000)
        for address, mode, cert, _ in FAULTS:
            edges.append(FaultEdge([address], lab.port, mode, ca, certificate(cert, ca)).start())
        lab.set_dns(HOST, [HEALTHY] + [f[0] for f in FAULTS])
        config = root / "cdnprobe.yaml"
        config.write_text(
            "dns_min_interval: 0s\ntargets:\n  - name: repo\n"
            f"    url: https://{HOST}:{lab.port}\n    paths: [{PATH}]\n"
            f'    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n'
            "    interval: 3s\n    timeout: 2s\n    max_body_size: 1MiB\n"
        )
        daemon = RunningDaemon(config).start()
        scrapes: list[int] = []  # status of every scrape taken while the faults were probed
        stop = threading.Event()

        def keep_scraping() -> None:
            while not stop.is_set():
                scrapes.append(http(daemon.base + "/metrics", timeout=5)[0])
                stop.wait(0.2)

        scraper = threading.Thread(target=keep_scraping, daemon=True)
        scraper.start()
        scrape = daemon.wait_for(
            lambda s: (s.get("cdnprobe_cycles_total", target="repo") or 0) >= 2, 30
        )
        stop.set()
        scraper.join(timeout=10)
        yield Hostile(lab, daemon, scrape, scrapes)
    finally:
        if daemon is not None:
            daemon.kill()
        for edge in edges:
            edge.stop()
        lab.stop()


@pytest.mark.parametrize(
    ("address", "mode", "cert", "expected"), FAULTS, ids=[f"{f[1]}-{f[2]}" for f in FAULTS]
)
def test_fault_is_reported_as_itself(
    hostile: Hostile, address: str, mode: str, cert: str, expected: str
) -> None:
    s = hostile.scrape
    labels = {"target": "repo", "path": PATH, "address": address}
    if expected in ("divergent",):
        assert s.get("cdnprobe_edge_object_state", **labels) == 2
        assert s.get("cdnprobe_edge_up", address=address) == 1  # a complete answer, other bytes
    else:
        assert (s.get("cdnprobe_probe_errors_total", address=address, reason=expected) or 0) >= 2
        assert s.get("cdnprobe_edge_object_state", **labels) == 3
        assert s.get("cdnprobe_edge_up", address=address) == 0
        others = [x["reason"] for x in s.series("cdnprobe_probe_errors_total", address=address)]
        assert others == [expected]


def test_503_edge_reports_its_status(hostile: Hostile) -> None:
    assert hostile.scrape.get("cdnprobe_edge_http_status", address="127.0.0.21") == 503


def test_healthy_edge_stays_the_reference(hostile: Hostile) -> None:
    s = hostile.scrape
    assert s.get("cdnprobe_edge_object_match", address=HEALTHY) == 1
    assert s.get("cdnprobe_object_edges_divergent", path=PATH) == len(FAULTS)


def test_metrics_answered_throughout(hostile: Hostile) -> None:
    """Every scrape taken while hostile edges were probed answered 200."""
    assert len(hostile.scrapes) >= 5
    assert set(hostile.scrapes) == {200}


def test_no_traceback_in_the_log(hostile: Hostile) -> None:
    log = hostile.daemon.log()
    assert "Traceback" not in log
    assert "verdict=error" in log


def test_edge_that_drops_every_other_connection(
    lab: Lab, fault_edge: object, tmp_path: Path
) -> None:
    """Every second connection is dropped unanswered: protocol errors for exactly those, ok for the rest."""
    from tests.conftest import cdnprobe

    edge: FaultEdge = fault_edge("127.0.0.5", "every_other")  # type: ignore[operator]
    lab.write(PATH, b"x", mtime=1_790_000_000)
    lab.set_dns(HOST, ["127.0.0.5"])
    outcomes = []
    for _ in range(4):
        proc = cdnprobe(
            "check", lab.url(PATH), "--resolver", lab.resolver, "--ca-file", lab.ca_file, "--json"
        )
        outcomes.append(proc.stdout.count('"error": "protocol"'))
    assert outcomes == [0, 1, 0, 1]
    assert edge.connections == 4


def test_connection_closed_under_reuse_is_reopened_transparently(
    lab: Lab, fault_edge: object, tmp_path: Path
) -> None:
    """An edge that drops a kept-alive connection when it is reused: retried fresh, no error."""
    edge: FaultEdge = fault_edge("127.0.0.5", "drop_reused")  # type: ignore[operator]
    lab.set_dns(HOST, ["127.0.0.5"])
    config = tmp_path / "c.yaml"
    config.write_text(
        f"dns_min_interval: 0s\ntargets:\n  - {{name: repo, url: 'https://{HOST}:{lab.port}', paths: [{PATH}],"
        f" resolvers: ['{lab.resolver}'], ca_file: '{lab.ca_file}', interval: 1s, connections_per_edge: 1}}\n"
    )
    daemon = RunningDaemon(config).start()
    try:
        s = daemon.wait_for(lambda s: (s.get("cdnprobe_cycles_total") or 0) >= 4, 20)
    finally:
        daemon.kill()
    assert s.series("cdnprobe_probe_errors_total") == []
    assert s.get("cdnprobe_edge_object_match", address="127.0.0.5") == 1
    assert edge.requests > edge.connections >= 3  # every reuse was dropped, then reopened
