"""What a 304 may prove, and which targets may share a pool, against a real HTTP server on
loopback that sends Last-Modified and no ETag (Python's http.server, as many origins do).

If-Modified-Since is answered 304 by an edge that went back to an *older* copy (RFC 9110
13.1.3), so with no ETag a 304 is trusted only when it names the same Last-Modified; and
fetchers share a keep-alive pool only with the same timeout, size and keep-alive, so one
target never times out waiting behind another's exchanges."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prober.fetch import Connections, Fetcher
from prober.kinds.revalidation import Revalidation, confirms, no_reading
from prober.model import Edge, Observation

NEW, OLD = 1_790_000_000, 1_780_000_000


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def write(root: Path, data: bytes, mtime: int) -> None:
    (root / "index").write_bytes(data)
    os.utime(root / "index", (mtime, mtime))


def test_a_304_to_if_modified_since_alone_does_not_hide_a_rollback(
    server: tuple[Path, int],
) -> None:
    root, port = server
    new, old = os.urandom(4096), os.urandom(4096)
    write(root, new, NEW)
    edge, url = Edge("127.0.0.1", 4), f"http://origin.test:{port}/index"

    async def cycles() -> list[Observation]:
        fetcher, reval = Fetcher(), Revalidation(full_every=100)
        seen = []
        try:
            for number in range(3):
                if number == 2:
                    write(root, old, OLD)  # the edge goes back to an older copy
                reval.start_cycle({edge.address})
                observation, _ = await reval.fetch_read(fetcher, edge, url, None, no_reading)
                seen.append(observation)
        finally:
            await fetcher.close()
        return seen

    first, unchanged, rolled_back = asyncio.run(cycles())
    assert first.status == 200 and first.last_modified and first.etag is None
    # the server's 304 does not repeat Last-Modified: nothing proven, the body fetched again
    assert unchanged.sha256 == hashlib.sha256(new).hexdigest() and not unchanged.revalidated
    assert rolled_back.sha256 == hashlib.sha256(old).hexdigest()  # seen at once


def test_what_a_304_proves() -> None:
    said = Observation(status=304, etag='"a"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")
    bare = Observation(status=304)
    assert confirms('"a"', None, said) and confirms('"a"', None, bare)  # If-None-Match matched
    assert not confirms('"b"', None, said)  # a 304 naming another ETag
    assert confirms(None, "Mon, 01 Jan 2024 00:00:00 GMT", said)
    assert not confirms(None, "Tue, 02 Jan 2024 00:00:00 GMT", said)  # an older copy's date
    assert not confirms(None, "Mon, 01 Jan 2024 00:00:00 GMT", bare)


def test_fetchers_share_a_pool_only_with_the_same_timeout_size_and_keepalive(
    server: tuple[Path, int],
) -> None:
    root, port = server
    write(root, b"x" * 100, NEW)
    edge, url = Edge("127.0.0.1", 4), f"http://origin.test:{port}/index"

    async def pools(*settings: dict[str, float]) -> int:
        connections = Connections()
        fetchers = [Fetcher(connections=connections, **s) for s in settings]  # type: ignore[arg-type]
        try:
            answers = await asyncio.gather(*(f.fetch(edge, url) for f in fetchers))
            assert all(a.status == 200 for a in answers)
            return len(connections)
        finally:
            await asyncio.gather(*(f.close() for f in fetchers))

    assert asyncio.run(pools({"timeout_s": 5.0}, {"timeout_s": 5.0})) == 1
    assert asyncio.run(pools({"timeout_s": 5.0}, {"timeout_s": 1.0})) == 2
    assert asyncio.run(pools({"keepalive_s": 60.0}, {"keepalive_s": 600.0})) == 2
    assert asyncio.run(pools({"connections_per_edge": 1}, {"connections_per_edge": 4})) == 2
