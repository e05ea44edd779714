"""The HTTP/1.1 response parser of the probe client, fed byte streams cut at every size.

The lab and fault tests drive it through real nginx and fault servers; nginx never sends a
complete chunked body, an interim 1xx response or trailers, so those framings are checked
here, at the protocol interface asyncio itself calls (get_buffer / buffer_updated).
"""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from prober.transport.http1 import BodyTooLarge, Connection, Exchange, ProtocolError


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


def run(
    response: bytes, step: int, *, head_only: bool = False, limit: int = 1 << 30
) -> tuple[Exchange, Connection, Transport]:
    async def go() -> tuple[Exchange, Connection, Transport]:
        connection, transport = Connection(), Transport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        exchange = Exchange(asyncio.get_running_loop(), head_only=head_only, limit=limit)
        connection.send(b"GET / HTTP/1.1\r\n\r\n", exchange)
        for i in range(0, len(response), step):
            if transport.aborted:
                break
            piece = response[i : i + step]
            connection.get_buffer(-1)[: len(piece)] = piece
            connection.buffer_updated(len(piece))
        return exchange, connection, transport

    return asyncio.run(go())


BODY = b"0123456789abcdef" * 700  # 11,200 bytes
STEPS = [1, 7, 100, 4096, 65536]


@pytest.mark.parametrize("step", STEPS)
def test_chunked_body_after_an_interim_response_with_extensions_and_trailers(step: int) -> None:
    chunks = b"".join(
        b"%x;ext=1\r\n%s\r\n" % (len(BODY[i : i + 3000]), BODY[i : i + 3000])
        for i in range(0, len(BODY), 3000)
    )
    response = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nETag: "e"\r\n\r\n'
        + chunks
        + b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    exchange, connection, _ = run(response, step)
    assert exchange.done.done() and exchange.done.exception() is None
    assert exchange.status == 200 and exchange.headers["etag"] == '"e"'
    assert exchange.bytes_read == len(BODY) and exchange.size is None
    assert exchange.sha256.hexdigest() == hashlib.sha256(BODY).hexdigest()
    assert connection.release()  # complete and keep-alive: back to the pool


@pytest.mark.parametrize("step", STEPS)
def test_content_length_body_and_bytes_past_it(step: int) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
    exchange, connection, _ = run(head + BODY, step)
    assert exchange.sha256.hexdigest() == hashlib.sha256(BODY).hexdigest()
    assert exchange.size == len(BODY) and connection.release()
    exchange, connection, _ = run(head + BODY + b"EXTRA", step)
    assert exchange.done.exception() is None and not connection.release()  # not reused


def test_head_reports_the_size_without_a_body() -> None:
    exchange, connection, _ = run(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", 5, head_only=True
    )
    assert exchange.size == 1234 and exchange.bytes_read == 0 and connection.release()


def test_connection_close_and_http10_are_not_reused() -> None:
    for response in (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ):
        exchange, connection, _ = run(response, 3)
        assert exchange.done.exception() is None and not connection.release()


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ProtocolError),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX", ProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", ProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", ProtocolError),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", BodyTooLarge),
        (b"ICY 200 OK\r\n\r\n", ProtocolError),
    ],
)
def test_bad_framing_fails_and_drops_the_connection(
    response: bytes, error: type[Exception]
) -> None:
    exchange, connection, transport = run(response, 4, limit=10)
    assert isinstance(exchange.done.exception(), error)
    assert transport.aborted and not connection.release()


def test_request_head_carries_the_url_host_port_and_a_safe_path() -> None:
    from prober.fetch import _target

    scheme, host, port, get, head = _target("https://bücher.example:8443/a b\r\nX: y?q=1")
    assert (scheme, host, port) == ("https", "xn--bcher-kva.example", 8443)  # SNI's A-label
    assert get.startswith(b"GET /a%20b") and b"\r\nX:" not in get  # no header injection
    assert b"\r\nHost: xn--bcher-kva.example:8443\r\n" in get
    assert b"Accept-Encoding: identity\r\n" in get and head.startswith(b"HEAD /a%20b")
    assert b"Host: repo.test\r\n" in _target("https://repo.test/p")[3]  # default port omitted
    assert b"Host: [::1]:8443\r\n" in _target("https://[::1]:8443/p")[3]
    with pytest.raises(ValueError):
        _target("https://a b/")
