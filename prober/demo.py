"""`cdnprobe demo`: a mini CDN inside the process, watched by the real daemon.

A DNS responder on a loopback port names `repo.demo` with four edges on 127.0.0.2-5. Edge
127.0.0.4 still serves the previous Packages.gz; edge 127.0.0.5 cuts its Packages.gz short.
The daemon runs against it exactly as `cdnprobe run` would, from a generated config.
Plain HTTP: the demo ships no certificate authority. Nothing leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from prober.config import Config, PlainTarget

DEMO_HOST = "repo.demo"
EDGES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
STALE_EDGE, TRUNCATING_EDGE = "127.0.0.4", "127.0.0.5"
INRELEASE = "/dists/stable/InRelease"
PACKAGES = "/dists/stable/main/binary-amd64/Packages.gz"
NEW_DATE = "Mon, 23 Nov 2026 13:00:00 GMT"
OLD_DATE = "Mon, 23 Nov 2026 12:00:00 GMT"


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
            found = files.get(path)
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
    finally:
        writer.close()


@dataclass
class MiniCdn:
    """The demo's DNS responder and edges, on loopback ports chosen by the kernel."""

    dns_port: int = 0
    edge_port: int = 0
    _closers: list[Callable[[], None]] = field(default_factory=list)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _DnsResponder({DEMO_HOST: EDGES}), local_addr=("127.0.0.1", 0)
        )
        self._closers.append(transport.close)
        self.dns_port = transport.get_extra_info("sockname")[1]
        self.edge_port = _free_port(EDGES)
        for address in EDGES:
            handler = functools.partial(_serve_edge, edge_files(address))
            server = await asyncio.start_server(handler, address, self.edge_port)
            self._closers.append(server.close)

    def close(self) -> None:
        for close in self._closers:
            close()

    def config(self, listen: str, interval_s: float) -> Config:
        target = PlainTarget(
            name="demo",
            url=f"http://{DEMO_HOST}:{self.edge_port}",
            paths=[INRELEASE, PACKAGES],
            interval=interval_s,
            timeout=3.0,
            resolvers=[f"127.0.0.1:{self.dns_port}"],
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
