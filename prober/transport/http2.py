"""HTTP/2 for probing, on python-hyper's `h2` state machine (it never sees a socket).

Why: Go's client (and curl) speak h2 to any TLS edge that offers it by ALPN, so an edge whose
h2 path is broken while HTTP/1.1 works looks healthy to an HTTP/1.1-only probe. One
connection per edge carries concurrent streams; bodies go chunk by chunk into the same
`http1.Exchange` (SHA-256 and a sink, never kept), so the Fetcher builds Observations the
same way for both versions.

Windows are raised (connection and stream: WINDOW) and every DATA frame is acknowledged at
once, so a large body is bound by the edge and the link, not by flow control. Server push is
disabled (SETTINGS_ENABLE_PUSH 0): nothing the edge sends is followed.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.connection import ConnectionState
from h2.errors import ErrorCodes

from prober.transport import http1
from prober.transport.http1 import (
    NO_BODY_STATUS,
    USER_AGENT,
    BodyTooLarge,
    BodyTruncated,
    Disconnected,
    Exchange,
    ProtocolError,
)
from prober.transport.streams import NotH2, StreamRefused, StreamReset, VersionedExchange

WINDOW = 16 << 20  # connection and stream receive windows: far above any link's BDP here
MAX_FRAME = 1 << 20  # edges may send larger DATA frames: fewer events per megabyte
FIRST_STREAMS = 100  # before the edge's SETTINGS arrive (as Go's initialMaxConcurrentStreams)
LAST_STREAM_ID = (1 << 31) - 1024  # past this a connection takes no new streams
ALPN_H2 = "h2"


def code_name(code: int) -> str:
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def request_headers(
    method: str, url_host: str, port: int, default_port: int, target: str
) -> list[tuple[bytes, bytes]]:
    """The h2 request: `:authority` is the URL's host (with its port unless the default),
    the same path quoting, Accept-Encoding and User-Agent as HTTP/1.1."""
    return [
        (b":method", method.encode("ascii")),
        (b":scheme", b"https"),
        (b":authority", http1.authority(url_host, port, default_port).encode("ascii")),
        (b":path", http1.quote_target(target).encode("ascii")),
        (b"accept-encoding", b"identity"),
        (b"user-agent", USER_AGENT.encode("ascii")),
    ]


class Connection(asyncio.Protocol):
    """One HTTP/2 connection: h2's events are turned into Exchange calls as bytes arrive."""

    def __init__(self) -> None:
        # Our request headers are built once per URL, lower-case and checked: h2 need not
        # re-validate them on every request (measured by bench/h2.py). What the edge sends
        # is still validated.
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._h2 = h2.connection.H2Connection(config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, Exchange] = {}
        self.closed = False
        self.draining = False  # GOAWAY seen or ids used up: no new streams
        self.used = False
        self.idle_since = time.monotonic()
        self._goaway: str | None = None  # the error code of a GOAWAY received
        self._max_streams = FIRST_STREAMS
        self._waiters: list[asyncio.Future[None]] = []
        self._unacked: dict[int, int] = {}  # DATA bytes per stream, for one WINDOW_UPDATE
        self._tail = bytearray()  # the start of a frame not yet whole

    # ---- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's: same methods
        codes = h2.settings.SettingCodes
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                codes.ENABLE_PUSH: 0,
                codes.INITIAL_WINDOW_SIZE: WINDOW,
                codes.MAX_FRAME_SIZE: MAX_FRAME,
                codes.MAX_HEADER_LIST_SIZE: http1.HEADER_MAX,
            },
        )
        self._h2.initiate_connection()
        # h2 applies our MAX_FRAME_SIZE when the edge acknowledges it, but checks each batch
        # of bytes against the size current when the batch began: larger frames right after
        # the ACK would fail. Accepting them early is harmless (RFC 9113 §6.5.3).
        self._h2.max_inbound_frame_size = MAX_FRAME
        self._h2.increment_flow_control_window(WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        """Hands h2 whole frames, and each DATA frame that ends a stream on its own: when h2
        fails a batch it returns none of the batch's events, and a body short of its
        content-length fails on exactly that frame (see _body_length_error)."""
        if self.closed:
            return
        buf = self._tail
        buf += data
        start = pos = 0
        while pos + 9 <= len(buf):
            length = int.from_bytes(buf[pos : pos + 3], "big")
            if length > MAX_FRAME:  # h2 would wait for all of it before it says so
                self._protocol_error(f"HTTP/2 frame of {length} bytes, over {MAX_FRAME}")
                return
            end = pos + 9 + length
            if end > len(buf):
                break
            if buf[pos + 3] == 0 and buf[pos + 4] & 1:  # DATA with END_STREAM
                stream_id = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
                if pos > start and not self._receive(buf, start, pos, None):
                    return
                if not self._receive(buf, pos, end, stream_id):
                    return
                start = end
            pos = end
        if pos > start and not self._receive(buf, start, pos, None):
            return
        del buf[:pos]
        self._acknowledge()
        self._flush()

    def _receive(self, buf: bytearray, start: int, end: int, stream_id: int | None) -> bool:
        """Feeds buf[start:end] to h2 and handles its events; False if the connection died."""
        try:
            with memoryview(buf) as view:
                events = self._h2.receive_data(view[start:end])  # h2 copies it
        except h2.exceptions.InvalidBodyLengthError as exc:
            self._body_length_error(exc, stream_id)
            self._flush()
            self.abort()
            return False
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(f"HTTP/2: {type(exc).__name__}: {exc}")
            return False
        for event in events:
            self._event(event)
        return True

    def _protocol_error(self, text: str) -> None:
        self._fail_all(ProtocolError(text[:200]))
        self._flush()
        self.abort()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._tail = bytearray()  # let a partial frame's buffer go now, as http1 does
        for exchange in list(self.streams.values()):
            exchange.fail(self._lost(exchange, exc))
        self.streams.clear()
        self._wake()

    def _lost(self, exchange: Exchange, exc: Exception | None) -> Exception:
        if self._goaway is not None:  # the streams above its last id are already failed
            return StreamReset(self._goaway, "GOAWAY before the body was complete:")
        if not exchange.headers_seen:
            return Disconnected(exc)
        if exchange.size is not None:
            return BodyTruncated(f"{exchange.bytes_read} of {exchange.size} bytes")
        return BodyTruncated(f"connection closed after {exchange.bytes_read} bytes")

    def _body_length_error(
        self, exc: h2.exceptions.InvalidBodyLengthError, stream_id: int | None
    ) -> None:
        # h2 checks DATA against content-length and, on a mismatch, ends the whole connection
        # without naming the stream. A short body fails on its END_STREAM frame, fed alone:
        # `stream_id`. A body over its length fails on any frame: the stream is then the one
        # whose announced size is the expected one. The other streams were cut by us, not by
        # the edge: they may be sent again.
        expected, actual = exc.expected_length, exc.actual_length
        for sid, exchange in self.streams.items():
            if sid == stream_id or (
                stream_id is None and exchange.size == expected and exchange.bytes_read <= actual
            ):
                if actual < expected:
                    exchange.fail(BodyTruncated(f"{actual} of {expected} bytes, stream ended"))
                else:
                    exchange.fail(ProtocolError(f"HTTP/2 body over its Content-Length {expected}"))
            else:
                exchange.reused = True
                exchange.fail(Disconnected(None))
        self.streams.clear()
        self._wake()

    # ---- events -------------------------------------------------------------------------

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.ResponseReceived):
            self._response(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._ended(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self._reset(event)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._terminated(event)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._max_streams = self._h2.remote_settings.max_concurrent_streams
            self._wake()
        # informational responses, trailers, pings, window updates: h2 handles or we ignore

    def _data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        if stream_id is None:
            return
        # acknowledged once this batch of bytes is handled: the body is hashed, never buffered
        self._unacked[stream_id] = self._unacked.get(stream_id, 0) + (
            event.flow_controlled_length or 0
        )
        exchange = self.streams.get(stream_id)
        if exchange is None or not event.data:
            return
        try:
            exchange.feed(memoryview(event.data))
        except BodyTooLarge as exc:
            self._close_stream(stream_id, exc)

    def _acknowledge(self) -> None:
        for stream_id, size in self._unacked.items():
            self._h2.acknowledge_received_data(size, stream_id)
        self._unacked.clear()

    def _response(self, event: h2.events.ResponseReceived) -> None:
        stream_id = event.stream_id
        exchange = self.streams.get(stream_id) if stream_id is not None else None
        if exchange is None or stream_id is None:
            return
        try:
            _set_head(exchange, event.headers or [])
        except (ProtocolError, BodyTooLarge) as exc:
            self._close_stream(stream_id, exc)

    def _ended(self, stream_id: int | None) -> None:
        exchange = self.streams.pop(stream_id, None) if stream_id is not None else None
        if exchange is None:
            return
        self._wake()
        if not exchange.headers_seen:
            exchange.fail(ProtocolError("HTTP/2 stream ended without a response"))
        elif (
            exchange.size is not None
            and not exchange.head_only
            and (exchange.bytes_read < exchange.size and exchange.status not in NO_BODY_STATUS)
        ):
            exchange.fail(BodyTruncated(f"{exchange.bytes_read} of {exchange.size} bytes"))
        else:
            exchange.finish()

    def _reset(self, event: h2.events.StreamReset) -> None:
        exchange = self.streams.pop(event.stream_id, None) if event.stream_id is not None else None
        if exchange is None:
            return
        self._wake()
        code = code_name(event.error_code or 0)
        if not event.remote_reset:
            exchange.fail(ProtocolError(f"HTTP/2 stream error {code}"))
        elif event.error_code == ErrorCodes.REFUSED_STREAM and not exchange.headers_seen:
            exchange.fail(StreamRefused(code, "RST_STREAM"))
        else:
            exchange.fail(StreamReset(code, "RST_STREAM"))

    def _terminated(self, event: h2.events.ConnectionTerminated) -> None:
        code, last = code_name(event.error_code or 0), event.last_stream_id or 0
        self._goaway, self.draining = code, True
        for stream_id in [s for s in self.streams if s > last]:
            self.streams.pop(stream_id).fail(
                StreamRefused(code, "GOAWAY before the stream was processed:")
            )
        if event.error_code == ErrorCodes.NO_ERROR and self.streams:
            # A graceful GOAWAY (nginx after keepalive_requests, a reload) lets the streams
            # below last_stream_id finish, as Go's client does; h2 would refuse their frames
            # once closed, so keep its state machine open while they drain.
            self._h2.state_machine.state = ConnectionState.CLIENT_OPEN
            return
        for stream_id in list(self.streams):
            self.streams.pop(stream_id).fail(
                StreamReset(code, "GOAWAY before the body was complete:")
            )
        self.abort()

    # ---- requests -----------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return not self.closed and not self.draining

    async def open_stream(self, headers: list[tuple[bytes, bytes]], exchange: Exchange) -> int:
        """Sends the request on a new stream once the edge's concurrency limit allows."""
        while len(self.streams) >= self._max_streams:  # bounded by the caller's timeout
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
        if not self.usable:
            exchange.reused = True  # not sent: safe to send again on a new connection
            raise Disconnected(None)
        stream_id = self._h2.get_next_available_stream_id()
        if stream_id >= LAST_STREAM_ID:
            self.draining = True
        exchange.reused, self.used = self.used, True
        self._h2.send_headers(stream_id, headers, end_stream=True)
        self.streams[stream_id] = exchange
        self._flush()
        return stream_id

    def cancel(self, stream_id: int) -> None:
        """The caller gave up (timeout, cancellation): reset the stream, keep the connection."""
        if self.streams.pop(stream_id, None) is None or self.closed:
            return
        self._wake()
        try:
            self._h2.reset_stream(stream_id, ErrorCodes.CANCEL)
        except h2.exceptions.H2Error:
            return
        self._flush()

    def _close_stream(self, stream_id: int, exc: Exception) -> None:
        exchange = self.streams.get(stream_id)
        self.cancel(stream_id)
        if exchange is not None:
            exchange.fail(exc)

    def retire(self) -> None:
        """No new streams; closed once the running ones are done."""
        self.draining = True
        self._wake()

    def _wake(self) -> None:
        self.idle_since = time.monotonic()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self.draining and not self.streams and not self.closed:
            self.abort()

    def _fail_all(self, exc: Exception) -> None:
        for exchange in self.streams.values():
            exchange.fail(exc)
        self.streams.clear()
        self._wake()

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._wake()


def _set_head(exchange: Exchange, raw: list[tuple[bytes, bytes]]) -> None:
    headers: dict[str, str] = {}
    status = None
    for name_b, value_b in raw:
        name, value = name_b.decode("latin-1"), value_b.decode("latin-1")
        if name == ":status":
            status = int(value) if value.isascii() and value.isdigit() and len(value) == 3 else 0
            continue
        seen = headers.get(name)
        if seen is None:
            headers[name] = value
        elif name != "content-length":  # h2 already refused conflicting lengths
            headers[name] = f"{seen}, {value}"
    if not status:
        raise ProtocolError("HTTP/2 response without a valid :status")
    exchange.status, exchange.headers = status, headers
    if "content-length" in headers:
        exchange.size = http1.content_length(headers["content-length"])
        if exchange.size is not None and exchange.size > exchange.limit and not exchange.head_only:
            raise BodyTooLarge(f"Content-Length {exchange.size} > {exchange.limit}")


class Negotiating(asyncio.Protocol):
    """Stands in while TLS negotiates; once the handshake is done (ALPN known) it hands the
    transport to an HTTP/2 or an HTTP/1.1 connection, before any response byte is read."""

    def __init__(self) -> None:
        self.chosen: Connection | http1.Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tls = transport.get_extra_info("ssl_object")
        alpn = tls.selected_alpn_protocol() if tls is not None else None
        chosen: Connection | http1.Connection = (
            Connection() if alpn == ALPN_H2 else http1.Connection()
        )
        transport.set_protocol(chosen)
        chosen.connection_made(transport)
        self.chosen = chosen


async def connect(
    address: str, port: int, server_hostname: str, context: ssl.SSLContext
) -> Connection | http1.Connection:
    """TCP and TLS (with the context's ALPN offer) to an edge; the protocol the edge picked."""
    loop = asyncio.get_running_loop()
    try:
        _, negotiating = await loop.create_connection(
            Negotiating, address, port, ssl=context, server_hostname=server_hostname
        )
    except ssl.SSLError:
        raise
    except OSError as exc:
        raise http1.ConnectFailed(exc.errno, exc.strerror or str(exc)) from exc
    if negotiating.chosen is None:
        raise Disconnected(None)
    return negotiating.chosen


class EdgePool:
    """HTTP/2 (or, when the edge picks it by ALPN, HTTP/1.1) to one address.

    `require_h2`: an edge that does not negotiate h2 is a protocol error. Otherwise (auto) an
    edge that picks http/1.1 is spoken to through an http1.EdgePool, handed that first
    connection, and asked again on the next new connection (an edge may change its mind).
    """

    def __init__(
        self,
        address: str,
        port: int,
        server_hostname: str,
        ssl_context: ssl.SSLContext,
        limit: int,
        keepalive_s: float,
        *,
        require_h2: bool,
    ) -> None:
        self.address, self.port = address, port
        self._hostname, self._ssl = server_hostname, ssl_context
        self._keepalive_s, self._require_h2 = keepalive_s, require_h2
        self._h1 = _AlpnHttp1Pool(self, limit)
        self._h2: Connection | None = None
        self._speaks_h1 = False
        self._connecting = asyncio.Lock()
        self.closed = False

    async def exchange(
        self,
        request: bytes,
        headers: list[tuple[bytes, bytes]],
        exchange: VersionedExchange,
        *,
        fresh: bool = False,
    ) -> None:
        """Runs one exchange, on h2 unless the edge picked http/1.1 (exchange.http_version)."""
        exchange.http_version = "2"
        if not self._speaks_h1:
            connection = await self._h2_connection()
            if connection is not None:
                await _stream(connection, headers, exchange)
                return
        exchange.http_version = "1.1"
        try:
            await self._h1.exchange(request, exchange, fresh=fresh)
        except Renegotiated:
            assert self._h2 is not None
            exchange.http_version = "2"
            await _stream(self._h2, headers, exchange)

    async def _h2_connection(self) -> Connection | None:
        # A retry (fresh) needs no forced new connection: the one that failed it is closed or
        # draining, and retries that arrive together share the next one.
        async with self._connecting:  # one connection per edge: concurrent callers share it
            current = self._h2
            if current is not None and current.usable and self._alive(current):
                return current
            if self._speaks_h1:
                return None  # learned while this caller waited for the lock
            if current is not None:
                current.retire()
            connection = await connect(self.address, self.port, self._hostname, self._ssl)
            if isinstance(connection, Connection):
                self._h2 = connection
                return connection
            self.adopt_h1(connection)
            return None

    def _alive(self, connection: Connection) -> bool:
        idle_s = time.monotonic() - connection.idle_since
        return bool(connection.streams) or idle_s < self._keepalive_s

    def adopt_h1(self, connection: http1.Connection) -> None:
        if self._require_h2:
            connection.abort()
            raise NotH2("the edge did not negotiate h2 by ALPN (HTTP/2 required)")
        self._speaks_h1 = True
        self._h1.give(connection)

    def adopt_h2(self, connection: Connection) -> None:
        self._speaks_h1 = False
        if self._h2 is not None:
            self._h2.retire()
        self._h2 = connection

    def close(self) -> None:
        self.closed = True
        self._h1.close()
        if self._h2 is not None:
            self._h2.abort()


async def _stream(connection: Connection, headers: list[tuple[bytes, bytes]], ex: Exchange) -> None:
    stream_id: int | None = None
    try:
        stream_id = await connection.open_stream(headers, ex)
        await ex.done
    finally:
        # a timeout cancels ex.done too: whether the stream is still open is the connection's
        # to say (cancel is a no-op for a finished stream)
        if stream_id is not None:
            connection.cancel(stream_id)  # timeout or cancellation: the connection lives on


class Renegotiated(Disconnected):
    """A new connection of an edge that spoke HTTP/1.1 picked h2 this time."""


class _AlpnHttp1Pool(http1.EdgePool):
    """http1.EdgePool whose new connections offer ALPN like the first one (auto mode)."""

    def __init__(self, owner: EdgePool, limit: int) -> None:
        super().__init__(
            owner.address, owner.port, owner._hostname, owner._ssl, limit, owner._keepalive_s
        )
        self._owner, self._alpn = owner, owner._ssl
        self._given: list[http1.Connection] = []

    def give(self, connection: http1.Connection) -> None:
        self._given.append(connection)

    async def _connect(self) -> http1.Connection:
        if self._given:
            return self._given.pop()
        connection = await connect(self.address, self.port, self._owner._hostname, self._alpn)
        if isinstance(connection, Connection):
            self._owner.adopt_h2(connection)
            raise Renegotiated(None)
        return connection

    def close(self) -> None:
        super().close()
        while self._given:
            self._given.pop().abort()
