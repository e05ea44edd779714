"""A tiny TLS edge for the faults nginx cannot produce: short bodies, stalls, resets.

It runs its own event loop in a thread, so tests (and the CLI they start) talk to it over a
real socket on a loopback address, like any edge.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass, field

import trustme

from tests.lab import HOST


@dataclass
class FaultEdge:
    """An edge at `address:port` that answers every request according to `mode`.

    truncate: announces Content-Length 1000, sends 500 bytes, closes.
    chunked_cut: chunked body closed before the last chunk.
    hang: reads the request and never answers.
    reset: sends headers and part of the body, then resets the connection.
    markup: a complete 200 whose ETag carries HTML markup.
    """

    address: str
    port: int
    mode: str
    ca: trustme.CA
    requests: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _stop: asyncio.Event | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(HOST).configure_cert(context)
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.address, self.port, ssl=context)
            )
            ready.set()
            loop.run_until_complete(self._stop_requested())
            self._server.close()
            # Stalled handlers wait on the stop event too, so they end on their own.
            if self._handlers:
                loop.run_until_complete(asyncio.wait(self._handlers, timeout=5))
            loop.run_until_complete(asyncio.sleep(0.05))  # transports finish closing
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault edge did not start")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)

    async def _stop_requested(self) -> None:
        self._stop = asyncio.Event()
        await self._stop.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            self.requests += 1
            await getattr(self, "_" + self.mode)(writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.transport.abort()
            await asyncio.sleep(0)  # let the aborted transport finish closing

    async def _truncate(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500)
        await writer.drain()

    async def _chunked_cut(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + b"y" * 16 + b"\r\n"
        )
        await writer.drain()

    async def _markup(self, writer: asyncio.StreamWriter) -> None:
        body = b"served by a hostile edge"
        writer.write(
            b'HTTP/1.1 200 OK\r\nETag: "<script>alert(1)</script>"\r\n'
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()

    async def _hang(self, writer: asyncio.StreamWriter) -> None:
        assert self._stop is not None
        await asyncio.wait_for(self._stop.wait(), 60)

    async def _reset(self, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"z" * 1000)
        await writer.drain()
        await asyncio.sleep(0.05)
