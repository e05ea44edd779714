"""An edge whose HTTP/2 path breaks while its HTTP/1.1 path works: what nginx cannot do.

It offers h2 and http/1.1 by ALPN. A client that picks http/1.1 always gets a correct
response (BODY); over h2 the `mode` decides:

ok: a correct response (the positive control).
reset: headers and part of the body, then RST_STREAM INTERNAL_ERROR (what Go reports as
    `stream error: stream ID 1; INTERNAL_ERROR`).
goaway: headers, then GOAWAY (NO_ERROR, covering the stream) and the connection closed
    before the body.
stall: headers and part of the body, then nothing (the client's RST_STREAMs are counted).
drain: on the first connection, a graceful GOAWAY (NO_ERROR) right after the first
    stream's headers, that stream then served in full and the connection closed; streams
    above it are left unanswered (the client must send them again on a new connection, whose
    streams are all served).
short: announces the whole body's content-length, sends a part and ends the stream.
garbage: answers the connection preface with bytes that are not HTTP/2 frames.

The server side is the `h2` library's state machine. With `root`, both versions serve the files under it (404 when missing) instead of BODY, so a
real client (go) can be pointed at it. It runs its own event loop in a thread
(as tests/faults.py): every wait is bounded, and stop() ends every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trustme
from h2.connection import ConnectionState
from h2.errors import ErrorCodes

from tests.lab import HOST

BODY = bytes(range(256)) * 1024  # 256 KiB: more than one window update's worth of frames
PART = 16384  # what the broken modes send before they break
WAIT_S = 30.0  # longest wait for a client's bytes or window


@dataclass
class H2FaultEdge:
    addresses: list[str]
    port: int
    mode: str  # ok | reset | goaway
    ca: trustme.CA
    cert: trustme.LeafCert | None = None  # default: repo.test (IP SANs can be added)
    body: bytes = BODY
    root: Path | None = None  # serve these files instead of `body`
    connections: int = 0
    h2_connections: int = 0
    requests: int = 0  # over either version
    resets_received: int = 0  # RST_STREAM frames from the client
    # what the client's SETTINGS and WINDOW_UPDATEs allowed (largest seen)
    client_stream_window: int = 0
    client_connection_window: int = 0
    client_enable_push: int | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self) -> H2FaultEdge:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (self.cert or self.ca.issue_cert(HOST)).configure_cert(context)
        context.set_alpn_protocols(["h2", "http/1.1"])
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop, self._stop = loop, asyncio.Event()
            server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.addresses, self.port, ssl=context)
            )
            ready.set()
            loop.run_until_complete(self._stop.wait())
            loop.run_until_complete(self._shutdown(server))
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("h2 fault edge did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _shutdown(self, server: asyncio.Server) -> None:
        server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        await asyncio.sleep(0.05)  # aborted transports finish closing
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.connections += 1
        tls = writer.get_extra_info("ssl_object")
        try:
            if tls is not None and tls.selected_alpn_protocol() == "h2":
                self.h2_connections += 1
                await H2Session(self, reader, writer).serve()
            else:
                await self._serve_http1(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ssl.SSLError):
            pass
        except (asyncio.CancelledError, h2.exceptions.H2Error):
            pass  # shutting down, or a client we do not care to argue with
        finally:
            writer.transport.abort()  # no await here: a cancel at shutdown must not land in it

    def content(self, path: str) -> tuple[int, bytes]:
        """(status, body) for a request path."""
        if self.root is None:
            return 200, self.body
        file = (self.root / unquote(path.split("?", 1)[0]).lstrip("/")).resolve()
        if self.root.resolve() not in file.parents or not file.is_file():
            return 404, b"not found\n"
        return 200, file.read_bytes()

    async def _serve_http1(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        for _ in range(10_000):  # keep-alive, bounded
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
            self.requests += 1
            parts = head.split(b" ", 2)
            status, body = self.content(parts[1].decode("latin-1") if len(parts) > 1 else "/")
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(body)))
            writer.write(body)
            await writer.drain()


class H2Session:
    """One h2 connection of the fault edge."""

    def __init__(
        self, edge: H2FaultEdge, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.edge, self.reader, self.writer = edge, reader, writer
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.window_open = asyncio.Event()
        self.done = False
        self.last_stream: int | None = None  # drain: the GOAWAY's last_stream_id
        self.drains = edge.mode == "drain" and edge.h2_connections == 1
        self.responders: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        if self.edge.mode == "garbage":
            await asyncio.wait_for(self.reader.read(65536), WAIT_S)
            self.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await self.writer.drain()
            await asyncio.wait_for(self.reader.read(65536), WAIT_S)  # until the client leaves
            return
        self.conn.initiate_connection()
        await self.flush()
        try:
            for _ in range(100_000):  # frames in, bounded
                if self.done:
                    return
                data = await asyncio.wait_for(self.reader.read(65536), WAIT_S)
                if not data:
                    return
                for event in self.conn.receive_data(data):
                    self.on_event(event)
                await self.flush()
        finally:
            for responder in self.responders:
                responder.cancel()

    def on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived) and event.stream_id is not None:
            self.edge.requests += 1
            path = dict(event.headers or []).get(b":path", b"/").decode("latin-1")
            responder = asyncio.get_running_loop().create_task(self.respond(event.stream_id, path))
            self.responders.add(responder)
            responder.add_done_callback(self.responders.discard)
        elif isinstance(event, h2.events.StreamReset):
            self.edge.resets_received += 1
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            settings = self.conn.remote_settings
            self.edge.client_enable_push = settings.enable_push
            self.edge.client_stream_window = max(
                self.edge.client_stream_window, settings.initial_window_size
            )
        elif isinstance(event, h2.events.WindowUpdated):
            self.edge.client_connection_window = max(
                self.edge.client_connection_window, self.conn.outbound_flow_control_window
            )
            self.window_open.set()

    async def respond(self, stream_id: int, path: str) -> None:
        # the client may go away or reset the stream at any point
        with contextlib.suppress(h2.exceptions.H2Error, OSError, TimeoutError):
            await self._respond(stream_id, path)

    async def _respond(self, stream_id: int, path: str) -> None:
        status, body = self.edge.content(path)
        self.conn.send_headers(
            stream_id,
            [(b":status", b"%d" % status), (b"content-length", b"%d" % len(body))],
        )
        mode = self.edge.mode
        if mode == "goaway":
            self.conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=stream_id)
            await self.flush()
            self.done = True
            self.writer.transport.abort()
            return
        if mode == "reset":
            await self.send_body(stream_id, body[:PART], end=False)
            self.conn.reset_stream(stream_id, ErrorCodes.INTERNAL_ERROR)
            await self.flush()
            return
        if self.drains:
            await self.drain(stream_id, body)
            return
        if mode == "stall":
            await self.send_body(stream_id, body[:PART], end=False)
            assert self.edge._stop is not None
            await asyncio.wait_for(self.edge._stop.wait(), WAIT_S)  # or the connection ends
            return
        if mode == "short":
            await self.send_body(stream_id, body[:PART], end=True)
            return
        await self.send_body(stream_id, body, end=True)

    async def drain(self, stream_id: int, body: bytes) -> None:
        if self.last_stream is not None and stream_id > self.last_stream:
            return  # above the GOAWAY: not processed
        self.last_stream = stream_id
        self.conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=stream_id)
        # h2 would refuse to send on after its own GOAWAY; a graceful one lets the streams it
        # covers finish (RFC 9113 §6.8), so keep the state machine open for this one
        self.conn.state_machine.state = ConnectionState.SERVER_OPEN
        await self.flush()
        await self.send_body(stream_id, body, end=True)
        self.done = True
        self.writer.close()  # after what is buffered: the covered stream is complete
        await asyncio.wait_for(self.writer.wait_closed(), WAIT_S)

    async def send_body(self, stream_id: int, data: bytes, *, end: bool) -> None:
        view = memoryview(data)
        for _ in range(100_000):  # frames out, bounded
            if not view:
                break
            window = self.conn.local_flow_control_window(stream_id)
            size = min(window, self.conn.max_outbound_frame_size, len(view))
            if size <= 0:
                self.window_open.clear()
                await asyncio.wait_for(self.window_open.wait(), WAIT_S)
                continue
            self.conn.send_data(stream_id, bytes(view[:size]))
            view = view[size:]
            await self.flush()
        if end:
            self.conn.end_stream(stream_id)
            await self.flush()

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()
