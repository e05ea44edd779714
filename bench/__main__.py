"""`python3 -m bench`: cdnprobe against blackbox_exporter and curl, same edges, same run.

A loopback lab of nginx TLS edges (the test lab: a test CA, dnsmasq naming them) serves a
deterministic corpus. Each round runs, interleaved: `cdnprobe check`, one steady-state cycle of
`cdnprobe run` (triggered by /probe, connections kept from the previous cycle),
blackbox_exporter probing the same edge x path pairs through /probe with `hostname`, and one
curl process fetching the same files. Reported: median and min-max over the rounds of wall
time, CPU seconds, CPU per edge-object probe, new TLS connections (nginx stub_status),
peak RSS and MB/s; then the ratios the performance issue asks for.
Needs: nginx, dnsmasq, curl, openssl, time, prometheus-blackbox-exporter, and the test extra.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp
import trustme

from bench.corpus import GIB_NAME, make_corpus, make_gib
from tests.lab import HOST, EdgeSpec, Lab, free_port, spawn, stop_process, wait_for_tcp

ROOT = Path(__file__).resolve().parent.parent
CLK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time"  # Debian package `time`
WARM_UP_CYCLES = 5  # daemon cycles before the measured rounds (its first cycles cost more)
# The small lab's contenders take seconds and this machine's speed drifts within a run: its
# ratios, the closest to their targets, get three times the rounds.
SMALL_ROUNDS = 3


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    probes: int
    tls: int
    bytes: int
    rss_kib: int = 0


@dataclass
class Series:
    name: str
    samples: list[Sample] = field(default_factory=list)

    def med(self, pick: Callable[[Sample], float]) -> float:
        return statistics.median(pick(s) for s in self.samples)

    def span(self, pick: Callable[[Sample], float]) -> tuple[float, float]:
        values = [pick(s) for s in self.samples]
        return min(values), max(values)


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run_measured(
    argv: list[str], env: dict[str, str] | None = None, stdout: IO[bytes] | None = None
) -> tuple[float, float, int, int]:
    """wall, CPU seconds, peak RSS (KiB) and exit status of one child process (its output
    goes to `stdout`, or nowhere).

    The peak RSS comes from GNU time, not from our own wait4: Linux counts the memory of the
    process that forked a child into that child's ru_maxrss (the old address space at exec),
    so a child of this benchmark (aiohttp, the lab, ~50 MiB) would never look smaller than
    it. GNU time is small, and its child's figure is the command's own."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        timed = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv]
        started = time.monotonic()
        out = stdout if stdout is not None else subprocess.DEVNULL
        proc = subprocess.Popen(timed, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # includes the command, which time waited for
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        rss = int(rss_file.read().strip().splitlines()[-1])
    return wall, usage.ru_utime + usage.ru_stime, rss, proc.returncode


class Bench:
    def __init__(self, work: Path, edges: int, objects: list[tuple[str, int]], name: str) -> None:
        self.work, self.name, self.objects = work, name, objects
        self.addresses = [f"127.0.{2 + i // 250}.{1 + i % 250}" for i in range(edges)]
        self.lab = Lab(work / "lab", trustme.CA(), [EdgeSpec(a) for a in self.addresses])
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.daemon: subprocess.Popen[bytes] | None = None
        self.blackbox: subprocess.Popen[bytes] | None = None

    @property
    def probes(self) -> int:
        return len(self.addresses) * len(self.objects)

    @property
    def body_bytes(self) -> int:
        return len(self.addresses) * sum(size for _, size in self.objects)

    def start(self, corpus: Path) -> None:
        self.lab.start()
        for address in self.addresses:
            root = self.lab.docroot(address)
            shutil.rmtree(root)
            root.symlink_to(corpus)
        self.daemon_port, self.blackbox_port = free_port(), free_port()
        config = self.work / "cdnprobe.yaml"
        paths = ", ".join(p for p, _ in self.objects)
        config.write_text(
            f"concurrency: 64\ndns_min_interval: 1h\ntargets:\n  - name: bench\n"
            f"    url: https://{HOST}:{self.lab.port}\n    paths: [{paths}]\n"
            f'    resolvers: ["{self.lab.resolver}"]\n    ca_file: {self.lab.ca_file}\n'
            "    interval: 1d\n    timeout: 120s\n    max_body_size: 2GiB\n"
        )
        argv = [
            sys.executable,
            "-m",
            "prober",
            "run",
            "--config",
            str(config),
            "--listen",
            f"127.0.0.1:{self.daemon_port}",
        ]
        self.daemon = subprocess.Popen(
            argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_tcp("127.0.0.1", self.daemon_port)
        blackbox = self.work / "blackbox.yml"
        blackbox.write_text(
            "modules:\n  bench:\n    prober: http\n    timeout: 120s\n    http:\n"
            "      preferred_ip_protocol: ip4\n"
            f"      tls_config:\n        ca_file: {self.lab.ca_file}\n"
        )
        self.blackbox = spawn(
            [
                "prometheus-blackbox-exporter",
                f"--config.file={blackbox}",
                f"--web.listen-address=127.0.0.1:{self.blackbox_port}",
            ],
            self.work / "blackbox.log",
        )
        wait_for_tcp("127.0.0.1", self.blackbox_port)

    def stop(self) -> None:
        stop_process(self.daemon)
        stop_process(self.blackbox)
        self.lab.stop()

    def tls_accepts(self) -> int:
        url = f"https://{HOST}:{self.lab.port}/stub_status"
        out = subprocess.run(
            [
                "curl",
                "-s",
                "--cacert",
                self.lab.ca_file,
                "--resolve",
                f"{HOST}:{self.lab.port}:127.0.0.1",
                "--connect-to",
                f"{HOST}:{self.lab.port}:{self.addresses[0]}:{self.lab.port}",
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.splitlines()[2].split()[0]) - 1  # minus this request's own connection

    def urls(self) -> list[str]:
        return [f"https://{HOST}:{self.lab.port}{p}" for p, _ in self.objects]

    # ---- the four contenders ----------------------------------------------------------

    def cdnprobe_check(self, stdout: IO[bytes] | None = None) -> Sample:
        argv = [
            sys.executable,
            "-m",
            "prober",
            "check",
            *self.urls(),
            "--resolver",
            self.lab.resolver,
            "--ca-file",
            self.lab.ca_file,
            "--timeout",
            "120",
            "--max-body-size",
            "2GiB",
            "--json",
        ]
        # 1: divergence found
        return self._fresh_process("cdnprobe check", argv, ok=(0, 1), stdout=stdout)

    def naive_aiohttp(self) -> Sample:
        argv = [
            sys.executable,
            "-m",
            "bench.naive",
            HOST,
            str(self.lab.port),
            self.lab.ca_file,
            ",".join(self.addresses),
            *(p for p, _ in self.objects),
        ]
        return self._fresh_process("bench.naive", argv)

    def _fresh_process(
        self,
        name: str,
        argv: list[str],
        ok: tuple[int, ...] = (0,),
        stdout: IO[bytes] | None = None,
    ) -> Sample:
        before = self.tls_accepts()
        wall, cpu, rss, code = run_measured(argv, self.env, stdout)
        if code not in ok:
            raise RuntimeError(f"{name} exited {code}")
        return Sample(wall, cpu, self.probes, self.tls_accepts() - before, self.body_bytes, rss)

    def _around(self, pid: int, action: Callable[[], None]) -> Sample:
        """CPU of a long-running server (daemon, blackbox) while `action` makes it probe."""
        before, cpu0 = self.tls_accepts(), proc_cpu(pid)
        started = time.monotonic()
        action()
        wall = time.monotonic() - started
        cpu, tls = proc_cpu(pid) - cpu0, self.tls_accepts() - before
        return Sample(wall, cpu, self.probes, tls, self.body_bytes, proc_rss_kib(pid))

    def daemon_cycle(self) -> Sample:
        assert self.daemon is not None

        def one_cycle() -> None:
            url = f"http://127.0.0.1:{self.daemon_port}/probe?target=bench"
            out = subprocess.run(["curl", "-sf", url], capture_output=True, check=True)
            assert b"cdnprobe_edge_up" in out.stdout

        return self._around(self.daemon.pid, one_cycle)

    def blackbox_probes(self) -> Sample:
        assert self.blackbox is not None
        return self._around(self.blackbox.pid, lambda: asyncio.run(self._blackbox_all()))

    async def _blackbox_all(self) -> None:
        slots = asyncio.Semaphore(64)
        base = f"http://127.0.0.1:{self.blackbox_port}/probe"
        async with aiohttp.ClientSession() as session:

            async def one(address: str, path: str) -> None:
                params = {
                    "module": "bench",
                    "target": f"https://{address}:{self.lab.port}{path}",
                    "hostname": HOST,
                }
                async with slots, session.get(base, params=params) as response:
                    text = await response.text()
                    if "probe_success 1" not in text:
                        raise RuntimeError(f"blackbox probe failed: {address}{path}")

            await asyncio.gather(*(one(a, p) for a in self.addresses for p, _ in self.objects))

    def curl_edge_args(self, address: str) -> list[str]:
        """curl options that reach `address` for the lab's name, verified by the lab's CA."""
        port = self.lab.port
        return ["--cacert", self.lab.ca_file, "--connect-to", f"{HOST}:{port}:{address}:{port}"]

    def curl(self) -> Sample:
        argv = ["curl", "-s", "--parallel", "--parallel-max", "64"]
        for i, address in enumerate(self.addresses):
            if i:
                argv.append("--next")
            argv += self.curl_edge_args(address)
            for url in self.urls():
                argv += ["-o", "/dev/null", url]
        return self._fresh_process("curl", argv)


def measure(bench: Bench, rounds: int) -> dict[str, Series]:
    contenders = {
        "cdnprobe check": bench.cdnprobe_check,
        "cdnprobe run (cycle)": bench.daemon_cycle,
        "blackbox_exporter": bench.blackbox_probes,
        "curl": bench.curl,
        "obvious aiohttp prober": bench.naive_aiohttp,
    }
    series = {name: Series(name) for name in contenders}
    for _ in range(WARM_UP_CYCLES):  # the steady state: connections and memory from before
        bench.daemon_cycle()
    for _ in range(rounds):
        for name, run in contenders.items():  # interleaved, so drift hits every contender alike
            series[name].samples.append(run())
    return series


def run_lab(work: Path, kind: str, edges: int, rounds: int) -> tuple[Bench, dict[str, Series]]:
    """Builds the corpus and the lab of one kind, measures every contender, stops the lab."""
    corpus, objects = make_corpus(work / kind, kind)
    bench = Bench(work / f"{kind}-lab", edges, objects, kind)
    bench.start(corpus)
    try:
        return bench, measure(bench, rounds)
    finally:
        bench.stop()


def table(title: str, series: dict[str, Series], edges: int) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| contender | wall s | CPU s | CPU ms / probe | new TLS / edge | peak RSS MiB | MB/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in series.values():

        def cell(pick: Callable[[Sample], float], fmt: str, s: Series = s) -> str:
            lo, hi = s.span(pick)
            return f"{s.med(pick):{fmt}} ({lo:{fmt}}-{hi:{fmt}})"

        lines.append(
            f"| {s.name} | {cell(lambda x: x.wall_s, '.2f')} | {cell(lambda x: x.cpu_s, '.2f')} | "
            f"{cell(lambda x: 1000 * x.cpu_s / x.probes, '.3f')} | "
            f"{cell(lambda x: x.tls / edges, '.2f')} | "
            f"{s.med(lambda x: x.rss_kib / 1024):.0f} | "
            f"{cell(lambda x: x.bytes / x.wall_s / 1e6, '.0f')} |"
        )
    return [*lines, ""]


def ratio(a: Series, b: Series, pick: Callable[[Sample], float]) -> float:
    return a.med(pick) / b.med(pick)


def gib_rates(seconds: list[float]) -> list[float]:
    """MB/s of the 1 GiB object in rounds that took `seconds`."""
    return [(1 << 30) / t / 1e6 for t in seconds]


def mb_s(seconds: list[float]) -> float:
    return statistics.median(gib_rates(seconds))


def mb_s_cell(seconds: list[float], openssl_mbs: float) -> str:
    """`median (min-max) MB/s | share of openssl` of the 1 GiB object, for the report."""
    rates = gib_rates(seconds)
    median = statistics.median(rates)
    return f"{median:.0f} ({min(rates):.0f}-{max(rates):.0f}) | {100 * median / openssl_mbs:.1f}%"


def gib_run(work: Path, corpus: Path, rounds: int) -> tuple[dict[str, float], list[str]]:
    """The 1 GiB object, interleaved each round: `cdnprobe check`; the floor, the least a
    Python prober can do (bench/floor.py: one blocking TLS socket into hashlib); and curl
    receiving it without hashing. Then `openssl speed` on the quiet machine."""
    bench = Bench(work / "gib", 1, [(f"/{GIB_NAME}", 1 << 30)], "gib")
    bench.lab.start()
    address, port, path = bench.addresses[0], bench.lab.port, f"/{GIB_NAME}"
    floor_argv = [sys.executable, "-m", "bench.floor", HOST, str(port), bench.lab.ca_file]
    curl_argv = ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total} %{size_download}"]
    curl_argv += bench.curl_edge_args(address)
    try:
        root = bench.lab.docroot(address)
        shutil.rmtree(root)
        root.symlink_to(corpus)
        samples, digests = [], set()
        probe_s, floor_s, curl_s = [], [], []
        for _ in range(rounds):
            with tempfile.TemporaryFile() as out:
                samples.append(bench.cdnprobe_check(out))
                out.seek(0)
                edge = json.load(out)["targets"][0]["edges"][0]
            if edge["bytes_read"] != 1 << 30 or edge["error"]:
                raise RuntimeError(f"1 GiB check failed: {edge}")
            probe_s.append(edge["elapsed_ms"] / 1000)
            digests.add(edge["sha256"])
            floor = json.loads(
                subprocess.run(
                    [*floor_argv, address, path], capture_output=True, check=True, env=bench.env
                ).stdout
            )
            floor_s.append(floor["elapsed_s"])
            digests.add(floor["sha256"])
            seconds, size = subprocess.run(
                [*curl_argv, bench.urls()[0]], capture_output=True, text=True, check=True
            ).stdout.split()
            if int(size) != 1 << 30:
                raise RuntimeError(f"curl received {size} bytes")
            curl_s.append(float(seconds))
        if len(digests) != 1:
            raise RuntimeError(f"the 1 GiB object hashed differently: {sorted(digests)}")
    finally:
        bench.lab.stop()
    openssl = subprocess.run(
        ["openssl", "speed", "-evp", "sha256", "-bytes", str(1 << 20), "-seconds", "3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    openssl_mbs = float(openssl.strip().splitlines()[-1].split()[-1].rstrip("k")) * 1000 / 1e6
    # The probe: connect, TLS, request, and the body streamed into SHA-256 (the edge's own
    # elapsed time in the report). The process: that plus interpreter start-up, imports and
    # DNS, which are not hashing but are what a one-shot run costs.
    probe, floor_mbs = mb_s(probe_s), mb_s(floor_s)
    process_s = [s.wall_s for s in samples]
    process = mb_s(process_s)
    rss = statistics.median(s.rss_kib / 1024 for s in samples)
    lines = [
        f"### 1 GiB object, one edge (openssl speed -evp sha256: {openssl_mbs:.0f} MB/s)",
        "",
        "| contender | MB/s | of openssl |",
        "|---|---|---|",
        f"| cdnprobe check, the probe | {mb_s_cell(probe_s, openssl_mbs)} |",
        f"| cdnprobe check, the process | {mb_s_cell(process_s, openssl_mbs)} |",
        f"| floor: blocking TLS socket into hashlib | {mb_s_cell(floor_s, openssl_mbs)} |",
        f"| curl, receiving without hashing | {mb_s_cell(curl_s, openssl_mbs)} |",
        "",
    ]
    figures = {
        "probe_mb_s": probe,
        "process_mb_s": process,
        "openssl_mb_s": openssl_mbs,
        "share": probe / openssl_mbs,
        "process_share": process / openssl_mbs,
        "peak_rss_mib": rss,
        "floor_mb_s": floor_mbs,
        "floor_share": floor_mbs / openssl_mbs,
        "probe_vs_floor": probe / floor_mbs,
        "curl_receive_mb_s": mb_s(curl_s),
    }
    return figures, lines


def scrape_cost(edges: int, paths: int, scrapes: int = 200) -> dict[str, float]:
    """CPU of serving /metrics: the daemon's cached exposition vs. rendering on every scrape."""
    from prometheus_client import CollectorRegistry, generate_latest

    from bench.snapshots import daemon_with_snapshot
    from prober.daemon.metrics import DaemonCollector
    from tests.reference_metrics import SnapshotCollector

    daemon = daemon_with_snapshot(edges, paths)
    # rendering through prometheus_client's objects on every scrape: the baseline
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(daemon.snapshots))
    registry.register(DaemonCollector(lambda: (daemon.reload_ok, daemon.reload_at)))
    started = time.process_time()
    for _ in range(scrapes):
        generate_latest(registry)
        generate_latest(daemon.process_registry)
    uncached = time.process_time() - started
    started = time.process_time()
    for _ in range(scrapes):
        daemon.exposition()
    cached = time.process_time() - started
    return {
        "uncached_ms": 1000 * uncached / scrapes,
        "cached_ms": 1000 * cached / scrapes,
        "share": cached / uncached,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds of the mixed lab and the 1 GiB object; the small lab, seconds a round, "
        "runs three times as many",
    )
    parser.add_argument("--edges", type=int, default=64, help="edges of the small-object lab")
    parser.add_argument(
        "--mixed-edges", type=int, default=16, help="edges of the mixed lab (0: skip)"
    )
    parser.add_argument("--no-gib", action="store_true", help="skip the 1 GiB object")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # Byte-compile what the fresh processes import, as pip does when it installs a package:
    # with PYTHONDONTWRITEBYTECODE set, each `cdnprobe check` would otherwise compile the
    # project's modules from source on every start.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "prober"), str(ROOT / "bench")],
        check=True,
    )
    report: list[str] = [
        f"Benchmark of {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
        f"{SMALL_ROUNDS * args.rounds} rounds (small lab), {args.rounds} (mixed lab, 1 GiB)",
        "",
    ]
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="cdnprobe-bench-") as tmp:
        work = Path(tmp)
        bench, series = run_lab(work, "small", args.edges, SMALL_ROUNDS * args.rounds)
        small = bench.objects
        report += table(
            f"{args.edges} edges x {len(small)} small objects ({bench.probes} probes)",
            series,
            args.edges,
        )
        cpu = lambda x: x.cpu_s  # noqa: E731
        wall = lambda x: x.wall_s  # noqa: E731
        tls = lambda x: x.tls / args.edges  # noqa: E731
        probes_per_cpu = lambda x: x.probes / x.cpu_s  # noqa: E731
        figures["small"] = {
            "daemon_cpu_vs_blackbox": ratio(
                series["cdnprobe run (cycle)"], series["blackbox_exporter"], cpu
            ),
            "daemon_new_tls_per_edge": series["cdnprobe run (cycle)"].med(tls),
            "check_probes_per_cpu_vs_blackbox": ratio(
                series["cdnprobe check"], series["blackbox_exporter"], probes_per_cpu
            ),
            "check_new_tls_per_edge": series["cdnprobe check"].med(tls),
            "check_wall_s": series["cdnprobe check"].med(wall),
            "check_wall_vs_obvious_aiohttp": ratio(
                series["cdnprobe check"], series["obvious aiohttp prober"], wall
            ),
        }
        if args.mixed_edges:
            bench, series = run_lab(work, "mixed", args.mixed_edges, args.rounds)
            mixed = bench.objects
            gb = bench.body_bytes / 1e9
            report += table(
                f"{args.mixed_edges} edges x {len(mixed)} objects of 4 KB-50 MB "
                f"({gb:.2f} GB per cycle)",
                series,
                args.mixed_edges,
            )
            figures["mixed"] = {
                "daemon_cpu_vs_blackbox": ratio(
                    series["cdnprobe run (cycle)"], series["blackbox_exporter"], cpu
                ),
                "check_cpu_vs_blackbox": ratio(
                    series["cdnprobe check"], series["blackbox_exporter"], cpu
                ),
                "daemon_wall_vs_curl": ratio(series["cdnprobe run (cycle)"], series["curl"], wall),
                "check_wall_vs_curl": ratio(series["cdnprobe check"], series["curl"], wall),
            }
        if not args.no_gib:
            gib_corpus = make_gib(work / "gib-corpus")
            figures["gib"], lines = gib_run(work, gib_corpus, args.rounds)
            report += lines
    figures["scrape"] = scrape_cost(args.edges, 20)
    report += ["### Ratios", "", "```", json.dumps(figures, indent=2), "```", ""]
    text = "\n".join(report)
    print(text)
    (args.out / "latest.md").write_text(text)
    (args.out / "latest.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
