"""`python3 -m bench.scale`: the daemon at CDN scale, edges x paths x targets per cycle.

A loopback lab of nginx TLS edges (the test lab) serves small index-like files; the real
daemon (prober.daemon.core.Daemon, in this process, so the garbage collector can be timed)
runs its targets' cycles back to back, warm-up first, on the event loop `cdnprobe run` uses
(uvloop when installed) and with the collector frozen after start-up as `cdnprobe run` does.
Per grid point, for the steady-state cycles: CPU per probe (the process's own, rendering
included: the gzip-encoded exposition a Prometheus scrape asks for, after every cycle), RSS
above the idle process per edge x object, the daemon's TCP connections, series and
exposition bytes in `full` and `problems` mode, the daemon's CPU for one scrape of the cached
exposition through /metrics (curl asking for gzip as Prometheus does, and asking for none),
and the collector's share of the CPU. Needs nginx, dnsmasq, curl and the test extra.
Traffic goes to loopback only; every loop is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import shutil
import time
from pathlib import Path

import trustme
from aiohttp import web

from prober.cli import run_async
from prober.config import parse_config
from prober.daemon.core import Daemon
from prober.daemon.server import make_app, settle_collector
from tests.lab import HOST, EdgeSpec, Lab

GRID = ((16, 20, 1), (64, 20, 1), (200, 20, 1), (200, 100, 1), (200, 100, 5))
STEADY_CYCLES = 3
SCRAPES = 10


class GcClock:
    """Seconds spent in the garbage collector (gc.callbacks around every collection), and
    the full (generation 2) collections among them."""

    def __init__(self) -> None:
        self.total_s, self._started, self.full = 0.0, 0.0, 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.total_s += time.process_time() - self._started
            self.full += info["generation"] == 2

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def tcp_connections() -> int:
    """The process's established TCP connections (its keep-alive connections to the edges)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own descriptor is gone by now
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as rows:
            next(rows)  # the heading
            count += sum(1 for row in rows if row.split()[3] == "01" and row.split()[9] in inodes)
    return count


async def scrape_cpu_ms(daemon: Daemon, gzip: bool) -> tuple[float, int]:
    """The daemon's CPU for one scrape of /metrics (the exposition already cached), from one
    curl process making SCRAPES requests on one connection; and the bytes of one answer."""
    app_runner = web.AppRunner(make_app(daemon), access_log=None)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = app_runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/metrics"
        header = ["-H", "Accept-Encoding: gzip"] if gzip else []
        argv = ["curl", "-sS", *header, "-w", "%{size_download}\n"]
        argv += [a for _ in range(SCRAPES) for a in (url, "-o", "/dev/null")]
        cpu = time.process_time()
        curl = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        out, _ = await curl.communicate()
        cpu = time.process_time() - cpu
        sizes = [int(n) for n in out.split()]
        assert curl.returncode == 0 and len(sizes) == SCRAPES, (curl.returncode, out[:200])
        return cpu / SCRAPES * 1000, sizes[-1]
    finally:
        await app_runner.cleanup()


def config_text(lab: Lab, paths: int, targets: int, series: str) -> str:
    listed = ", ".join(f"/f{i}.txt" for i in range(paths))
    blocks = "".join(
        f"  - name: t{t}\n    url: https://{HOST}:{lab.port}\n    paths: [{listed}]\n"
        f'    interval: 1h\n    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n'
        f"    max_edges: 10000\n"
        for t in range(targets)
    )
    return f"concurrency: 64\ndns_min_interval: 1h\nseries: {series}\ntargets:\n{blocks}"


async def measure(lab: Lab, paths: int, targets: int, series: str) -> dict[str, float]:
    config = parse_config(config_text(lab, paths, targets, series))
    daemon = Daemon(config)
    settle_collector()  # as `cdnprobe run` (server.serve) does before the daemon starts
    idle = rss_kib()
    daemon.start()
    runners = list(daemon.runners.values())
    for runner in runners:  # the schedule's first cycle, then a warm-up one
        await runner.cycle_now()
        await runner.cycle_now()
    daemon.exposition_gzip()
    clock = GcClock()
    cpu = time.process_time()
    wall = time.monotonic()
    for _ in range(STEADY_CYCLES):
        await asyncio.gather(*(r.cycle_now() for r in runners))
        daemon.exposition_gzip()  # the render after every cycle, as a Prometheus scrape asks
    cpu = time.process_time() - cpu
    wall = time.monotonic() - wall
    gc_s, full_collections = clock.total_s, clock.full
    clock.close()
    rss = rss_kib()
    gzip_ms, gzip_bytes = await scrape_cpu_ms(daemon, gzip=True)
    plain_ms, _ = await scrape_cpu_ms(daemon, gzip=False)
    body = daemon.exposition()
    pairs = len(lab.edges) * paths * targets
    series_count = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    figures = {
        "probes": pairs,
        "cycle_wall_s": wall / STEADY_CYCLES,
        "cpu_ms_per_probe": cpu / STEADY_CYCLES / pairs * 1000,
        "gc_share": gc_s / cpu if cpu else 0.0,
        "full_collections": full_collections / STEADY_CYCLES,
        "rss_kib_per_pair": (rss - idle) / pairs,
        "connections": tcp_connections(),
        "series": series_count,
        "exposition_mib": len(body) / (1 << 20),
        "gzip_mib": gzip_bytes / (1 << 20),
        "scrape_gzip_ms": gzip_ms,
        "scrape_plain_ms": plain_ms,
    }
    await daemon.stop(grace_s=1)
    return figures


def measured_apart(lab: Lab, paths: int, targets: int, series: str) -> dict[str, float]:
    """`measure` in a fresh process (forked here, the lab already running): each figure of
    memory starts from an idle daemon, not from what the previous run left behind."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, leave without running the parent's cleanup
        os.close(reader)
        try:
            os.write(writer, json.dumps(run_async(measure(lab, paths, targets, series))).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        text = pipe.read()
    os.waitpid(pid, 0)
    figures: dict[str, float] = json.loads(text)
    return figures


def run_point(work: Path, edges: int, paths: int, targets: int, modes: list[str]) -> list[str]:
    addresses = [f"127.0.{2 + i // 250}.{1 + i % 250}" for i in range(edges)]
    lab = Lab(
        work / f"lab{edges}x{paths}x{targets}", trustme.CA(), [EdgeSpec(a) for a in addresses]
    )
    lab.worker_connections = 16384  # room for a connection per edge, target and pool slot
    lab.start()
    try:
        corpus = work / "corpus"
        corpus.mkdir(exist_ok=True)
        for i in range(paths):
            (corpus / f"f{i}.txt").write_bytes(os.urandom(2048 + 97 * i))
        for address in addresses:
            root = lab.docroot(address)
            shutil.rmtree(root)
            root.symlink_to(corpus)
        lines = []
        for series in modes:
            f = measured_apart(lab, paths, targets, series)
            lines.append(
                f"| {edges}x{paths}x{targets} | {series} | {f['probes']:.0f} | "
                f"{f['cycle_wall_s']:.2f} | {f['cpu_ms_per_probe']:.3f} | "
                f"{f['gc_share']:.1%} ({f['full_collections']:.1f}) | "
                f"{f['rss_kib_per_pair']:.2f} | {f['connections']:.0f} | {f['series']:.0f} | "
                f"{f['exposition_mib']:.2f} | {f['gzip_mib']:.2f} | {f['scrape_gzip_ms']:.2f} | "
                f"{f['scrape_plain_ms']:.2f} |"
            )
            print(lines[-1], flush=True)
        return lines
    finally:
        lab.stop()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.scale", description=__doc__)
    parser.add_argument(
        "--grid",
        default=",".join("x".join(map(str, p)) for p in GRID),
        help="EDGESxPATHSxTARGETS,... (default: %(default)s)",
    )
    parser.add_argument("--series", default="full,problems", help="(default: %(default)s)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cdnprobe-bench-scale"))
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket per edge and target
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    print("| edges x paths x targets | series | probes | cycle s | CPU ms/probe "
          "| GC share (full/cycle) | RSS KiB/pair | connections | series | /metrics MiB | gzip MiB "
          "| scrape ms gzip | scrape ms identity |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for point in args.grid.split(","):
        edges, paths, targets = (int(n) for n in point.split("x"))
        run_point(args.work, edges, paths, targets, args.series.split(","))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
