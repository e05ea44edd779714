"""What HTTP/2 adds to an exchange, without importing h2: the errors a stream can end in and
the exchange that says which version carried it. `fetch` needs them on every path; the h2
library itself is imported only by a Fetcher that may speak HTTP/2."""

from __future__ import annotations

from typing import Any

from prober.transport.http1 import Exchange, ProtocolError


class StreamReset(Exception):
    """The edge reset the stream (RST_STREAM), or sent GOAWAY before its body was complete.
    `code` is the h2 error code's name, e.g. INTERNAL_ERROR."""

    def __init__(self, code: str, how: str) -> None:
        super().__init__(f"{how} {code}")
        self.code = code


class StreamRefused(StreamReset):
    """The edge did not process the stream (REFUSED_STREAM, or a GOAWAY below its id): safe
    to send again on a new connection (RFC 9113 §8.7)."""


class VersionedExchange(Exchange):
    """An Exchange that also says which HTTP version carried it (set by EdgePool)."""

    __slots__ = ("http_version",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.http_version = "2"


class NotH2(ProtocolError):
    """HTTP/2 was required and the edge did not negotiate it."""


__all__ = ["NotH2", "StreamRefused", "StreamReset", "VersionedExchange"]
