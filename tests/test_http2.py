"""HTTP/2 probing against real nginx (`listen ... ssl http2`) and an h2 fault edge.

What an HTTP/1.1-only probe misses: an edge whose h2 path resets streams while its HTTP/1.1
path is fine. Every probe here goes through the Fetcher, as the kinds do.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import re
import resource
import ssl
import subprocess
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from prober.errors import ErrorReason
from prober.fetch import BufferSink, Fetcher, make_ssl_context
from prober.model import Edge, Observation
from tests.goproxy_tree import MODULE, go_env, standard_modules
from tests.h2faults import BODY, PART, H2FaultEdge
from tests.lab import HOST, EdgeSpec, Lab

H2_EDGE, H1_EDGE = "127.0.0.2", "127.0.0.3"
SMALL = b"Suite: stable\n" * 40
LARGE = hashlib.sha256(b"seed").digest() * (3 << 15)  # 3 MiB
HUGE_MIB = 64


@pytest.fixture(scope="module")
def h2lab(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[Lab]:
    """nginx: one edge offering h2, one HTTP/1.1 only; a 64 MiB file on the h2 edge."""
    lab = Lab(
        tmp_path_factory.mktemp("h2lab") / "lab",
        ca,
        [EdgeSpec(H2_EDGE, http2=True), EdgeSpec(H1_EDGE)],
    )
    lab.start()
    try:
        lab.write("/small", SMALL)
        lab.write("/large", LARGE)
        huge = lab.docroot(H2_EDGE) / "huge"
        with open(huge, "wb") as out:
            block = os.urandom(1 << 20)
            for _ in range(HUGE_MIB):
                out.write(block)
        yield lab
    finally:
        lab.stop()


def probe(
    lab: Lab,
    http: str,
    pairs: list[tuple[str, str]],
    *,
    timeout_s: float = 20.0,
    run: Callable[[Coroutine[Any, Any, list[Observation]]], list[Observation]] = asyncio.run,
) -> list[Observation]:
    """Fetches (address, path) pairs concurrently through one Fetcher, twice over (two
    cycles on kept connections); returns the second cycle's observations."""

    async def go() -> list[Observation]:
        fetcher = Fetcher(ssl_context=make_ssl_context(lab.ca_file), http=http, timeout_s=timeout_s)
        try:
            found: list[Observation] = []
            for _ in range(2):
                found = list(
                    await asyncio.gather(*(fetcher.fetch(Edge(a, 4), lab.url(p)) for a, p in pairs))
                )
            return found
        finally:
            await fetcher.close()

    return run(go())


def h2_connections(lab: Lab, address: str) -> set[str]:
    """nginx's $connection numbers of the HTTP/2 requests an edge logged."""
    return {
        line.rsplit(" ", 1)[1]
        for line in lab.access_log()
        if line.startswith(address + " ") and "HTTP/2.0" in line
    }


# ---- real nginx ---------------------------------------------------------------------------


def test_auto_speaks_h2_where_offered_with_the_same_hashes_as_http1(h2lab: Lab) -> None:
    """auto: h2 on the edge that offers it, 1.1 on the other; the bytes hash the same."""
    pairs = [(a, p) for a in (H2_EDGE, H1_EDGE) for p in ("/small", "/large")]
    auto = probe(h2lab, "auto", pairs)
    plain = probe(h2lab, "1.1", pairs)
    assert [o.http_version for o in auto] == ["2", "2", "1.1", "1.1"]
    assert {o.http_version for o in plain} == {"1.1"}
    expected = [hashlib.sha256(b).hexdigest() for b in (SMALL, LARGE)] * 2
    assert [o.sha256 for o in auto] == [o.sha256 for o in plain] == expected
    assert all(o.error is None and o.status == 200 for o in auto)
    assert [o.size for o in auto] == [o.bytes_read for o in auto] == [len(SMALL), len(LARGE)] * 2


def test_auto_on_uvloop_hands_each_connection_to_the_protocol_alpn_picked(h2lab: Lab) -> None:
    """The CLI runs on uvloop: its TLS transport switches to the h2 or the (buffered)
    HTTP/1.1 protocol after the handshake as asyncio's does."""
    uvloop = pytest.importorskip("uvloop")
    pairs = [(a, p) for a in (H2_EDGE, H1_EDGE) for p in ("/small", "/large")]
    found = probe(h2lab, "auto", pairs, run=uvloop.run)
    assert [o.http_version for o in found] == ["2", "2", "1.1", "1.1"]
    assert [o.sha256 for o in found] == [hashlib.sha256(b).hexdigest() for b in (SMALL, LARGE)] * 2


def test_concurrent_streams_share_one_connection_per_edge(h2lab: Lab) -> None:
    """20 concurrent requests, two cycles: one h2 connection to the edge (nginx $connection)."""
    before = h2_connections(h2lab, H2_EDGE)
    found = probe(h2lab, "2", [(H2_EDGE, "/small")] * 10 + [(H2_EDGE, "/large")] * 10)
    assert all(o.error is None and o.http_version == "2" for o in found)
    assert len(h2_connections(h2lab, H2_EDGE) - before) == 1


def accepted_connections(lab: Lab) -> int:
    """nginx stub_status: TLS connections accepted so far (this probe's own included)."""

    async def go() -> BufferSink | None:
        fetcher = Fetcher(ssl_context=make_ssl_context(lab.ca_file), timeout_s=10)
        try:
            _, sink = await fetcher.fetch_into(
                Edge(H1_EDGE, 4), lab.url("/stub_status"), BufferSink
            )
            return sink
        finally:
            await fetcher.close()

    sink = asyncio.run(go())
    assert sink is not None
    return int(sink.data.decode().split("\n")[2].split()[0])


def test_auto_falls_back_to_http1_within_the_pool_bound(h2lab: Lab) -> None:
    """auto, an edge that picks http/1.1, 12 requests at once twice: HTTP/1.1 connections up
    to the per-edge bound (4), not one ALPN handshake per waiting caller."""
    before = accepted_connections(h2lab)
    found = probe(h2lab, "auto", [(H1_EDGE, "/small")] * 12)
    assert all(o.error is None and o.http_version == "1.1" for o in found)
    assert accepted_connections(h2lab) - before - 1 <= 4


def test_http2_required_against_an_edge_without_h2_is_protocol(h2lab: Lab) -> None:
    """http "2": an edge that picks http/1.1 by ALPN is the error protocol, said so."""
    (found,) = probe(h2lab, "2", [(H1_EDGE, "/small")])
    assert found.error == ErrorReason.PROTOCOL and found.status is None
    assert found.detail is not None and "did not negotiate h2" in found.detail


def test_alpn_goes_on_a_copy_of_a_context_from_elsewhere(h2lab: Lab) -> None:
    """A caller's own context (not from make_ssl_context) is copied with its CA and
    verification for the ALPN offer, and left as it was: HTTP/1.1 Fetchers share it."""
    context = ssl.create_default_context(cafile=h2lab.ca_file)

    async def go() -> list[Observation]:
        fetchers = [Fetcher(ssl_context=context, http=v) for v in ("auto", "1.1")]
        try:
            return [await f.fetch(Edge(H2_EDGE, 4), h2lab.url("/small")) for f in fetchers]
        finally:
            for fetcher in fetchers:
                await fetcher.close()

    auto, plain = asyncio.run(go())
    assert auto.error is None and auto.http_version == "2"
    assert plain.error is None and plain.http_version == "1.1"
    untrusted = Fetcher(ssl_context=ssl.create_default_context(), http="auto")
    (refused,) = asyncio.run(fetch_with(untrusted, h2lab.url("/small")))
    assert refused.error == ErrorReason.TLS  # the copy still verifies


async def fetch_with(fetcher: Fetcher, url: str) -> list[Observation]:
    try:
        return [await fetcher.fetch(Edge(H2_EDGE, 4), url)]
    finally:
        await fetcher.close()


def test_head_over_h2_reports_the_size_without_a_body(h2lab: Lab) -> None:
    async def go() -> Observation:
        fetcher = Fetcher(ssl_context=make_ssl_context(h2lab.ca_file), http="auto")
        try:
            return await fetcher.head(Edge(H2_EDGE, 4), h2lab.url("/large"))
        finally:
            await fetcher.close()

    found = asyncio.run(go())
    assert (found.status, found.size, found.bytes_read) == (200, len(LARGE), 0)
    assert found.http_version == "2" and found.error is None


def test_a_64_mib_body_over_h2_keeps_memory_bounded(h2lab: Lab) -> None:
    """The body is hashed as it arrives: traced memory stays at buffer size, not body size."""
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, peak so far
    tracemalloc.start()
    try:
        (found,) = probe_once(h2lab, "2", H2_EDGE, "/huge", timeout_s=120)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert found.error is None and found.bytes_read == HUGE_MIB << 20
    assert found.sha256 == file_sha256(h2lab.docroot(H2_EDGE) / "huge")
    assert peak < 8 << 20, f"traced peak {peak >> 10} KiB"
    assert rss_growth < 48 << 10, f"RSS peak grew {rss_growth} KiB"


def test_a_64_mib_body_over_h2_is_not_flow_control_bound(h2lab: Lab) -> None:
    """Windows are raised and data acknowledged at once: h2 moves a 64 MiB body at a rate
    within a sane factor of HTTP/1.1 (loose bound: the cores are shared)."""
    rates = {}
    for http in ("1.1", "2"):
        started = time.perf_counter()
        (found,) = probe_once(h2lab, http, H2_EDGE, "/huge", timeout_s=120)
        elapsed = time.perf_counter() - started
        assert found.error is None and found.bytes_read == HUGE_MIB << 20
        assert found.http_version == http
        rates[http] = HUGE_MIB / elapsed
    print(f"64 MiB: HTTP/1.1 {rates['1.1']:.0f} MiB/s, HTTP/2 {rates['2']:.0f} MiB/s")
    assert rates["2"] > rates["1.1"] / 10


def probe_once(
    lab: Lab, http: str, address: str, path: str, *, timeout_s: float
) -> list[Observation]:
    async def go() -> list[Observation]:
        fetcher = Fetcher(ssl_context=make_ssl_context(lab.ca_file), http=http, timeout_s=timeout_s)
        try:
            return [await fetcher.fetch(Edge(address, 4), lab.url(path))]
        finally:
            await fetcher.close()

    return asyncio.run(go())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- the h2 fault edge --------------------------------------------------------------------


@pytest.fixture
def h2fault(h2lab: Lab, ca: trustme.CA) -> Iterator[type[H2FaultEdge]]:
    started: list[H2FaultEdge] = []

    class Started(H2FaultEdge):
        def start(self) -> H2FaultEdge:
            started.append(self)
            return super().start()

    yield Started
    for edge in started:
        edge.stop()


def fault_probe(
    lab: Lab, edge: H2FaultEdge, http: str, *, times: int = 1, timeout_s: float = 10.0
) -> tuple[list[Observation], list[Observation]]:
    """Two cycles of `times` concurrent requests at the fault edge; both cycles' results."""

    async def go() -> tuple[list[Observation], list[Observation]]:
        fetcher = Fetcher(ssl_context=make_ssl_context(lab.ca_file), http=http, timeout_s=timeout_s)
        url = f"https://{HOST}:{edge.port}/p"
        try:
            cycles = []
            for _ in range(2):
                found = await asyncio.gather(
                    *(fetcher.fetch(Edge(edge.addresses[0], 4), url) for _ in range(times))
                )
                cycles.append(list(found))
            return cycles[0], cycles[1]
        finally:
            await fetcher.close()

    return asyncio.run(go())


def test_reset_mid_body_is_stream_reset_over_h2_and_fine_over_http1(
    h2lab: Lab, h2fault: type[H2FaultEdge], ca: trustme.CA
) -> None:
    """The edge Go's client fails on: auto reports stream_reset (INTERNAL_ERROR), on one
    connection kept across the resets; 1.1 against the same edge is ok."""
    edge = h2fault(["127.0.0.30"], h2lab.port, "reset", ca).start()
    first, second = fault_probe(h2lab, edge, "auto", times=3)
    for found in first + second:
        assert found.error == ErrorReason.STREAM_RESET and found.http_version == "2"
        assert found.detail is not None and "INTERNAL_ERROR" in found.detail
        assert found.status == 200 and 0 < found.bytes_read <= PART < found.size  # type: ignore[operator]
    assert edge.h2_connections == 1  # a reset stream leaves its connection usable
    first, second = fault_probe(h2lab, edge, "1.1")
    for found in first + second:
        assert found.error is None and found.http_version == "1.1"
        assert found.sha256 == hashlib.sha256(BODY).hexdigest()


def test_goaway_after_the_headers_is_stream_reset(
    h2lab: Lab, h2fault: type[H2FaultEdge], ca: trustme.CA
) -> None:
    edge = h2fault(["127.0.0.31"], h2lab.port, "goaway", ca).start()
    first, second = fault_probe(h2lab, edge, "auto")
    for found in first + second:
        assert found.error == ErrorReason.STREAM_RESET and found.status == 200
        assert found.detail is not None and "GOAWAY" in found.detail
        assert found.bytes_read == 0 and found.http_version == "2"
    assert edge.h2_connections == 2  # one per cycle: a GOAWAY ends the connection


def test_a_graceful_goaway_lets_its_streams_finish_and_the_rest_go_again(
    h2lab: Lab, h2fault: type[H2FaultEdge], ca: trustme.CA
) -> None:
    """GOAWAY NO_ERROR (nginx after keepalive_requests, a reload): the stream it covers is
    received in full, the streams above it are sent again on a new connection; all ok."""
    edge = h2fault(["127.0.0.38"], h2lab.port, "drain", ca).start()
    first, second = fault_probe(h2lab, edge, "2", times=3)
    for found in first + second:
        assert found.error is None and found.http_version == "2", found.detail
        assert found.sha256 == hashlib.sha256(BODY).hexdigest()
    assert edge.h2_connections == 2  # the drained one, then one kept for both cycles


def test_h2_fault_edge_serving_correctly_is_ok(
    h2lab: Lab, h2fault: type[H2FaultEdge], ca: trustme.CA
) -> None:
    """The positive control: the same server speaking h2 correctly, 5 streams at a time,
    with the windows and settings the client asked for."""
    edge = h2fault(["127.0.0.32"], h2lab.port, "ok", ca).start()
    first, second = fault_probe(h2lab, edge, "2", times=5)
    for found in first + second:
        assert found.error is None and found.http_version == "2"
        assert found.sha256 == hashlib.sha256(BODY).hexdigest()
    assert edge.h2_connections == 1 and edge.requests == 10
    # not window-bound: 16 MiB windows for the connection and each stream; no server push
    assert edge.client_stream_window >= 16 << 20
    assert edge.client_connection_window >= 16 << 20
    assert edge.client_enable_push == 0


def test_a_stalled_stream_times_out_and_is_reset_on_a_connection_kept(
    h2lab: Lab, h2fault: type[H2FaultEdge], ca: trustme.CA
) -> None:
    """A timeout cancels the stream (RST_STREAM CANCEL to the edge), not the connection."""
    edge = h2fault(["127.0.0.37"], h2lab.port, "stall", ca).start()
    first, second = fault_probe(h2lab, edge, "2", times=2, timeout_s=0.5)
    for found in first + second:
        assert found.error == ErrorReason.TIMEOUT and found.http_version == "2"
        assert found.bytes_read == PART
    deadline = time.monotonic() + 5
    while edge.resets_received < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert edge.resets_received == 4 and edge.h2_connections == 1


def test_a_stream_ended_short_of_its_content_length_is_truncated(
    h2lab: Lab, h2fault: type[H2FaultEdge], ca: trustme.CA
) -> None:
    edge = h2fault(["127.0.0.33"], h2lab.port, "short", ca).start()
    first, second = fault_probe(h2lab, edge, "2")
    for found in first + second:
        assert found.error == ErrorReason.TRUNCATED and found.http_version == "2"
        assert found.detail is not None and f"{PART} of {len(BODY)}" in found.detail


def test_bytes_that_are_not_h2_frames_are_a_protocol_error(
    h2lab: Lab, h2fault: type[H2FaultEdge], ca: trustme.CA
) -> None:
    edge = h2fault(["127.0.0.34"], h2lab.port, "garbage", ca).start()
    first, second = fault_probe(h2lab, edge, "auto")
    for found in first + second:
        assert found.error == ErrorReason.PROTOCOL and found.status is None


# ---- the real go as the oracle ------------------------------------------------------------


def go_download(
    work: Path, proxy: str, ca_file: str, *, h2: bool = True
) -> subprocess.CompletedProcess[str]:
    """`go mod download MODULE@v1.1.0` through GOPROXY, trusting the lab's CA (as tests/goproxy_tree.py's
    go() does, plus SSL_CERT_FILE)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text("module consumer.test/app\n\ngo 1.19\n")
    env = go_env(work, proxy, SSL_CERT_FILE=ca_file, GODEBUG="" if h2 else "http2client=0")
    return subprocess.run(
        ["go", "mod", "download", "-json", f"{MODULE}@v1.1.0"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_go_fails_over_h2_at_the_reset_edge_like_cdnprobe_and_succeeds_elsewhere(
    h2lab: Lab, h2fault: type[H2FaultEdge], ca: trustme.CA, tmp_path: Path
) -> None:
    """The oracle: the real go client, pinned to the edge by its IP (the certificate has
    that IP SAN; go resolves no test names), serving a GOPROXY tree. Over h2 it fails at the
    reset edge (`stream error ... INTERNAL_ERROR`) where cdnprobe's auto says stream_reset;
    with HTTP/2 off (GODEBUG=http2client=0) it succeeds there, as cdnprobe's 1.1 is ok; and
    the same server speaking h2 correctly serves it."""
    tree = tmp_path / "tree"
    standard_modules(tree)
    reset_at, ok_at = "127.0.0.35", "127.0.0.36"
    reset = h2fault([reset_at], h2lab.port, "reset", ca, ca.issue_cert(reset_at), root=tree)
    good = h2fault([ok_at], h2lab.port, "ok", ca, ca.issue_cert(ok_at), root=tree)
    reset.start(), good.start()
    bad = go_download(tmp_path / "bad", f"https://{reset_at}:{h2lab.port}", h2lab.ca_file)
    assert bad.returncode != 0, bad.stdout + bad.stderr
    assert re.search(r"stream error.*INTERNAL_ERROR", bad.stdout + bad.stderr), bad.stderr
    h1 = go_download(tmp_path / "h1", f"https://{reset_at}:{h2lab.port}", h2lab.ca_file, h2=False)
    assert h1.returncode == 0, h1.stdout + h1.stderr
    fine = go_download(tmp_path / "fine", f"https://{ok_at}:{h2lab.port}", h2lab.ca_file)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert good.h2_connections >= 1 and good.h2_connections == good.connections
