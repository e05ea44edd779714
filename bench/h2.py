"""`python3 -m bench.h2`: the cost of HTTP/2 probing beside HTTP/1.1, in one process.

One nginx edge of the test lab with `http2` on serves small files and one large object. The
same Fetcher code probes it with http "1.1" and "2", interleaved round by round, on kept
connections (steady state, as the daemon runs): CPU microseconds per small probe (many in
flight, as a cycle has them) and MB/s on the large object. Median (min-max) of the rounds.
Separate from `python3 -m bench`, whose default run it does not change.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trustme

from prober.fetch import Fetcher, make_ssl_context
from prober.model import Edge
from tests.lab import EdgeSpec, Lab

ADDRESS = "127.0.0.2"
SMALL_FILES = 20
SMALL_SIZE = 4096
VERSIONS = ("1.1", "2")


async def small_round(fetcher: Fetcher, lab: Lab, probes: int) -> float:
    """CPU microseconds per small probe, the fetcher's connections already open."""
    edge = Edge(ADDRESS, 4)
    urls = [lab.url(f"/small/{i % SMALL_FILES}") for i in range(probes)]
    started = time.process_time()
    found = await asyncio.gather(*(fetcher.fetch(edge, url) for url in urls))
    cpu_s = time.process_time() - started
    if any(o.error for o in found):
        raise RuntimeError(f"small probe failed: {next(o for o in found if o.error)}")
    return cpu_s / probes * 1e6


async def large_round(fetcher: Fetcher, lab: Lab, size: int, digest: str) -> float:
    started = time.perf_counter()
    found = await fetcher.fetch(Edge(ADDRESS, 4), lab.url("/large"))
    elapsed = time.perf_counter() - started
    if found.error or found.sha256 != digest:
        raise RuntimeError(f"large probe failed: {found}")
    return size / elapsed / 1e6


async def run(
    lab: Lab, rounds: int, probes: int, size: int, digest: str
) -> dict[str, dict[str, list[float]]]:
    context = make_ssl_context(lab.ca_file)
    fetchers = {v: Fetcher(ssl_context=context, http=v, timeout_s=120) for v in VERSIONS}
    results: dict[str, dict[str, list[float]]] = {v: {"us": [], "mbs": []} for v in VERSIONS}
    try:
        for fetcher in fetchers.values():  # warm up: connections, caches
            await small_round(fetcher, lab, probes)
        for _ in range(rounds):
            for version, fetcher in fetchers.items():
                results[version]["us"].append(await small_round(fetcher, lab, probes))
                results[version]["mbs"].append(await large_round(fetcher, lab, size, digest))
    finally:
        for fetcher in fetchers.values():
            await fetcher.close()
    return results


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.h2", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--probes", type=int, default=500, help="small probes per round")
    parser.add_argument("--large-mib", type=int, default=256)
    args = parser.parse_args()
    size = args.large_mib << 20
    with tempfile.TemporaryDirectory(prefix="bench-h2-") as work:
        lab = Lab(Path(work) / "lab", trustme.CA(), [EdgeSpec(ADDRESS, http2=True)])
        lab.start()
        try:
            for i in range(SMALL_FILES):
                lab.write(f"/small/{i}", hashlib.sha256(b"%d" % i).digest() * (SMALL_SIZE // 32))
            block = hashlib.sha256(b"large").digest() * (1 << 15)  # 1 MiB
            digest = hashlib.sha256()
            with open(lab.docroot(ADDRESS) / "large", "wb") as out:
                for _ in range(args.large_mib):
                    out.write(block)
                    digest.update(block)
            results = asyncio.run(run(lab, args.rounds, args.probes, size, digest.hexdigest()))
        finally:
            lab.stop()
    print(f"one nginx edge, {args.rounds} rounds, median (min-max)")
    print(f"| http | CPU us / small probe ({SMALL_SIZE} B) | MB/s, {args.large_mib} MiB object |")
    print("|---|---|---|")
    for version in VERSIONS:
        r = results[version]
        print(f"| {version} | {cell(r['us'])} | {cell(r['mbs'])} |")
    us = {v: statistics.median(results[v]["us"]) for v in VERSIONS}
    mbs = {v: statistics.median(results[v]["mbs"]) for v in VERSIONS}
    cost, rate = us["2"] / us["1.1"], mbs["2"] / mbs["1.1"]
    print(f"h2 / 1.1: CPU per small probe x{cost:.2f}, MB/s x{rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
