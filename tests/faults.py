"""A tiny edge for the faults nginx cannot produce: short bodies, stalls, resets, garbage.

It runs its own event loop in a thread, so tests (and the CLI or daemon they start) talk to
it over real sockets on loopback addresses, like any edge. Every stall ends when the server
stops, so nothing outlives a test.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass, field

import trustme

from tests.lab import HOST

OK_BODY = b"fault edge says ok\n"


@dataclass
class FaultEdge:
    """An edge on `addresses`:`port` answering every request according to `mode`.

    ok: 200 with OK_BODY, keep-alive, 20 ms per request (to measure concurrency).
    truncate: announces Content-Length 1000, sends 500 bytes, closes.
    chunked_cut: a chunked body closed before the last chunk.
    reset: headers and part of the body, then a reset.
    hang: reads the request and never answers.
    silent: no TLS at all; accepts and never speaks (a handshake that never completes).
    drip: Content-Length 100, then one byte per second.
    endless: a chunked body that never ends.
    big_headers: a 64 KiB header line.
    garbage: bytes that are not HTTP.
    http10_early: HTTP/1.0 without Content-Length, closed after a part of the body.
    status_503: 503 Service Unavailable, every time.
    every_other: `Connection: close` answers, and every second connection is dropped unanswered.
    markup: a complete 200 whose ETag carries HTML markup.
    drop_reused: answers the first request of a connection (keep-alive) and drops the
        connection on the second: what a client meets when an edge closes an idle connection
        just as it is reused.
    """

    addresses: list[str]
    port: int
    mode: str
    ca: trustme.CA
    cert: trustme.LeafCert | None = None  # default: a valid certificate for repo.test
    requests: int = 0
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self) -> FaultEdge:
        context: ssl.SSLContext | None = None
        if self.mode != "silent":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            (self.cert or self.ca.issue_cert(HOST)).configure_cert(context)
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._stop = asyncio.Event()
            server = loop.run_until_complete(
                asyncio.start_server(
                    self._handle, self.addresses, self.port, ssl=context, backlog=512
                )
            )
            ready.set()
            loop.run_until_complete(self._stop.wait())
            loop.run_until_complete(_shutdown(server))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault edge did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _stopped(self, limit_s: float = 60) -> None:
        assert self._stop is not None
        await asyncio.wait_for(self._stop.wait(), limit_s)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self.connections += 1
        try:
            if self.mode == "silent":
                await self._stopped()
                return
            if self.mode == "every_other" and self.connections % 2 == 0:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                return  # dropped without an answer
            served = 0
            while True:  # keep-alive: one request after another on this connection
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                self.requests += 1
                served += 1
                if self.mode == "drop_reused" and served > 1:
                    return
                keep_going = await getattr(self, "_" + self.mode)(writer)
                if not keep_going:
                    return
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down: end normally, so asyncio's stream callback stays quiet
        finally:
            writer.transport.abort()
            await asyncio.sleep(0)  # let the aborted transport finish closing

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        if writer.transport.is_closing():
            # the client went away; drain() would not say so (Python 3.11), and the endless
            # and drip modes would keep this loop busy for nothing
            raise ConnectionResetError("client closed the connection")
        writer.write(data)
        await writer.drain()

    async def _ok(self, writer: asyncio.StreamWriter) -> bool:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.02)
            await self._send(
                writer, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(OK_BODY), OK_BODY)
            )
        finally:
            self.in_flight -= 1
        return True

    async def _drop_reused(self, writer: asyncio.StreamWriter) -> bool:
        return await self._ok(writer)

    async def _truncate(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500)
        return False

    async def _chunked_cut(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + b"y" * 16 + b"\r\n",
        )
        return False

    async def _reset(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 1000)
        await asyncio.sleep(0.05)
        return False

    async def _hang(self, writer: asyncio.StreamWriter) -> bool:
        await self._stopped()
        return False

    async def _drip(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        for _ in range(100):
            await self._send(writer, b".")
            try:
                await self._stopped(1.0)
                return False
            except TimeoutError:
                continue
        return False

    async def _endless(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(writer, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"e" * 65536)
        assert self._stop is not None
        for _ in range(100_000):  # bounded: 6.5 GB at most, far past any max_body_size
            if self._stop.is_set():
                break
            await self._send(writer, chunk)
            await asyncio.sleep(0)  # drain() need not yield: let a lost connection be noticed
        return False

    async def _big_headers(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 65536 + b"\r\nContent-Length: 0\r\n\r\n",
        )
        return False

    async def _garbage(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(writer, b"\x00\x01 THIS IS NOT HTTP \xff\xfe\r\n\r\n")
        return False

    async def _http10_early(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(writer, b"HTTP/1.0 200 OK\r\n\r\npart of a body")
        return False

    async def _status_503(self, writer: asyncio.StreamWriter) -> bool:
        body = b"busy\n"
        await self._send(
            writer,
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        return True

    async def _every_other(self, writer: asyncio.StreamWriter) -> bool:
        await self._send(
            writer,
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(OK_BODY), OK_BODY),
        )
        return False

    async def _markup(self, writer: asyncio.StreamWriter) -> bool:
        body = b"served by a hostile edge"
        await self._send(
            writer,
            b'HTTP/1.1 200 OK\r\nETag: "<script>alert(1)</script>"\r\n'
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        return True


async def _shutdown(server: asyncio.Server) -> None:
    """Close the listener, then let every handler end: stalled ones wait on the stop event,
    and a handshake still in flight starts its handler late, so look again until all are done."""
    server.close()
    me = asyncio.current_task()
    for _ in range(40):
        pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
        if not pending:
            break
        await asyncio.wait(pending, timeout=0.05)
        for task in pending:
            task.cancel()  # idle keep-alive connections: the handler ends quietly
    await asyncio.sleep(0.05)  # aborted transports finish closing
    await server.wait_closed()


@dataclass
class FaultDns:
    """A DNS server on 127.0.0.1 (UDP) that answers every query with SERVFAIL, or never."""

    mode: str  # "servfail" or "hang"
    port: int = 0
    queries: int = 0
    _transport: asyncio.DatagramTransport | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    def start(self) -> FaultDns:
        ready = threading.Event()
        owner = self

        class Protocol(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                owner._transport = transport  # type: ignore[assignment]  # a DatagramTransport here

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                owner.queries += 1
                if owner.mode == "servfail" and len(data) >= 12 and owner._transport is not None:
                    flags = bytes([0x80 | (data[2] & 0x79), 0x80 | 2])  # QR, RD kept, RA, SERVFAIL
                    owner._transport.sendto(data[:2] + flags + data[4:], addr)

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            transport, _ = loop.run_until_complete(
                loop.create_datagram_endpoint(Protocol, local_addr=("127.0.0.1", self.port))
            )
            self.port = transport.get_extra_info("sockname")[1]
            ready.set()
            loop.run_forever()
            transport.close()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault DNS did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)
