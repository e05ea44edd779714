"""A real CDN on loopback: nginx TLS edges on 127.0.0.x and ::1, dnsmasq naming them.

Every edge address gets two server blocks on the same port: a default server with a
certificate for another name, and the `repo.test` server. A client that forgets SNI lands on
the default one and fails verification. Edges serve per-address document roots, so a test
can give one edge an older file. Processes are stopped by PID; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import trustme

HOST = "repo.test"
ALIAS = "alias.test"  # CNAME → cdn.test → repo addresses, to follow a chain
ORIGIN = "origin.test"
LOOPBACK_EDGES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "::1")


def free_port(addresses: Iterable[str] = ("127.0.0.1",)) -> int:
    """A port free for TCP on every address given (and UDP on the first, for DNS)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if all(_can_bind(a, port) for a in addresses):
            return port
    raise RuntimeError("no free port found")


def _can_bind(address: str, port: int, kind: int = socket.SOCK_STREAM) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, kind) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def wait_for_tcp(address: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    while time.monotonic() < deadline:
        with socket.socket(family) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listening on {address}:{port} after {timeout_s}s")


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Starts a server with stdout and stderr in `log` (the child keeps its own copy)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class EdgeSpec:
    address: str
    gzip: bool = False  # compress on the fly whenever a client accepts gzip
    http2: bool = False  # offer h2 by ALPN (nginx 1.22: `listen ... ssl http2;`)


@dataclass
class Lab:
    root: Path
    ca: trustme.CA
    edges: list[EdgeSpec]
    port: int = 0
    dns_port: int = 0
    nginx: subprocess.Popen[bytes] | None = None
    dnsmasq: subprocess.Popen[bytes] | None = None
    dns_records: dict[str, list[str]] = field(default_factory=dict)
    http_port: int = 0  # when set, every edge also serves its files over plain HTTP there
    worker_connections: int = 1024  # nginx's; the scale bench needs more (a socket per pool)

    # ---- files --------------------------------------------------------------------------

    def docroot(self, address: str) -> Path:
        return self.root / "edges" / address.replace(":", "_")

    def write(
        self, path: str, data: bytes, edges: Iterable[str] | None = None, mtime: float | None = None
    ) -> None:
        """Put `data` at `path` on the given edges (default: all), with Last-Modified `mtime`."""
        for address in edges if edges is not None else [e.address for e in self.edges]:
            target = self.docroot(address) / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            if mtime is not None:
                os.utime(target, (mtime, mtime))

    def remove(self, path: str, edges: Iterable[str]) -> None:
        for address in edges:
            (self.docroot(address) / path.lstrip("/")).unlink()

    def url(self, path: str, host: str = HOST) -> str:
        return f"https://{host}:{self.port}{path}"

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    @property
    def ca_file(self) -> str:
        return str(self.root / "ca.pem")

    def access_log(self) -> list[str]:
        path = self.root / "access.log"
        return path.read_text().splitlines() if path.exists() else []

    # ---- processes ----------------------------------------------------------------------

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.root / "ca.pem"))
        self._write_certs()
        for edge in self.edges:
            self.docroot(edge.address).mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port([e.address for e in self.edges])
        self.dns_port = self.dns_port or _free_dns_port()
        (self.root / "nginx.conf").write_text(self._nginx_conf())
        conf = str(self.root / "nginx.conf")
        self.nginx = spawn(["nginx", "-c", conf, "-p", str(self.root)], self.root / "nginx.log")
        for edge in self.edges:
            wait_for_tcp(edge.address, self.port)
        if not self.dns_records:
            self.dns_records = {HOST: [e.address for e in self.edges], ORIGIN: ["127.0.0.1"]}
        self._write_hosts()
        self.dnsmasq = spawn(self._dnsmasq_argv(), self.root / "dnsmasq.log")
        wait_for_tcp("127.0.0.1", self.dns_port)

    def stop(self) -> None:
        stop_process(self.dnsmasq)
        stop_process(self.nginx)

    def set_dns(self, name: str, addresses: list[str]) -> None:
        """Change what dnsmasq answers for `name` (SIGHUP re-reads the hosts file)."""
        self.dns_records[name] = addresses
        self._write_hosts()
        assert self.dnsmasq is not None
        self.dnsmasq.send_signal(signal.SIGHUP)
        time.sleep(0.2)  # dnsmasq re-reads asynchronously; there is no completion signal

    def _write_certs(self) -> None:
        repo = self.ca.issue_cert(HOST, ALIAS, "cdn.test", ORIGIN)
        repo.cert_chain_pems[0].write_to_path(str(self.root / "repo.pem"))
        for pem in repo.cert_chain_pems[1:]:
            pem.write_to_path(str(self.root / "repo.pem"), append=True)
        repo.private_key_pem.write_to_path(str(self.root / "repo.key"))
        other = self.ca.issue_cert("default.invalid")
        other.cert_chain_pems[0].write_to_path(str(self.root / "default.pem"))
        other.private_key_pem.write_to_path(str(self.root / "default.key"))

    def _write_hosts(self) -> None:
        lines = [f"{a} {name}" for name, addresses in self.dns_records.items() for a in addresses]
        (self.root / "hosts").write_text("\n".join(lines) + "\n")

    def _dnsmasq_argv(self) -> list[str]:
        argv = [
            shutil.which("dnsmasq") or "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={self.dns_port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-negcache",
            "--cache-size=0",
            f"--addn-hosts={self.root / 'hosts'}",
            "--local=/test/",
            f"--cname={ALIAS},cdn.test",
            f"--cname=cdn.test,{HOST}",
            f"--pid-file={self.root / 'dnsmasq.pid'}",
            "--log-facility=-",
        ]
        if os.geteuid() == 0:
            argv.append("--user=root")
        return argv

    def _nginx_conf(self) -> str:
        root = self.root
        servers = "\n".join(self._servers(edge) for edge in self.edges)
        user = "user root;" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {root}/tmp_{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        return f"""
{user}
daemon off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
worker_rlimit_nofile {2 * self.worker_connections};
events {{ worker_connections {self.worker_connections}; }}
http {{
{temp}
    default_type application/octet-stream;
    log_format probe '$server_addr $host $ssl_server_name "$request" $status '
                     '"$http_accept_encoding" $connection';
    access_log {root}/access.log probe;
    keepalive_requests 100000;
    keepalive_timeout 300s;
{servers}
}}
"""

    def _servers(self, edge: EdgeSpec) -> str:
        listen = (
            f"[{edge.address}]:{self.port}"
            if ":" in edge.address
            else f"{edge.address}:{self.port}"
        )
        gzip = "gzip on; gzip_types *; gzip_min_length 1;" if edge.gzip else ""
        ssl = "ssl http2" if edge.http2 else "ssl"
        root = self.root
        plain = ""
        if self.http_port:
            host = f"[{edge.address}]" if ":" in edge.address else edge.address
            plain = f"""
    server {{
        listen {host}:{self.http_port} default_server;
        root {self.docroot(edge.address)};
    }}"""
        return f"""
    server {{
        listen {listen} {ssl} default_server;
        ssl_certificate {root}/default.pem;
        ssl_certificate_key {root}/default.key;
        return 421;
    }}
    server {{
        listen {listen} {ssl};
        server_name {HOST} {ALIAS} cdn.test {ORIGIN};
        ssl_certificate {root}/repo.pem;
        ssl_certificate_key {root}/repo.key;
        root {self.docroot(edge.address)};
        {gzip}
        location = /stub_status {{ stub_status; }}
        location = /moved {{ return 301 https://elsewhere.test/; }}
    }}{plain}"""


def _free_dns_port() -> int:
    for _ in range(50):
        port = free_port()
        if _can_bind("127.0.0.1", port, socket.SOCK_DGRAM):
            return port
    raise RuntimeError("no free DNS port found")
