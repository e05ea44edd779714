"""Edge + URL → Observation, with the request pinned to the edge's address.

The connection goes to the edge's address while the request keeps the URL's host name, so the
Host header, the TLS SNI and the certificate check all use it (as `curl --resolve` does).
Each edge gets its own keep-alive pool (http1.EdgePool), reused across paths and cycles, and
shared by every Fetcher of the same `Connections` (one daemon) that reaches that edge with the
same connection settings.

Network trouble never escapes this module: `_reason` is the single place where exceptions
become the contract's error words.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
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

__all__ = [
    "CIPHERS",
    "HTTP_VERSIONS",
    "BufferSink",
    "Connections",
    "Fetcher",
    "Sink",
    "Slots",
    "make_ssl_context",
]

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
# what a connection is made with: (address, port, scheme, host name for SNI and Host, the TLS
# context, the http setting), and how its pool is used (connections per edge, keep-alive,
# timeout): only fetchers with the same key share a pool, so a target never waits on a pool
# sized, or times out behind exchanges timed, by another target's settings
PoolKey = tuple[str, int, str, str, ssl.SSLContext | None, str, int, float, float]


class Sink(Protocol):
    """Something that sees a body as it streams (besides the SHA-256). The view is only
    valid during the call: keep a copy, not the view."""

    def feed(self, chunk: memoryview) -> None: ...


S = TypeVar("S", bound=Sink)
V = TypeVar("V", str, int, str | None, int | None)


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


class Connections:
    """The keep-alive pools of the Fetchers made with it: one set per daemon.

    Targets that reach the same edge with the same connection settings share its pool: at
    200 edges x 5 targets, 200 connections instead of 1000, each about 240 KiB of buffers.
    The key is everything a connection is made with (PoolKey): address, port, scheme, the
    host name (SNI and Host), the TLS context and the http setting. Contexts come from
    `ssl_context`, one per (CA file, its contents, insecure), so a target never gets a
    connection verified with another target's CA, or not verified at all. A pool closes when
    the last fetcher using it forgets the edge (or closes)."""

    def __init__(self) -> None:
        self._pools: dict[PoolKey, http1.EdgePool | http2.EdgePool] = {}
        self._users: dict[PoolKey, set[Fetcher]] = {}
        self._contexts: dict[tuple[str | None, bytes, bool], ssl.SSLContext] = {}
        self._alpn: dict[tuple[ssl.SSLContext, str], ssl.SSLContext] = {}

    def ssl_context(self, ca_file: str | None, insecure: bool) -> ssl.SSLContext:
        """One context per CA file *as it is now* (a reload may point the same name at other
        certificates) and `insecure`."""
        try:
            contents = hashlib.sha256(Path(ca_file).read_bytes()).digest() if ca_file else b""
        except OSError:
            return make_ssl_context(ca_file, insecure)  # fails here as it always did
        key = (ca_file, contents, insecure)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = make_ssl_context(ca_file, insecure)
        return context

    def alpn_context(self, context: ssl.SSLContext, http: str) -> ssl.SSLContext:
        """`context` offering what `http` offers by ALPN: one copy per (context, setting)."""
        key = (context, http)
        found = self._alpn.get(key)
        if found is None:
            found = self._alpn[key] = tls.with_alpn(context, _ALPN[http])
        return found

    def pool(
        self,
        key: PoolKey,
        user: Fetcher,
        make: Callable[[], http1.EdgePool | http2.EdgePool],
    ) -> http1.EdgePool | http2.EdgePool:
        """The pool for `key`, made by `make` (sized by the first user) if there is none."""
        pool = self._pools.get(key)
        if pool is None or pool.closed:
            pool = self._pools[key] = make()
        self._users.setdefault(key, set()).add(user)
        return pool

    def release(self, key: PoolKey, user: Fetcher) -> None:
        users = self._users.get(key)
        if users is None:
            return
        users.discard(user)
        if not users:
            del self._users[key]
            self._pools.pop(key).close()

    def __len__(self) -> int:
        return len(self._pools)


class Slots(asyncio.Semaphore):
    """The bound on requests in flight that the fetchers of one daemon (or one check session)
    share, and the connections they share with it (made with the fetchers' tools)."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.connections = Connections()


class Fetcher:
    """Fetches URLs from given edges. One keep-alive pool per edge, kept until close(); from
    `connections`, shared with the other fetchers made with it (default: its own)."""

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
        connections: Connections | None = None,
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
        self._connections = connections if connections is not None else Connections()
        # the pools this fetcher uses, by its own key (its settings are the rest of PoolKey)
        self._pools: dict[tuple[str, str, str, int], http1.EdgePool | http2.EdgePool] = {}
        self.received: dict[str, int] = {}  # body bytes received per edge address, ever
        self._same = Same()

    def _pool(
        self, edge: Edge, scheme: str, host: str, port: int
    ) -> http1.EdgePool | http2.EdgePool:
        mine = (edge.address, scheme, host, port)
        pool = self._pools.get(mine)
        if pool is None:
            pool = self._connections.pool(
                self._key(mine), self, lambda: self._new_pool(edge, scheme, host, port)
            )
            self._pools[mine] = pool
        return pool

    def _key(self, mine: tuple[str, str, str, int]) -> PoolKey:
        address, scheme, host, port = mine
        context = self._ssl if scheme == "https" else None
        usage = (self._per_edge, self._keepalive_s, self.timeout_s)
        return (address, port, scheme, host, context, self.http, *usage)

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
        from prober.transport import http2  # only a Fetcher that may speak HTTP/2 pays for h2

        return http2.EdgePool(
            edge.address,
            port,
            host,
            self._connections.alpn_context(self._ssl, self.http),
            self._pool_size,
            self._keepalive_s,
            require_h2=self.http == "2",
        )

    async def forget(self, keep: set[Edge]) -> None:
        """Let go of the pools of edges that are no longer in DNS (closed once no other
        fetcher uses them), and size new pools: with many edges the global bound already keeps
        every connection busy, and each extra connection is one more TLS handshake, the
        largest cost of a probe."""
        self._pool_size = max(1, min(self._per_edge, -(-self._total // max(1, len(keep)))))
        addresses = {edge.address for edge in keep}
        for mine in [k for k in self._pools if k[0] not in addresses]:
            del self._pools[mine]
            self._connections.release(self._key(mine), self)

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
            error, detail = _reason(exc, current), _detail(exc)
            return _observation(current, started, self._same, error=error, detail=detail)
        assert current is not None
        self.received[edge.address] = self.received.get(edge.address, 0) + current.bytes_read
        sha256 = None if head_only else current.sha256.hexdigest()
        return _observation(current, started, self._same, sha256=sha256)


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


class Same:
    """One object for equal values: every edge serving an object sends the same ETag,
    Last-Modified and size, and has the same hash, and the report of a cycle keeps one
    Observation per edge x object (at 100k probes, 300 bytes a probe kept once per object
    instead of once per probe)."""

    def __init__(self, limit: int = 1 << 14) -> None:  # at most a few MiB of values kept
        self._seen: dict[str | int, str | int] = {}
        self._limit = limit

    def __call__(self, value: V) -> V:
        if value is None:
            return value
        if len(self._seen) >= self._limit:
            self._seen.clear()  # edges that all send values of their own: start again
        return self._seen.setdefault(value, value)  # type: ignore[return-value]  # equal: same type


def _observation(
    exchange: Exchange | None,
    started: float,
    same: Same,
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
        size=same(exchange.size),
        bytes_read=same(exchange.bytes_read),
        sha256=same(sha256),
        etag=same(headers.get("etag")),
        last_modified=same(headers.get("last-modified")),
        location=headers.get("location"),
        elapsed_s=elapsed,
        error=error,
        detail=detail,
        cache=cache_headers(headers),
        http_version=version,
    )
