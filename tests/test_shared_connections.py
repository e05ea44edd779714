"""What the daemon shares at scale, against the nginx lab: targets that reach the same edges
with the same connection settings share the edges' keep-alive connections (and never with a
target whose TLS settings differ), a read buffer follows the exchange rather than the
connection, equal texts of a report are one object, and the cached exposition is served
gzip-encoded or not from the same bytes."""

from __future__ import annotations

import asyncio
import gzip
from collections import defaultdict
from pathlib import Path

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from prober.config import parse_config
from prober.daemon.core import Daemon
from prober.daemon.metrics import Compressed
from prober.daemon.server import make_app
from prober.fetch import Connections, Fetcher
from prober.model import Edge
from prober.transport.http1 import Connection, Exchange
from tests.lab import HOST, Lab
from tests.test_http1 import Transport

PATHS = ("/a", "/b")


def connections_per_edge(lab: Lab) -> dict[str, set[str]]:
    """The nginx connection serial numbers ($connection) each edge served requests on."""
    seen: dict[str, set[str]] = defaultdict(set)
    for line in lab.access_log():
        fields = line.split()
        seen[fields[0]].add(fields[-1])
    return dict(seen)


def daemon_config(lab: Lab, targets: list[tuple[str, str]]) -> str:
    blocks = "".join(
        f"  - name: {name}\n    url: https://{HOST}:{lab.port}\n    paths: [{', '.join(PATHS)}]\n"
        f'    interval: 1h\n    resolvers: ["{lab.resolver}"]\n    connections_per_edge: 1\n'
        f"    {tls}\n"
        for name, tls in targets
    )
    return f"dns_min_interval: 1h\ntargets:\n{blocks}"


def write_objects(lab: Lab) -> None:
    for path in PATHS:
        lab.write(path, f"object {path}\n".encode() * 100)


def test_targets_on_the_same_edges_share_connections_only_with_the_same_tls(lab: Lab) -> None:
    """Two targets with the same CA share one connection per edge across two cycles each;
    a third that skips verification (insecure) gets connections of its own."""
    write_objects(lab)
    config = parse_config(
        daemon_config(
            lab,
            [
                ("first", f"ca_file: {lab.ca_file}"),
                ("second", f"ca_file: {lab.ca_file}"),
                ("unverified", "insecure: true"),
            ],
        )
    )

    async def go() -> None:
        daemon = Daemon(config)
        daemon.start()
        try:
            for _ in range(2):
                snapshots = await asyncio.gather(*(r.cycle_now() for r in daemon.runners.values()))
                for snapshot in snapshots:
                    assert snapshot.report is not None
                    assert all(r.observation.status == 200 for o in snapshot.report.objects
                               for r in o.results)  # fmt: skip
        finally:
            await daemon.stop(grace_s=1)

    asyncio.run(go())
    seen = connections_per_edge(lab)
    assert set(seen) == {e.address for e in lab.edges}
    # unshared, each of the three targets would have had its own: 3 per edge
    assert all(len(serials) == 2 for serials in seen.values()), seen


def test_a_shared_pool_lives_until_the_last_fetcher_lets_go(lab: Lab) -> None:
    """One fetcher forgetting an edge leaves the connection to the other, which reuses it;
    when the other forgets it too, the pool is closed."""
    write_objects(lab)
    edge, url = Edge("127.0.0.2", 4), lab.url("/a")

    async def go() -> None:
        shared = Connections()
        context = shared.ssl_context(lab.ca_file, False)
        first, second = (
            Fetcher(ssl_context=context, connections=shared, connections_per_edge=1)
            for _ in range(2)
        )
        assert (await first.fetch(edge, url)).status == 200
        assert (await second.fetch(edge, url)).status == 200
        await first.forget(set())
        assert len(shared) == 1
        assert (await second.fetch(edge, url)).status == 200
        await second.forget(set())
        assert len(shared) == 0

    asyncio.run(go())
    assert len(connections_per_edge(lab)["127.0.0.2"]) == 1  # three requests, one connection


def test_equal_ca_files_share_a_context_and_a_changed_one_does_not(
    tmp_path: Path, lab: Lab
) -> None:
    """A reload that points the same file name at other certificates gets a new context."""
    shared = Connections()
    ca = tmp_path / "ca.pem"
    ca.write_text(Path(lab.ca_file).read_text())
    assert shared.ssl_context(str(ca), False) is shared.ssl_context(str(ca), False)
    assert shared.ssl_context(str(ca), False) is not shared.ssl_context(str(ca), True)
    before = shared.ssl_context(str(ca), False)
    ca.write_text(Path(lab.ca_file).read_text() * 2)
    assert shared.ssl_context(str(ca), False) is not before


def test_an_idle_connection_gives_its_read_buffer_to_the_next_exchange() -> None:
    """The buffer a response was read into is the one the next exchange, on another
    connection, reads into: idle connections keep no buffer of their own."""
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    async def go() -> None:
        loop = asyncio.get_running_loop()
        first, second = Connection(), Connection()
        for connection in (first, second):
            connection.connection_made(Transport())  # type: ignore[arg-type]
        first.send(b"GET / HTTP/1.1\r\n\r\n", Exchange(loop))
        buffer = first.get_buffer(-1)
        buffer[: len(response)] = response
        first.buffer_updated(len(response))
        assert first.release()
        assert first.get_buffer(-1).obj is not buffer.obj  # idle: a small stand-in
        second.send(b"GET / HTTP/1.1\r\n\r\n", Exchange(loop))
        assert second.get_buffer(-1).obj is buffer.obj

    asyncio.run(go())


def test_edges_serving_the_same_object_share_its_texts(lab: Lab) -> None:
    """The hash, ETag and Last-Modified of one object from every edge are one object each
    in memory (one report holds an Observation per edge x object)."""
    write_objects(lab)

    async def go() -> None:
        fetcher = Fetcher(ssl_context=Connections().ssl_context(lab.ca_file, False))
        found = [await fetcher.fetch(Edge(a, 4), lab.url("/a")) for a in ("127.0.0.2", "127.0.0.3")]
        first, second = found
        assert first.sha256 == second.sha256 and first.sha256 is second.sha256
        assert first.etag is second.etag and first.last_modified is second.last_modified
        await fetcher.close()

    asyncio.run(go())


def test_compressed_text_comes_back_whole_in_bounded_chunks() -> None:
    text = [b'cdnprobe_edge_up{target="t",address="192.0.2.%d"} 1\n' % i for i in range(5000)]
    compressed = Compressed.of(text)
    assert compressed.size == sum(map(len, text))
    assert gzip.decompress(compressed.gzip) == b"".join(text)
    chunks = list(compressed.chunks(limit=1000))
    assert b"".join(chunks) == b"".join(text) and max(map(len, chunks)) <= 1000


def test_gzip_scrape_is_the_uncompressed_exposition(lab: Lab) -> None:
    """/metrics with and without Accept-Encoding: gzip: the same bytes once decompressed,
    each with its Content-Length; HEAD gets the headers only."""
    write_objects(lab)
    config = parse_config(daemon_config(lab, [("repo", f"ca_file: {lab.ca_file}")]))

    async def go() -> tuple[bytes, bytes, bytes]:
        daemon = Daemon(config)
        daemon.process_registry = CollectorRegistry()  # no live series: both scrapes are equal
        daemon.start()
        app = web.AppRunner(make_app(daemon), access_log=None)
        await app.setup()
        site = web.TCPSite(app, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{app.addresses[0][1]}/metrics"
        try:
            await daemon.runners["repo"].cycle_now()
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                bodies = []
                for encoding in ("gzip", "identity"):
                    headers = {"Accept-Encoding": encoding}
                    async with session.get(url, headers=headers) as response:
                        body = await response.read()
                        assert response.content_length == len(body)
                        assert (response.headers.get("Content-Encoding") == "gzip") == (
                            encoding == "gzip"
                        )
                        bodies.append(body)
                async with session.head(url) as response:
                    assert response.status == 200 and await response.read() == b""
            return bodies[0], bodies[1], daemon.exposition()
        finally:
            await app.cleanup()
            await daemon.stop(grace_s=1)

    zipped, plain, exposition = asyncio.run(go())
    assert gzip.decompress(zipped) == plain == exposition
    assert b'cdnprobe_edge_object_match{address="127.0.0.2"' in plain
