"""Edge + URL → Observation, with the request pinned to the edge's address.

The connection goes to the edge's address while the request keeps the URL's host name, so the
Host header, the TLS SNI and the certificate check all use it (as `curl --resolve` does).
Each edge gets its own keep-alive pool (http1.EdgePool), reused across paths and cycles.

Network trouble never escapes this module: `_reason` is the single place where exceptions
become the contract's error words.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import urlsplit

from prober.errors import ErrorReason
from prober.model import Edge, Observation
from prober.transport import http1, tls
from prober.transport.http1 import (
    BodyTooLarge,
    BodyTruncated,
    ConnectFailed,
    Disconnected,
    Exchange,
)
from prober.transport.streams import NotH2, StreamRefused, StreamReset, VersionedExchange
from prober.transport.tls import CIPHERS

if TYPE_CHECKING:
    from prober.transport import http2

__all__ = ["CIPHERS", "HTTP_VERSIONS", "BufferSink", "Fetcher", "Sink", "make_ssl_context"]

CACHE_HEADERS = (
    "age",
    "cache-status",
    "x-cache",
    "x-cache-hits",
    "x-cache-status",
    "cf-cache-status",
    "x-served-by",
    "via",
    "x-amz-cf-pop",
    "x-edge-location",
)
CACHE_VALUE_MAX = 200
HTTP_VERSIONS = ("1.1", "2", "auto")
# what each setting offers by ALPN; "1.1" offers nothing, as before HTTP/2 was spoken
_ALPN = {"2": ["h2", "http/1.1"], "auto": ["h2", "http/1.1"]}
H2Headers = list[tuple[bytes, bytes]]


class Sink(Protocol):
    """Something that sees a body as it streams (besides the SHA-256). The view is only
    valid during the call: keep a copy, not the view."""

    def feed(self, chunk: memoryview) -> None: ...


S = TypeVar("S", bound=Sink)


class BufferSink:
    """Keeps a body in memory, up to `limit` bytes (for small files that must be parsed)."""

    def __init__(self, limit: int = 16 << 20) -> None:
        self.limit, self.data, self.overflow = limit, bytearray(), False

    def feed(self, chunk: memoryview) -> None:
        if len(self.data) + len(chunk) > self.limit:
            self.overflow = True
            return
        self.data += chunk


@lru_cache(maxsize=4096)
def _target(url: str) -> tuple[str, str, int, bytes, bytes]:
    """(scheme, host, port, GET request, HEAD request) for a URL."""
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL: {url[:100]!r}")
    if not host.isascii():
        host = host.encode("idna").decode("ascii")  # the A-label, as in SNI and DNS
    if not host.replace(".", "").replace("-", "").replace(":", "").replace("_", "").isalnum():
        raise ValueError(f"bad host name in URL: {url[:100]!r}")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    get = http1.request_bytes("GET", host, port, default, target)
    head = http1.request_bytes("HEAD", host, port, default, target)
    return parts.scheme, host, port, get, head


@lru_cache(maxsize=4096)
def _h2_target(url: str) -> tuple[H2Headers, H2Headers]:
    """(GET, HEAD) h2 request headers for an https URL."""
    parts = urlsplit(url)
    _, host, port, _, _ = _target(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    from prober.transport import http2  # only a Fetcher that may speak HTTP/2 pays for h2

    get = http2.request_headers("GET", host, port, 443, target)
    return get, http2.request_headers("HEAD", host, port, 443, target)


def make_ssl_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    return tls.make_context(ca_file, insecure)


class Fetcher:
    """Fetches URLs from given edges. One keep-alive pool per edge, kept until close()."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
        max_body_bytes: int = 4 << 30,
        concurrency: asyncio.Semaphore | None = None,
        concurrency_total: int = 64,
        connections_per_edge: int = 4,
        keepalive_s: float = 120.0,
        http: str = "1.1",
    ) -> None:
        """`http`: "1.1" (offer no ALPN: HTTP/1.1 only), "2" (require h2 by ALPN) or "auto"
        (offer h2 and http/1.1, speak what the edge picks; plain http:// is always 1.1)."""
        if http not in HTTP_VERSIONS:
            raise ValueError(f"http must be one of {', '.join(HTTP_VERSIONS)}, not {http!r}")
        self.http = http
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._ssl = ssl_context or make_ssl_context()
        self._slots = concurrency or asyncio.Semaphore(64)
        self._per_edge = connections_per_edge
        self._pool_size = connections_per_edge  # per edge, from the number of edges (forget)
        self._total = concurrency_total
        self._keepalive_s = keepalive_s
        self._pools: dict[tuple[Edge, str, str, int], http1.EdgePool | http2.EdgePool] = {}
        self.received: dict[str, int] = {}  # body bytes received per edge address, ever
        self._alpn_ssl: ssl.SSLContext | None = None  # one ALPN copy of the context, made once

    def _pool(
        self, edge: Edge, scheme: str, host: str, port: int
    ) -> http1.EdgePool | http2.EdgePool:
        key = (edge, scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._new_pool(edge, scheme, host, port)
            self._pools[key] = pool
        return pool

    def _new_pool(
        self, edge: Edge, scheme: str, host: str, port: int
    ) -> http1.EdgePool | http2.EdgePool:
        if self.http == "1.1" or (scheme == "http" and self.http == "auto"):
            context = self._ssl if scheme == "https" else None
            return http1.EdgePool(
                edge.address, port, host, context, self._pool_size, self._keepalive_s
            )
        if scheme == "http":
            raise NotH2("HTTP/2 required, but an http:// URL cannot negotiate h2 (ALPN)")
        if self._alpn_ssl is None:
            self._alpn_ssl = tls.with_alpn(self._ssl, _ALPN[self.http])
        from prober.transport import http2  # only a Fetcher that may speak HTTP/2 pays for h2

        return http2.EdgePool(
            edge.address,
            port,
            host,
            self._alpn_ssl,
            self._pool_size,
            self._keepalive_s,
            require_h2=self.http == "2",
        )

    async def forget(self, keep: set[Edge]) -> None:
        """Close the pools of edges that are no longer in DNS, and size new pools: with many
        edges the global bound already keeps every connection busy, and each extra
        connection is one more TLS handshake, the largest cost of a probe."""
        self._pool_size = max(1, min(self._per_edge, -(-self._total // max(1, len(keep)))))
        for key in [k for k in self._pools if k[0] not in keep]:
            self._pools.pop(key).close()

    async def close(self) -> None:
        await self.forget(set())

    async def fetch(
        self, edge: Edge, url: str, validators: tuple[str | None, str | None] | None = None
    ) -> Observation:
        """A pinned GET. `validators`: this edge's own last (ETag, Last-Modified), sent as
        If-None-Match / If-Modified-Since; a 304 then comes back as it is, bodiless."""
        sinks: list[Sink] = []
        return await self._exchange(edge, url, False, None, sinks, _conditional(validators))

    async def fetch_into(
        self,
        edge: Edge,
        url: str,
        make_sink: Callable[[], S] | None,
        validators: tuple[str | None, str | None] | None = None,
    ) -> tuple[Observation, S | None]:
        """fetch, also feeding every body chunk to a sink made fresh for each attempt
        (e.g. a decompressing counter); returns the sink of the attempt that counted."""
        sinks: list[S] = []
        conditional = _conditional(validators)
        observation = await self._exchange(edge, url, False, make_sink, sinks, conditional)
        return observation, sinks[-1] if sinks else None

    async def head(self, edge: Edge, url: str) -> Observation:
        """A pinned HEAD: status and metadata, no body (for the rehash_every opt-in)."""
        return await self._exchange(edge, url, True, None, [])

    async def _exchange(
        self,
        edge: Edge,
        url: str,
        head_only: bool,
        make_sink: Callable[[], S] | None,
        sinks: list[S],
        conditional: tuple[tuple[str, str], ...] = (),
    ) -> Observation:
        loop = asyncio.get_running_loop()
        current: Exchange | None = None
        started = time.perf_counter()
        try:
            scheme, host, port, get, head = _target(url)
            pool = self._pool(edge, scheme, host, port)
            async with self._slots:
                started = time.perf_counter()
                async with asyncio.timeout(self.timeout_s):
                    # An edge may close an idle keep-alive connection just as we send on it.
                    # Like Go's http.Transport, retry (once, on a new connection) only when the
                    # connection was reused and no response had begun, so an edge that really
                    # drops fresh connections is still reported.
                    for fresh in (False, True):
                        sink = make_sink() if make_sink else None
                        if sink is not None:
                            sinks.append(sink)
                        feed = sink.feed if sink is not None else None
                        request = head if head_only else get
                        if conditional:
                            extra = "".join(f"{k}: {v}\r\n" for k, v in conditional)
                            request = request[:-2] + extra.encode("ascii") + b"\r\n"
                        try:
                            if isinstance(pool, http1.EdgePool):
                                current = Exchange(
                                    loop, head_only=head_only, limit=self.max_body_bytes, sink=feed
                                )
                                await pool.exchange(request, current, fresh=fresh)
                            else:
                                current = VersionedExchange(
                                    loop, head_only=head_only, limit=self.max_body_bytes, sink=feed
                                )
                                h2_request = _h2_target(url)[head_only]
                                if conditional:
                                    h2_request = [
                                        *h2_request,
                                        *((k.lower().encode(), v.encode()) for k, v in conditional),
                                    ]
                                await pool.exchange(request, h2_request, current, fresh=fresh)
                            break
                        except (Disconnected, StreamRefused):
                            if fresh or current is None or not current.reused:
                                raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure of an edge becomes its Observation
            if current is not None:
                self.received[edge.address] = (
                    self.received.get(edge.address, 0) + current.bytes_read
                )
            return _observation(current, started, error=_reason(exc, current), detail=_detail(exc))
        assert current is not None
        self.received[edge.address] = self.received.get(edge.address, 0) + current.bytes_read
        sha256 = None if head_only else current.sha256.hexdigest()
        return _observation(current, started, sha256=sha256)


def _conditional(validators: tuple[str | None, str | None] | None) -> tuple[tuple[str, str], ...]:
    """The conditional headers from an edge's own last validators. They came from the edge:
    only short printable ASCII goes back into a request (anything else: no condition, a full
    fetch), so nothing an edge sends can add a header or end the request."""
    if validators is None:
        return ()
    found = []
    for name, value in zip(("If-None-Match", "If-Modified-Since"), validators, strict=True):
        if value and len(value) <= 256 and value.isascii() and value.isprintable():
            found.append((name, value))
    return tuple(found)


def cache_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The cache-identity headers an edge sent, lower-cased names, values cut to 200."""
    found = []
    for name in CACHE_HEADERS:
        value = headers.get(name)
        if value is not None:
            found.append((name, value[:CACHE_VALUE_MAX]))
    return tuple(found)


def _reason(exc: BaseException, exchange: Exchange | None) -> ErrorReason:
    """The one mapping from transport exceptions to the contract's error words."""
    if isinstance(exc, TimeoutError):
        return ErrorReason.TIMEOUT
    if isinstance(exc, StreamReset):  # RST_STREAM, or GOAWAY before the body was complete
        return ErrorReason.STREAM_RESET
    if isinstance(exc, BodyTooLarge):
        return ErrorReason.TOO_LARGE
    if isinstance(exc, ssl.SSLError):  # certificate, handshake, and record-layer failures
        return ErrorReason.TLS
    if isinstance(exc, BodyTruncated):
        return ErrorReason.TRUNCATED
    if isinstance(exc, ConnectFailed):
        return ErrorReason.CONNECT
    if isinstance(exc, Disconnected) and isinstance(exc.cause, OSError):
        # reset before any response; a clean close without one is a protocol failure
        return ErrorReason.TLS if isinstance(exc.cause, ssl.SSLError) else ErrorReason.CONNECT
    if isinstance(exc, OSError) and not isinstance(exc, Disconnected):
        return ErrorReason.CONNECT  # e.g. reset during the TLS handshake
    return ErrorReason.PROTOCOL


def _detail(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def _observation(
    exchange: Exchange | None,
    started: float,
    *,
    sha256: str | None = None,
    error: ErrorReason | None = None,
    detail: str | None = None,
) -> Observation:
    elapsed = time.perf_counter() - started
    version = exchange.http_version if isinstance(exchange, VersionedExchange) else "1.1"
    if exchange is None or exchange.status is None:
        return Observation(
            status=None,
            size=None,
            bytes_read=exchange.bytes_read if exchange else 0,
            sha256=sha256,
            elapsed_s=elapsed,
            error=error,
            detail=detail,
            http_version=version,
        )
    headers = exchange.headers
    return Observation(
        status=exchange.status,
        size=exchange.size,
        bytes_read=exchange.bytes_read,
        sha256=sha256,
        etag=headers.get("etag"),
        last_modified=headers.get("last-modified"),
        location=headers.get("location"),
        elapsed_s=elapsed,
        error=error,
        detail=detail,
        cache=cache_headers(headers),
        http_version=version,
    )
