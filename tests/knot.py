"""A GeoDNS authoritative server on loopback: Knot DNS with mod-geoip in subnet mode.

Knot answers `repo.test` by the client subnet a query carries (EDNS Client Subnet, RFC 7871),
as a CDN's authoritative servers do: each region's subnet gets that region's edges, any other
client the zone's default record. `www.repo.test` is a CNAME into another zone (`cdn.test`),
which an authoritative server answers with the CNAME alone: the asker must follow it, with the
same client subnet, to learn its region's edges. knotd runs in the foreground with its config,
rundir and storage under the test's directory, is waited for with a bounded poll and stopped by
PID. Subnets are documentation ranges: they are data in queries, no packet goes there.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.lab import free_port, spawn, stop_process

ZONE = "repo.test"
ALIAS = "www.repo.test"  # CNAME geo.cdn.test., another zone: followed by the asker
DEFAULT_EDGES = ("127.0.0.5",)  # the zone's own record: clients in no configured region


@dataclass(frozen=True)
class Region:
    name: str
    subnet: str  # ECS value that selects this region
    addresses: tuple[str, ...]


REGIONS = (
    Region("eu", "198.51.100.0/24", ("127.0.0.2", "127.0.0.3")),
    Region("us", "203.0.113.0/24", ("127.0.0.4", "::1")),
)


@dataclass
class KnotLab:
    root: Path
    regions: tuple[Region, ...] = REGIONS
    port: int = 0
    ttl_s: int = 30
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _control_dir: Path | None = field(default=None, repr=False)

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> KnotLab:
        knotd = shutil.which("knotd")
        if knotd is None:
            raise RuntimeError("knotd is not installed (Debian: knot, knot-module-geoip)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_dns_port()
        # A Unix socket path is at most 107 bytes and pytest's tmp_path is often longer:
        # knotd's control socket (unused here, but knotd exits if it cannot bind it) lives in
        # a short directory of its own, removed at stop.
        self._control_dir = Path(tempfile.mkdtemp(prefix="knot-"))
        self._write_files()
        self.proc = spawn([knotd, "-c", str(self.root / "knot.conf")], self.root / "knotd.log")
        self._wait_ready(timeout_s)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        if self._control_dir is not None:
            shutil.rmtree(self._control_dir, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "knotd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def query(self, name: str, rdtype: str, subnet: str | None = None) -> dns.message.Message:
        """One direct query (what kdig +subnet does), for checks of the lab itself."""
        options = [dns.edns.ECSOption.from_text(subnet)] if subnet else None
        q = dns.message.make_query(name, rdtype, use_edns=0, options=options)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=2)

    # ---- files --------------------------------------------------------------------------

    def _write_files(self) -> None:
        (self.root / "storage").mkdir(exist_ok=True)
        (self.root / "run").mkdir(exist_ok=True)
        (self.root / "storage" / f"{ZONE}.zone").write_text(self._repo_zone())
        (self.root / "storage" / "cdn.test.zone").write_text(self._cdn_zone())
        (self.root / "geo.conf").write_text(self._geo_conf())
        (self.root / "knot.conf").write_text(self._knot_conf())

    def _knot_conf(self) -> str:
        root = self.root
        return f"""
server:
    rundir: {root}/run
    listen: 127.0.0.1@{self.port}
    edns-client-subnet: on
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: {root}/storage
control:
    listen: {self._control_dir}/knot.sock
log:
  - target: stderr
    any: info
mod-geoip:
  - id: regions
    config-file: {root}/geo.conf
    ttl: {self.ttl_s}
    mode: subnet
template:
  - id: default
    storage: {root}/storage
    file: "%s.zone"
    module: mod-geoip/regions
zone:
  - domain: {ZONE}
  - domain: cdn.test
"""

    def _repo_zone(self) -> str:
        defaults = "\n".join(f"@ A {a}" for a in DEFAULT_EDGES)
        return f"""$ORIGIN {ZONE}.
$TTL {self.ttl_s}
@ SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 {self.ttl_s}
@ NS ns.{ZONE}.
ns A 127.0.0.1
{defaults}
www CNAME geo.cdn.test.
"""

    def _cdn_zone(self) -> str:
        defaults = "\n".join(f"geo A {a}" for a in DEFAULT_EDGES)
        return f"""$ORIGIN cdn.test.
$TTL {self.ttl_s}
@ SOA ns.{ZONE}. hostmaster.{ZONE}. 1 3600 600 86400 {self.ttl_s}
@ NS ns.{ZONE}.
{defaults}
"""

    def _geo_conf(self) -> str:
        """mod-geoip's response file: per name, a list of `net:` entries with their RRsets."""
        lines: list[str] = []
        for name in (ZONE, "geo.cdn.test"):
            lines.append(f"{name}:")
            for region in self.regions:
                lines.append(f"  - net: {region.subnet}")
                v4 = [a for a in region.addresses if ":" not in a]
                v6 = [a for a in region.addresses if ":" in a]
                if v4:
                    lines.append(f"    A: [ {', '.join(v4)} ]")
                if v6:
                    lines.append(f"    AAAA: [ {', '.join(v6)} ]")
        return "\n".join(lines) + "\n"

    # ---- readiness ----------------------------------------------------------------------

    def _wait_ready(self, timeout_s: float) -> None:
        """Until the zone answers (knotd binds before it has loaded its zones)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"knotd exited {self.proc.returncode}:\n{self.log()}")
            try:
                response = self.query(ZONE, "A")
            except (OSError, dns.exception.DNSException):
                response = None
            if response is not None and response.rcode() == dns.rcode.NOERROR and response.answer:
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"knotd did not serve {ZONE} within {timeout_s}s:\n{self.log()}")


def _free_dns_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (knotd serves both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free DNS port found")
