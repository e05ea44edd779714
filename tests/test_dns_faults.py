"""DNS faults: SERVFAIL, silence, a name that vanishes mid-run, and a name with 200 addresses
(an answer too big for UDP: dnspython must retry over TCP), probed under the concurrency bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import pytest

from tests.conftest import cdnprobe
from tests.daemon import RunningDaemon, one_cycle
from tests.faults import FaultDns, FaultEdge
from tests.lab import HOST, Lab

PATH = "/dists/stable/InRelease"


def daemon_config(lab: Lab, resolver: str, **extra: object) -> str:
    fields = {"interval": "1s", "timeout": "2s", **extra}
    lines = [
        f"concurrency: {fields.pop('concurrency', 64)}",
        "dns_min_interval: 0s",
        "targets:",
        f"  - name: repo\n    url: https://{HOST}:{lab.port}\n    paths: [{PATH}]",
        f'    resolvers: ["{resolver}"]\n    ca_file: {lab.ca_file}',
        *(f"    {k}: {v}" for k, v in fields.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def fault_dns() -> Iterator[list[FaultDns]]:
    started: list[FaultDns] = []
    yield started
    for server in started:
        server.stop()


@pytest.mark.parametrize(("mode", "rcode"), [("servfail", "SERVFAIL"), ("hang", "timeout")])
def test_check_reports_a_failing_resolver_with_exit_3(
    lab: Lab, fault_dns: list[FaultDns], mode: str, rcode: str
) -> None:
    server = FaultDns(mode).start()
    fault_dns.append(server)
    started = time.monotonic()
    proc = cdnprobe(
        "check", lab.url(PATH), "--resolver", f"127.0.0.1:{server.port}", "--timeout", "2"
    )
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"cdnprobe: {HOST}: {rcode} from 127.0.0.1:{server.port}"
    assert server.queries >= 2  # A and AAAA
    assert time.monotonic() - started < 20  # bounded by the DNS lifetime, not stuck


@pytest.mark.parametrize(("mode", "rcode"), [("servfail", "SERVFAIL"), ("hang", "timeout")])
def test_daemon_survives_a_failing_resolver(
    lab: Lab, fault_dns: list[FaultDns], tmp_path: Path, mode: str, rcode: str
) -> None:
    server = FaultDns(mode).start()
    fault_dns.append(server)
    config = tmp_path / "c.yaml"
    config.write_text(daemon_config(lab, f"127.0.0.1:{server.port}"))
    daemon = RunningDaemon(config).start()
    try:
        s = daemon.wait_for(lambda s: (s.get("cdnprobe_cycles_total") or 0) >= 2, 30)
        assert s.get("cdnprobe_dns_up", target="repo") == 0
        assert s.get("cdnprobe_dns_addresses", family="4") == 0
        assert not s.series("cdnprobe_edge_up")
        log = daemon.log()
        assert f"target=repo dns failed: {HOST}: {rcode} from 127.0.0.1:{server.port}" in log
        assert log.count("dns failed") == 1  # one line per change, not per cycle
        assert "Traceback" not in log
    finally:
        daemon.kill()


def test_name_vanishing_mid_run_and_coming_back(lab: Lab, tmp_path: Path) -> None:
    """NXDOMAIN appears mid-run: edge series go, dns_up 0; when the name returns, so do they."""
    lab.write(PATH, b"x" * 100, mtime=1_790_000_000)
    config = tmp_path / "c.yaml"
    config.write_text(daemon_config(lab, lab.resolver))
    daemon = RunningDaemon(config).start()
    try:
        daemon.wait_for(lambda s: s.get("cdnprobe_edge_up", address="127.0.0.2") == 1)
        lab.dns_records.pop(HOST)
        lab.set_dns("other.test", ["127.0.0.1"])  # rewrites the hosts file without repo.test
        s = daemon.wait_for(lambda s: s.get("cdnprobe_dns_up") == 0)
        assert not s.series("cdnprobe_edge_up")
        assert "NXDOMAIN" in daemon.log()
        lab.set_dns(HOST, ["127.0.0.2", "::1"])
        s = daemon.wait_for(lambda s: s.get("cdnprobe_edge_up", address="::1") == 1)
        assert s.get("cdnprobe_dns_up") == 1
        assert "dns recovered" in daemon.log()
    finally:
        daemon.kill()


@pytest.fixture
def crowd(lab: Lab, ca: object) -> Iterator[FaultEdge]:
    """200 edges on 127.0.1.1-200, one server counting how many requests overlap."""
    addresses = [f"127.0.1.{i}" for i in range(1, 201)]
    edge = FaultEdge(addresses, lab.port, "ok", ca).start()  # type: ignore[arg-type]
    lab.set_dns(HOST, addresses)
    yield edge
    edge.stop()


def test_200_addresses_need_tcp_and_respect_the_concurrency_bound(
    lab: Lab, crowd: FaultEdge, tmp_path: Path
) -> None:
    """A 200-record answer is truncated over UDP; all 200 arrive (TCP retry) and are probed,
    never more requests in flight than `concurrency`."""
    config = tmp_path / "c.yaml"
    config.write_text(
        daemon_config(lab, lab.resolver, concurrency=16, interval="30s", timeout="10s")
    )
    s = one_cycle(config, "repo", timeout_s=60)
    assert s.get("cdnprobe_dns_addresses", family="4") == 200
    assert len(s.series("cdnprobe_edge_up")) == 200
    assert all(v == 1 for v in s.samples["cdnprobe_edge_up"].values())
    assert crowd.requests == 200
    assert 2 <= crowd.max_in_flight <= 16
    # Over UDP alone the answer is cut (TC set): the 200 addresses above came over TCP.
    udp = dns.query.udp(
        dns.message.make_query(HOST, "A"), "127.0.0.1", port=lab.dns_port, timeout=5
    )
    assert udp.flags & dns.flags.TC
    assert sum(len(rrset) for rrset in udp.answer) < 200


def test_address_cap_cuts_and_says_so(lab: Lab, crowd: FaultEdge, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(daemon_config(lab, lab.resolver, max_edges=50, interval="30s", timeout="10s"))
    s = one_cycle(config, "repo", timeout_s=60)
    assert s.get("cdnprobe_dns_addresses", family="4") == 200
    assert s.get("cdnprobe_dns_addresses_dropped", target="repo") == 150
    assert len(s.series("cdnprobe_edge_up")) == 50
    assert crowd.requests == 50
