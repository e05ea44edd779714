"""Edge + URL → Observation, over aiohttp, with the request pinned to the edge's address.

Pinning goes through the resolver seam: each edge gets its own connector whose resolver answers
every lookup with that edge's address. The URL is not rewritten, so the Host header, the TLS
SNI and the certificate check all still use the URL's host name (as `curl --resolve` does).
One connector per edge also gives each edge its own keep-alive pool, reused across paths and
cycles.

Network trouble never escapes this module: `_reason` is the single place where exceptions
become the contract's error words.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from prober import __version__
from prober.errors import ErrorReason
from prober.hashing import StreamDigest
from prober.model import Edge, Observation

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
READ_CHUNK = 256 << 10  # aiohttp buffers up to twice this per response

# Accept-Encoding: identity, and auto_decompress=False below: hash the bytes as served, so an
# edge that ignores identity and compresses anyway shows up as divergent instead of looking fine.
REQUEST_HEADERS = {
    "Accept-Encoding": "identity",
    "User-Agent": f"cdnprobe/{__version__}",
}


class Sink(Protocol):
    """Something that sees a body as it streams (besides the SHA-256)."""

    def feed(self, chunk: bytes) -> None: ...


S = TypeVar("S", bound=Sink)


class BufferSink:
    """Keeps a body in memory, up to `limit` bytes (for small files that must be parsed)."""

    def __init__(self, limit: int = 16 << 20) -> None:
        self.limit, self.data, self.overflow = limit, bytearray(), False

    def feed(self, chunk: bytes) -> None:
        if len(self.data) + len(chunk) > self.limit:
            self.overflow = True
            return
        self.data += chunk


class PinnedResolver(AbstractResolver):
    """Answers every name with one address: the edge this connector belongs to."""

    def __init__(self, edge: Edge) -> None:
        self._edge = edge

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        af = socket.AF_INET6 if self._edge.family == 6 else socket.AF_INET
        return [
            ResolveResult(
                hostname=host,
                host=self._edge.address,
                port=port,
                family=af,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        return None


class BodyTooLarge(Exception):
    pass


class BodyTruncated(Exception):
    pass


@dataclass(slots=True)
class _Progress:
    """What had arrived when a fetch failed, so an error still reports status and bytes_read."""

    status: int | None = None
    size: int | None = None
    bytes_read: int = 0
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None
    cache: tuple[tuple[str, str], ...] = ()
    headers_seen: bool = False
    reused: bool = False  # the request went out on a pooled keep-alive connection


class _Failed(Exception):
    """Carries the attempt's exception out of the timeout scope to the one mapping."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def _on_reuse(
    session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceConnectionReuseconnParams
) -> None:
    progress = context.trace_request_ctx
    if isinstance(progress, _Progress):
        progress.reused = True


_REUSE_TRACE = aiohttp.TraceConfig()
_REUSE_TRACE.on_connection_reuseconn.append(_on_reuse)


def _stale_connection(exc: BaseException, progress: _Progress) -> bool:
    return (
        progress.reused
        and not progress.headers_seen
        and isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)
    )


def make_ssl_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if insecure:
        # SNI is still sent (aiohttp passes server_hostname); only verification is skipped.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


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
    ) -> None:
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._ssl = ssl_context or make_ssl_context()
        self._slots = concurrency or asyncio.Semaphore(64)
        self._per_edge = connections_per_edge
        self._pool_size = connections_per_edge  # per edge, from the number of edges (forget)
        self._total = concurrency_total
        self._keepalive_s = keepalive_s
        self._sessions: dict[Edge, aiohttp.ClientSession] = {}

    def _session(self, edge: Edge) -> aiohttp.ClientSession:
        session = self._sessions.get(edge)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                resolver=PinnedResolver(edge),
                ssl=self._ssl,
                limit=self._pool_size,
                use_dns_cache=False,
                keepalive_timeout=self._keepalive_s,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[_REUSE_TRACE],
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                read_bufsize=READ_CHUNK,
                timeout=aiohttp.ClientTimeout(total=None, connect=self.timeout_s),
            )
            # aiohttp retries every idempotent request once after a disconnect, on a fresh
            # connection or not; that would hide an edge that drops new connections. Retry
            # only reused connections, in _attempts. (aiohttp's own test_utils sets the same.)
            session._retry_connection = False
            self._sessions[edge] = session
        return session

    async def forget(self, keep: set[Edge]) -> None:
        """Close the pools of edges that are no longer in DNS, and size new pools: with many
        edges the global bound already keeps every connection busy, and each extra
        connection is one more TLS handshake, the largest cost of a probe."""
        self._pool_size = max(1, min(self._per_edge, -(-self._total // max(1, len(keep)))))
        for edge in [e for e in self._sessions if e not in keep]:
            await self._sessions.pop(edge).close()

    async def close(self) -> None:
        await self.forget(set())

    async def fetch(self, edge: Edge, url: str) -> Observation:
        observation, _ = await self.fetch_into(edge, url, None)
        return observation

    async def fetch_into(
        self, edge: Edge, url: str, make_sink: Callable[[], S] | None
    ) -> tuple[Observation, S | None]:
        """fetch, also feeding every body chunk to a sink made fresh for each attempt
        (e.g. a decompressing counter); returns the sink of the attempt that counted."""
        observation, sinks = await self._fetch(edge, url, make_sink)
        return observation, sinks[-1] if sinks else None

    async def _fetch(
        self, edge: Edge, url: str, make_sink: Callable[[], S] | None
    ) -> tuple[Observation, list[S]]:
        sinks: list[S] = []
        attempt = [_Progress()]  # the current attempt's progress, also when the timeout hits
        started = time.perf_counter()
        try:
            async with self._slots:
                started = time.perf_counter()
                async with asyncio.timeout(self.timeout_s):
                    sha256 = await self._attempts(
                        self._session(edge), url, attempt, sinks, make_sink
                    )
        except asyncio.CancelledError:
            raise
        except _Failed as failed:
            progress, exc = attempt[0], failed.cause
            error, detail = _reason(exc, progress), _detail(exc)
            return _observation(progress, started, error=error, detail=detail), sinks
        except TimeoutError as exc:
            error, detail = ErrorReason.TIMEOUT, _detail(exc)
            return _observation(attempt[0], started, error=error, detail=detail), sinks
        return _observation(attempt[0], started, sha256=sha256), sinks

    async def _attempts(
        self,
        session: aiohttp.ClientSession,
        url: str,
        current: list[_Progress],
        sinks: list[S],
        make_sink: Callable[[], S] | None,
    ) -> str:
        """One request; again on a fresh connection if a reused one was closed under it.

        An edge may close an idle keep-alive connection just as we send on it. Like Go's
        http.Transport, retry only when the connection was reused and no response had begun,
        so an edge that really drops fresh connections is still reported.
        """
        for attempt in range(self._per_edge + 1):
            progress = current[0] = _Progress()
            sink = make_sink() if make_sink else None
            if sink is not None:
                sinks.append(sink)
            try:
                return await self._get(session, url, progress, sink)
            except (asyncio.CancelledError, TimeoutError):
                raise
            except Exception as exc:  # every failure: retried, or carried to the one mapping
                if not (_stale_connection(exc, progress) and attempt < self._per_edge):
                    raise _Failed(exc) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    async def head(self, edge: Edge, url: str) -> Observation:
        """A pinned HEAD: status and metadata, no body (for the rehash_every opt-in)."""
        progress = _Progress()
        started = time.perf_counter()
        try:
            async with self._slots, asyncio.timeout(self.timeout_s):
                started = time.perf_counter()
                session = self._session(edge)
                async with session.head(
                    url, headers=REQUEST_HEADERS, allow_redirects=False
                ) as response:
                    _record_headers(response, progress)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure of an edge becomes its Observation
            return _observation(
                progress, started, error=_reason(exc, progress), detail=_detail(exc)
            )
        return _observation(progress, started)

    async def _get(
        self, session: aiohttp.ClientSession, url: str, progress: _Progress, sink: Sink | None
    ) -> str:
        async with session.get(
            url, headers=REQUEST_HEADERS, allow_redirects=False, trace_request_ctx=progress
        ) as response:
            _record_headers(response, progress)
            if progress.size is not None and progress.size > self.max_body_bytes:
                raise BodyTooLarge(f"Content-Length {progress.size} > {self.max_body_bytes}")
            digest = StreamDigest()
            try:
                content = response.content
                # readchunk hands over aiohttp's buffers one by one; readany would join them.
                while (chunk := (await content.readchunk())[0]) or not content.at_eof():
                    progress.bytes_read += len(chunk)
                    if progress.bytes_read > self.max_body_bytes:
                        raise BodyTooLarge(f"body over {self.max_body_bytes} bytes")
                    await digest.update(chunk)
                    if sink is not None:
                        sink.feed(chunk)
                if progress.size is not None and progress.bytes_read < progress.size:
                    raise BodyTruncated(f"{progress.bytes_read} of {progress.size} bytes")
                return await digest.hexdigest()
            finally:
                digest.close()


def _record_headers(response: aiohttp.ClientResponse, progress: _Progress) -> None:
    headers = response.headers
    progress.headers_seen = True
    progress.status = response.status
    progress.size = _content_length(headers)
    progress.etag = headers.get("ETag")
    progress.last_modified = headers.get("Last-Modified")
    progress.location = headers.get("Location")
    progress.cache = cache_headers(headers)


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Content-Length")
    if value is None or "chunked" in headers.get("Transfer-Encoding", "").lower():
        return None
    return int(value) if value.strip().isdigit() else None


def cache_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The cache-identity headers an edge sent, lower-cased names, values cut to 200."""
    found = []
    for name in CACHE_HEADERS:
        value = headers.get(name)
        if value is not None:
            found.append((name, value[:CACHE_VALUE_MAX]))
    return tuple(found)


def _reason(exc: BaseException, progress: _Progress) -> ErrorReason:
    """The one mapping from transport exceptions to the contract's error words."""
    if isinstance(exc, TimeoutError):  # asyncio.timeout and aiohttp's timeouts alike
        return ErrorReason.TIMEOUT
    if isinstance(exc, BodyTooLarge):
        return ErrorReason.TOO_LARGE
    # Certificate errors subclass the connector error, so TLS is checked before connect.
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
        return ErrorReason.TLS
    if isinstance(exc, BodyTruncated | aiohttp.ClientPayloadError):
        return ErrorReason.TRUNCATED
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ErrorReason.CONNECT
    if progress.headers_seen and isinstance(exc, OSError | aiohttp.ServerDisconnectedError):
        return ErrorReason.TRUNCATED  # the connection died mid-body
    if isinstance(exc, aiohttp.ClientOSError) and not isinstance(
        exc, aiohttp.ServerDisconnectedError
    ):
        return ErrorReason.CONNECT
    return ErrorReason.PROTOCOL


def _detail(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


def _observation(
    progress: _Progress,
    started: float,
    *,
    sha256: str | None = None,
    error: ErrorReason | None = None,
    detail: str | None = None,
) -> Observation:
    return Observation(
        status=progress.status,
        size=progress.size,
        bytes_read=progress.bytes_read,
        sha256=sha256,
        etag=progress.etag,
        last_modified=progress.last_modified,
        location=progress.location,
        elapsed_s=time.perf_counter() - started,
        error=error,
        detail=detail,
        cache=progress.cache,
    )
