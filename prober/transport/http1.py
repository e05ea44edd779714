"""A lean HTTP/1.1 client for probing: keep-alive pools per edge, one request at a time per
connection, response bodies decrypted straight into one buffer and hashed from there.

Why not aiohttp for the probes: a probe of a small file is one short request and one short
response, and aiohttp's general machinery (request and response objects, stream readers,
trace signals, cookie and redirect handling) was most of its cost (cProfile, bench/). This
client does only what a probe needs. It speaks HTTP/1.1 over asyncio's buffered-protocol
interface, so the TLS layer decrypts into the connection's buffer, and the body is hashed
from that buffer without a copy. Bodies are never kept: memory per exchange is one buffer
(READ_BUFFER at most), whatever the body's size, and an idle connection holds none (Spares).

What it does not do, on purpose: redirects (an edge's Location is reported, never followed),
content decoding (the bytes are hashed as served), pipelining, proxies, cookies.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import quote

from prober import __version__

READ_BUFFER = 256 << 10  # the TLS layer decrypts up to this much per callback
FIRST_BUFFER = 64 << 10  # until a body needs more: pages are touched when allocated
HEADER_MAX = 32 << 10  # status line and headers of one response
LINE_MAX = 4096  # a chunk-size line or a trailer line
TRAILER_MAX = 32 << 10
NO_BODY_STATUS = frozenset({204, 304})
USER_AGENT = f"cdnprobe/{__version__}"

_HEAD, _LENGTH, _UNTIL_CLOSE, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _IDLE, _DEAD = range(
    9
)
_EMPTY = bytearray()
# What an idle connection reads into: nothing is expected then (bytes that arrive anyway make
# it abort), but the TLS layer asks for a buffer whenever a record arrives (e.g. a session
# ticket), and an empty one would read as the end of the stream.
_IDLE_VIEW = memoryview(bytearray(4096))
_LONG = (_LENGTH, _UNTIL_CLOSE, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END)  # in a body


class ProtocolError(Exception):
    """The edge answered with something that is not an HTTP/1.x response."""


class BodyTooLarge(Exception):
    pass


class BodyTruncated(Exception):
    pass


class ConnectFailed(OSError):
    """TCP connect failed (refused, unreachable); TLS failures stay ssl.SSLError."""


class Disconnected(ConnectionError):
    """The connection closed before a response began."""

    def __init__(self, cause: BaseException | None) -> None:
        super().__init__(str(cause) if cause else "closed before a response")
        self.cause = cause


class Exchange:
    """One request's response as it arrives: the head, then the body into SHA-256 and a sink."""

    __slots__ = (
        "bytes_read",
        "done",
        "head_only",
        "headers",
        "limit",
        "reusable",
        "reused",
        "sha256",
        "sink",
        "size",
        "status",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        head_only: bool = False,
        limit: int = 1 << 62,
        sink: Callable[[memoryview], None] | None = None,
    ) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.head_only, self.limit, self.sink = head_only, limit, sink
        self.sha256 = hashlib.sha256()
        self.status: int | None = None
        self.headers: dict[str, str] = {}  # lower-cased names; repeats joined with ", "
        self.size: int | None = None  # Content-Length, when the body is framed by it
        self.bytes_read = 0
        self.reusable = False
        self.reused = False  # sent on a kept-alive connection

    @property
    def headers_seen(self) -> bool:
        return self.status is not None

    def feed(self, view: memoryview) -> None:
        self.bytes_read += len(view)
        if self.bytes_read > self.limit:
            raise BodyTooLarge(f"body over {self.limit} bytes")
        self.sha256.update(view)
        if self.sink is not None:
            self.sink(view)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class Spares:
    """Read buffers of connections that are idle now, for the next exchange on any
    connection: buffers in memory follow the requests in flight, not the connections kept
    (200 edges x 64 KiB touched per connection was 12 MiB). A free list, like CPython's own:
    one per process, at most `limit` of each size kept."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._free: dict[int, list[tuple[bytearray, memoryview]]] = {
            FIRST_BUFFER: [],
            READ_BUFFER: [],
        }

    def take(self, size: int) -> tuple[bytearray, memoryview]:
        free = self._free[size]
        if free:
            return free.pop()
        buf = bytearray(size)
        return buf, memoryview(buf)

    def give(self, buf: bytearray, view: memoryview) -> None:
        free = self._free.get(len(buf))
        if free is not None and len(free) < self.limit:
            free.append((buf, view))


SPARES = Spares()


class Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection. The response parser is a small state machine over the read
    buffer: the head must fit in HEADER_MAX; body bytes are fed on as they are decrypted.
    The buffer is taken from SPARES when a request is sent, and given back once idle."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf, self._view = _EMPTY, _IDLE_VIEW
        self._pos = self._fill = self._scan = 0
        self._state = _IDLE
        self._remaining = 0  # bytes left in the body (Content-Length) or the chunk
        self._trailer = 0
        self.exchange: Exchange | None = None
        self.closed = False
        self.idle_since = time.monotonic()

    # ---- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, but have the same methods
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view[self._fill :]

    def buffer_updated(self, nbytes: int) -> None:
        exchange = self.exchange
        if exchange is None or self._state in (_IDLE, _DEAD):
            self.abort()  # bytes nobody asked for: this connection cannot be trusted again
            return
        self._fill += nbytes
        try:
            self._parse(exchange)
        except (ProtocolError, BodyTooLarge, ValueError) as exc:
            exchange.fail(exc if not isinstance(exc, ValueError) else ProtocolError(str(exc)))
            self.abort()
            return
        if self._pos == self._fill:
            self._pos = self._fill = self._scan = 0
        if len(self._buf) < READ_BUFFER and self._state in _LONG:
            if exchange.bytes_read + self._remaining > FIRST_BUFFER:
                self._grow()
        elif self._fill == len(self._buf) or self._pos > len(self._buf) // 2:
            # an unfinished head or line: move it to the front to make room
            rest = self._fill - self._pos
            self._buf[:rest] = self._buf[self._pos : self._fill]
            self._scan -= self._pos
            self._pos, self._fill = 0, rest

    def _grow(self) -> None:
        # a large body: bigger reads mean fewer callbacks per megabyte (kept for reuse)
        rest = self._fill - self._pos
        bigger, view = SPARES.take(READ_BUFFER)
        bigger[:rest] = self._buf[self._pos : self._fill]
        SPARES.give(self._buf, self._view)
        self._buf, self._view = bigger, view
        self._scan -= self._pos
        self._pos, self._fill = 0, rest

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange, state = self.exchange, self._state
        self._state = _DEAD
        self._free()
        if exchange is None or exchange.done.done():
            return
        if state == _UNTIL_CLOSE:
            exchange.finish()  # a body without framing ends where the connection does
        elif not exchange.headers_seen:
            exchange.fail(Disconnected(exc))
        elif exchange.size is not None:
            exchange.fail(BodyTruncated(f"{exchange.bytes_read} of {exchange.size} bytes"))
        else:
            exchange.fail(BodyTruncated(f"chunked body cut after {exchange.bytes_read} bytes"))

    # ---- requests -----------------------------------------------------------------------

    def send(self, request: bytes, exchange: Exchange) -> None:
        assert self.transport is not None
        if self.closed or self._state != _IDLE or self._fill:
            raise Disconnected(None)
        self._buf, self._view = SPARES.take(FIRST_BUFFER)
        self.exchange, self._state = exchange, _HEAD
        self.transport.write(request)

    def release(self) -> bool:
        """After an exchange: True if the connection may carry another request."""
        exchange, self.exchange = self.exchange, None
        ok = (
            exchange is not None
            and exchange.reusable
            and self._state == _IDLE
            and not self.closed
            and self._fill == 0
        )
        if ok:
            self.idle_since = time.monotonic()
            SPARES.give(self._buf, self._view)
            self._buf, self._view = _EMPTY, _IDLE_VIEW
        return ok

    def abort(self) -> None:
        self._state = _DEAD
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        self._free()

    def _free(self) -> None:
        # Let the buffer go now: a failed exchange's traceback can hold this connection in a
        # reference cycle until the garbage collector runs, and 64-256 KiB buffers kept that
        # long grow the heap (seen in the 500-cycle soak).
        SPARES.give(self._buf, self._view)
        self._buf, self._view = _EMPTY, memoryview(_EMPTY)
        self._pos = self._fill = self._scan = 0

    # ---- parsing ------------------------------------------------------------------------

    def _parse(self, exchange: Exchange) -> None:
        view, buf = self._view, self._buf
        while self._pos < self._fill or self._state == _HEAD:
            state = self._state
            if state == _HEAD:
                end = buf.find(b"\r\n\r\n", max(self._pos, self._scan - 3), self._fill)
                if end < 0:
                    if self._fill - self._pos > HEADER_MAX:
                        raise ProtocolError(f"response head over {HEADER_MAX} bytes")
                    self._scan = self._fill
                    return
                if end - self._pos > HEADER_MAX:
                    raise ProtocolError(f"response head over {HEADER_MAX} bytes")
                head = bytes(view[self._pos : end])
                self._pos = self._scan = end + 4
                self._start_body(exchange, head)
            elif state in (_LENGTH, _CHUNK_DATA):
                n = min(self._remaining, self._fill - self._pos)
                exchange.feed(view[self._pos : self._pos + n])
                self._pos += n
                self._remaining -= n
                if self._remaining == 0:
                    if state == _LENGTH:
                        self._complete(exchange)
                    else:
                        self._state = _CHUNK_END
            elif state == _UNTIL_CLOSE:
                exchange.feed(view[self._pos : self._fill])
                self._pos = self._fill
            elif state == _CHUNK_END:
                if self._fill - self._pos < 2:
                    return
                if buf[self._pos : self._pos + 2] != b"\r\n":
                    raise ProtocolError("chunk not followed by CRLF")
                self._pos += 2
                self._state = _CHUNK_SIZE
            elif state in (_CHUNK_SIZE, _TRAILER):
                line = self._line()
                if line is None:
                    return
                if state == _CHUNK_SIZE:
                    size = _chunk_size(line)
                    if size == 0:
                        self._state, self._trailer = _TRAILER, 0
                    else:
                        self._state, self._remaining = _CHUNK_DATA, size
                elif not line:
                    self._complete(exchange)
                else:
                    self._trailer += len(line)
                    if self._trailer > TRAILER_MAX:
                        raise ProtocolError(f"trailers over {TRAILER_MAX} bytes")
            else:  # _IDLE or _DEAD: bytes past the end of the response
                exchange.reusable = False
                return

    def _line(self) -> bytes | None:
        end = self._buf.find(b"\r\n", self._pos, self._fill)
        if end < 0:
            if self._fill - self._pos > LINE_MAX:
                raise ProtocolError(f"chunk line over {LINE_MAX} bytes")
            return None
        line = bytes(self._view[self._pos : end])
        self._pos = end + 2
        return line

    def _start_body(self, exchange: Exchange, raw: bytes) -> None:
        version, status, headers = parse_head(raw)
        if 100 <= status < 200:
            return  # an interim response (100 Continue, 103 Early Hints): the real one follows
        exchange.status, exchange.headers = status, headers
        connection = headers.get("connection", "").lower()
        keep = "close" not in connection if version == 1 else "keep-alive" in connection
        exchange.reusable = keep
        coding = headers.get("transfer-encoding")
        if coding is None and "content-length" in headers:
            size = content_length(headers["content-length"])
            if size is None:
                raise ProtocolError(f"bad Content-Length {headers['content-length'][:40]!r}")
            exchange.size = size  # for HEAD: the size a GET would get
        if exchange.head_only or status in NO_BODY_STATUS:
            self._complete(exchange)
        elif coding is not None:
            if coding.lower().rsplit(",", 1)[-1].strip() == "chunked":
                self._state = _CHUNK_SIZE
            else:
                self._state, exchange.reusable = _UNTIL_CLOSE, False
        elif exchange.size is None:
            self._state, exchange.reusable = _UNTIL_CLOSE, False
        elif exchange.size > exchange.limit:
            raise BodyTooLarge(f"Content-Length {exchange.size} > {exchange.limit}")
        elif exchange.size == 0:
            self._complete(exchange)
        else:
            self._state, self._remaining = _LENGTH, exchange.size

    def _complete(self, exchange: Exchange) -> None:
        self._state = _IDLE
        if self._pos != self._fill:
            exchange.reusable = False  # more bytes than the response framed
        exchange.finish()


def parse_head(raw: bytes) -> tuple[int, int, dict[str, str]]:
    """(minor version, status, headers) of a response head without its final CRLF CRLF."""
    lines = raw.decode("latin-1").split("\r\n")
    first = lines[0]
    if (
        first[:7] != "HTTP/1."
        or first[7:8] not in ("0", "1")
        or first[8:9] != " "
        or not first[9:12].isdigit()
        or not first[9:12].isascii()
        or first[12:13] not in ("", " ")
    ):
        raise ProtocolError(f"not an HTTP/1.x status line: {first[:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name[-1] in " \t" or line[0] in " \t":
            raise ProtocolError(f"bad header line {line[:60]!r}")
        key, text = name.lower(), value.strip()
        seen = headers.get(key)
        if seen is None:
            headers[key] = text
        elif key == "content-length":
            if seen != text:
                raise ProtocolError("conflicting Content-Length headers")
        else:
            headers[key] = f"{seen}, {text}"
    return int(first[7]), int(first[9:12]), headers


def content_length(value: str) -> int | None:
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _chunk_size(line: bytes) -> int:
    text = line.split(b";", 1)[0].strip()
    if not text or len(text) > 16 or text.strip(b"0123456789abcdefABCDEF"):
        raise ProtocolError(f"bad chunk size {line[:40]!r}")
    return int(text, 16)


def request_bytes(method: str, url_host: str, port: int, default_port: int, target: str) -> bytes:
    """The request head. Host carries the port unless it is the scheme's default.

    Accept-Encoding: identity, and bodies are never decoded: the bytes are hashed as served,
    so an edge that compresses anyway shows up as divergent instead of looking fine."""
    host = authority(url_host, port, default_port)
    return (
        f"{method} {quote_target(target)} HTTP/1.1\r\nHost: {host}\r\n"
        f"Accept-Encoding: identity\r\nUser-Agent: {USER_AGENT}\r\n\r\n"
    ).encode("ascii")


def authority(url_host: str, port: int, default_port: int) -> str:
    """The Host header (HTTP/2: `:authority`): the port only when it is not the default."""
    host = f"[{url_host}]" if ":" in url_host else url_host
    return host if port == default_port else f"{host}:{port}"


def quote_target(target: str) -> str:
    """The request target, percent-quoted so that no byte of the URL can end the line."""
    return quote(target or "/", safe="/%:@!$&'()*+,;=-._~?")


class EdgePool:
    """Keep-alive connections to one address, at most `limit` at a time.

    A request goes out on the most recently used idle connection, or a new one. A
    connection the edge closed while idle is noticed (connection_lost) and skipped.
    """

    def __init__(
        self,
        address: str,
        port: int,
        server_hostname: str | None,
        ssl_context: ssl.SSLContext | None,
        limit: int,
        keepalive_s: float,
    ) -> None:
        self.address, self.port = address, port
        self._hostname, self._ssl = server_hostname, ssl_context
        self._slots = asyncio.Semaphore(limit)
        self._keepalive_s = keepalive_s
        self._idle: list[Connection] = []
        self.closed = False

    async def exchange(self, request: bytes, exchange: Exchange, *, fresh: bool = False) -> None:
        async with self._slots:
            connection = None if fresh else self._take_idle()
            exchange.reused = connection is not None
            if connection is None:
                connection = await self._connect()
            try:
                connection.send(request, exchange)
                await exchange.done
            finally:  # a failed, cancelled or unfinished exchange leaves the connection unfit
                if connection.release() and not self.closed:
                    self._idle.append(connection)
                else:
                    connection.abort()

    def _take_idle(self) -> Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self._keepalive_s:
                return connection
            connection.abort()
        return None

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                Connection,
                self.address,
                self.port,
                ssl=self._ssl,
                server_hostname=self._hostname if self._ssl is not None else None,
            )
        except ssl.SSLError:
            raise
        except OSError as exc:
            raise ConnectFailed(exc.errno, exc.strerror or str(exc)) from exc
        return connection

    def close(self) -> None:
        self.closed = True
        while self._idle:
            self._idle.pop().abort()
