"""`cdnprobe demo`: a mini CDN inside the process, watched by the real daemon.

A DNS responder on a loopback port names `repo.demo` with four edges on 127.0.0.2-5, served
over HTTPS with a throwaway CA made at start; each edge presents the `repo.demo` certificate
only to a client that asks for that name by SNI, as a CDN edge does. Edge 127.0.0.4 still
serves the previous Packages.gz and catches up after a few cycles (its verdict goes from
stale to ok); edge 127.0.0.5 cuts its Packages.gz short. The daemon runs against it exactly
as `cdnprobe run` would, from a generated config. Nothing leaves the loopback interface.

The CA needs the `cryptography` package, which cdnprobe does not depend on; without it (or
with --plain-http) the demo runs over plain HTTP and says so in its banner.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import socket
import ssl
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from prober.config import Config, PlainTarget
from prober.errors import UsageError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from prober.daemon.snapshot import TargetSnapshot

DEMO_HOST = "repo.demo"
CDN_DEFAULT_NAME = "edge.cdn.demo"  # the certificate an edge presents without a matching SNI
EDGES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
STALE_EDGE, TRUNCATING_EDGE = "127.0.0.4", "127.0.0.5"
INRELEASE = "/dists/stable/InRelease"
PACKAGES = "/dists/stable/main/binary-amd64/Packages.gz"
NEW_DATE = "Mon, 23 Nov 2026 13:00:00 GMT"
OLD_DATE = "Mon, 23 Nov 2026 12:00:00 GMT"
RECOVER_AFTER = 3  # cycles after which the stale edge has the new Packages.gz
LISTEN_ATTEMPTS = 3  # the asked-for port, then free ports (another process may take one)


def _content(version: str, size: int) -> bytes:
    seed = hashlib.sha256(version.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


@dataclass(frozen=True, slots=True)
class DemoFile:
    body: bytes
    last_modified: str
    truncate: bool = False


def edge_files(address: str) -> dict[str, DemoFile]:
    files = {
        INRELEASE: DemoFile(_content("release-2", 3512), NEW_DATE),
        PACKAGES: DemoFile(_content("packages-2", 37101), NEW_DATE),
    }
    if address == STALE_EDGE:
        files[PACKAGES] = DemoFile(_content("packages-1", 35577), OLD_DATE)
    if address == TRUNCATING_EDGE:
        files[PACKAGES] = DemoFile(files[PACKAGES].body, NEW_DATE, truncate=True)
    return files


# ---- TLS: a throwaway CA ---------------------------------------------------------------


def tls_available() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


def edge_tls_context(directory: Path, names: tuple[str, ...]) -> ssl.SSLContext:
    """Write ca.pem and one leaf per name into `directory`; the context picks a leaf by SNI.

    The first name is the default, presented when the client sends no SNI or another name.
    """
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_cert(ca_key)
    _write_private(directory / "ca.pem", _pem(ca_cert))
    by_name = {name: _leaf_context(directory, name, ca_key, ca_cert) for name in names}

    def choose(conn: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: ssl.SSLContext) -> None:
        # One address, many names: the certificate follows the SNI, as on a CDN edge.
        chosen = by_name.get((name or "").lower())
        if chosen is not None:
            conn.context = chosen

    default = by_name[names[0]]
    default.sni_callback = choose
    return default


def _leaf_context(
    directory: Path, name: str, ca_key: EllipticCurvePrivateKey, ca_cert: x509.Certificate
) -> ssl.SSLContext:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = directory / f"{name}.pem"
    _write_private(path, _pem(_leaf_cert(name, key, ca_key, ca_cert)) + key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(path)
    context.set_alpn_protocols(["http/1.1"])  # the demo's edges speak HTTP/1.1 only
    return context


def _ca_cert(key: EllipticCurvePrivateKey) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cdnprobe demo CA (throwaway)")])
    signs_certs = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    # Python 3.13 verifies strictly (VERIFY_X509_STRICT): key usage and key ids must be there.
    return (
        _cert_builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(signs_certs, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _leaf_cert(
    name: str,
    key: EllipticCurvePrivateKey,
    ca_key: EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signs_handshakes = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    issuer_id = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return (
        _cert_builder(ca_cert.subject, subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(signs_handshakes, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(issuer_id, critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _cert_builder(
    issuer: x509.Name, subject: x509.Name, key: EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    from cryptography import x509

    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .issuer_name(issuer)
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))  # a client whose clock is a little behind
        .not_valid_after(now + timedelta(days=7))
    )


def _pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data)


# ---- DNS and edges ---------------------------------------------------------------------


class _DnsResponder(asyncio.DatagramProtocol):
    def __init__(self, records: dict[str, tuple[str, ...]]) -> None:
        self.records = records
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport, hence the cast.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text().rstrip(".").lower()
            addresses = self.records.get(name)
            if addresses is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 0, "IN", "A", *addresses))
        if self.transport is not None:
            self.transport.sendto(response.to_wire(), addr)


async def _serve_edge(
    files: dict[str, DemoFile], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode("latin-1")
            found = files.get(path)  # looked up per request: an edge can catch up meanwhile
            if found is None:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                continue
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Length: {len(found.body)}\r\n"
                f"Last-Modified: {found.last_modified}\r\n"
                f'ETag: "{hashlib.md5(found.body).hexdigest()[:16]}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n".encode()
            )
            if found.truncate:
                writer.write(found.body[: len(found.body) // 2])
                await writer.drain()
                break
            writer.write(found.body)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, IndexError):
        pass
    except ssl.SSLError:
        pass  # a client that refused the certificate, e.g. curl without --cacert
    finally:
        writer.close()


@dataclass
class MiniCdn:
    """The demo's DNS responder and edges, on loopback ports chosen by the kernel."""

    tls: bool = True
    dns_port: int = 0
    edge_port: int = 0
    ca_file: Path | None = None
    files: dict[str, dict[str, DemoFile]] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DnsResponder({DEMO_HOST: EDGES}), local_addr=("127.0.0.1", 0)
        )
        self._closers.append(transport.close)
        self.dns_port = transport.get_extra_info("sockname")[1]
        context = self._tls_context() if self.tls else None
        self.edge_port = _free_port(EDGES)
        for address in EDGES:
            self.files[address] = edge_files(address)
            handler = functools.partial(_serve_edge, self.files[address])
            server = await asyncio.start_server(handler, address, self.edge_port, ssl=context)
            self._closers.append(server.close)

    def _tls_context(self) -> ssl.SSLContext:
        directory = tempfile.TemporaryDirectory(prefix="cdnprobe-demo-")
        self._closers.append(directory.cleanup)
        context = edge_tls_context(Path(directory.name), (CDN_DEFAULT_NAME, DEMO_HOST))
        self.ca_file = Path(directory.name) / "ca.pem"
        return context

    def catch_up(self, address: str) -> None:
        """The edge finishes its sync: from now on it serves what the others serve."""
        self.files[address].update(edge_files(EDGES[0]))

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{DEMO_HOST}:{self.edge_port}"

    def config(self, listen: str, interval_s: float) -> Config:
        target = PlainTarget(
            name="demo",
            url=self.base_url,
            paths=[INRELEASE, PACKAGES],
            interval=interval_s,
            timeout=3.0,
            resolvers=[f"127.0.0.1:{self.dns_port}"],
            ca_file=str(self.ca_file) if self.ca_file else None,
        )
        return Config(listen=listen, dns_min_interval=0, targets=[target])


def _free_port(addresses: tuple[str, ...]) -> int:
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(a, port) for a in addresses[1:]):
            return port
    raise OSError("no port free on every demo edge address")


def _bindable(address: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def free_listen(listen: str) -> str:
    """The same host as `listen` with a port the kernel says is free now (bind to port 0)."""
    host = listen.rpartition(":")[0]
    bare = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((bare, 0))
        port = int(probe.getsockname()[1])
    return f"{host}:{port}"


# ---- the demo: daemon + table per cycle -------------------------------------------------


async def run_demo(listen: str, interval_s: float, cycles: int | None, *, tls: bool = True) -> None:
    """Serve the daemon against a fresh MiniCdn until Ctrl-C or `cycles` cycles."""
    from prober.daemon.core import Daemon
    from prober.daemon.server import serve

    cdn = MiniCdn(tls=tls and tls_available())
    try:
        await cdn.start()
    except OSError as exc:
        cdn.close()
        raise UsageError(
            f"the demo's edges need the loopback addresses 127.0.0.2-5 "
            f"(Linux has all of 127.0.0.0/8): {exc.strerror or exc}"
        ) from None
    stop = asyncio.Event()
    show = _CycleTable(cdn, cycles, stop)
    try:
        attempt, problem = listen, ""
        for _ in range(LISTEN_ATTEMPTS):
            daemon = Daemon(cdn.config(attempt, interval_s), on_report=show)
            try:
                await serve(
                    daemon,
                    attempt,
                    on_listening=lambda bound: print(banner(cdn, listen, bound), flush=True),
                    stop=stop,
                    grace_s=1.0,
                )
                return
            except OSError as exc:
                problem = exc.strerror or str(exc)
            try:
                # The config needs a real port (1-65535), so ask the kernel for one that is
                # free now instead of passing port 0; another process may still take it first.
                attempt = free_listen(listen)
            except OSError as exc:  # e.g. an address this machine does not have
                raise UsageError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        raise UsageError(f"cannot listen on {listen} nor on a free port of its host: {problem}")
    finally:
        cdn.close()


@dataclass
class _CycleTable:
    """After each cycle: the edge table; after RECOVER_AFTER cycles the stale edge catches up."""

    cdn: MiniCdn
    cycles: int | None
    stop: asyncio.Event
    seen: int = 0

    def __call__(self, snapshot: TargetSnapshot) -> None:
        from prober.model import Report
        from prober.render import table

        self.seen += 1
        if snapshot.report is not None:
            stamp = snapshot.report.finished_at.strftime("%H:%M:%S")
            print(f"--- cycle {self.seen} at {stamp} ---")
            report = Report(snapshot.report.finished_at, (snapshot.report,))
            sys.stdout.write(table(report, sys.stdout.isatty()))
        if self.seen == RECOVER_AFTER:
            self.cdn.catch_up(STALE_EDGE)
            print(f"--- {STALE_EDGE} finished its sync: it now serves the new Packages.gz ---")
        sys.stdout.flush()
        if self.cycles is not None and self.seen >= self.cycles:
            self.stop.set()


def banner(cdn: MiniCdn, asked: str, bound: str) -> str:
    lines = [
        f"cdnprobe demo: {DEMO_HOST} has 4 edges on 127.0.0.2-5 port {cdn.edge_port} "
        f"(DNS on 127.0.0.1:{cdn.dns_port});",
        f"  {STALE_EDGE} still serves the previous Packages.gz and catches up after cycle "
        f"{RECOVER_AFTER};",
        f"  {TRUNCATING_EDGE} cuts Packages.gz short.",
    ]
    check = ["cdnprobe check", f"--resolver 127.0.0.1:{cdn.dns_port}"]
    if cdn.ca_file is not None:
        lines += [
            f"  HTTPS as on a CDN: the {DEMO_HOST} certificate only for SNI {DEMO_HOST}, "
            f"{CDN_DEFAULT_NAME} otherwise;",
            f"  throwaway CA: {cdn.ca_file} (removed on exit).",
        ]
        check.append(f"--ca-file {cdn.ca_file}")
    elif tls_available():
        lines.append("  plain HTTP (--plain-http).")
    else:
        lines.append("  plain HTTP: HTTPS needs the Python package 'cryptography' for its CA.")
    lines += [
        "  check it yourself while it runs:",
        f"    {' '.join(check)} \\",
        f"      {cdn.base_url}{PACKAGES}",
    ]
    if bound != asked:
        lines.append(f"  {asked} is taken: serving on {bound} instead.")
    lines += [
        f"  metrics: http://{bound}/metrics   status page: http://{bound}/",
        "  Ctrl-C stops.",
    ]
    return "\n".join(lines)
