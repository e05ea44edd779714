"""`python3 -m bench.bandwidth`: the bytes a steady cycle costs, without and with
`revalidate: {full_every: N}`, and the cycles until each change is seen.

A loopback lab of nginx TLS edges (the test lab), each with its own document root, serves a
repository-like corpus (20 files of 64 KiB-2 MiB per edge); the real daemon
(prober.daemon.core.Daemon, in this process) runs its target's cycles back to back. Per
cycle the bench reads what the daemon itself counted, `cdnprobe_received_bytes_total` in its
own exposition (body bytes, from the fetcher's counters), and, beside it, what nginx sent
(`$bytes_sent`: status line, headers and body, before TLS) and how many answers were 304.

(a) Steady state: body bytes per cycle over whole full_every periods, between full passes and
on the full pass itself, against the same target without revalidation.
(b) Changes, each in a fresh daemon, made right after a full pass (the worst phase for what
only a full pass can see), counted from the first cycle after the change: a new publish (every
edge), a stale edge (every edge but one), an in-place corruption (one edge's file changed with
its size and mtime kept, so nginx's ETag and Last-Modified stay the same: a 304 cannot tell);
the corruption once more made full_every - 1 cycles after a full pass (the best phase).

The same rows for a `type: apt` target (a small static repository written here, InRelease
clear-signed with a throwaway gpg key, `trusted: true`) run once the config accepts
`revalidate` on APT targets; until then the APT rows with revalidation are skipped, and say
why. Needs nginx, dnsmasq, gpg (APT rows) and the test extra. Loopback only; every loop is
bounded in cycles and every cycle in time.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from pathlib import Path

import trustme

from prober.config import parse_config
from prober.daemon.core import Daemon
from prober.daemon.runner import TargetRunner
from prober.errors import ConfigError
from prober.model import ObjectReport, TargetReport, Verdict
from tests.lab import HOST, EdgeSpec, Lab

EDGES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
STALE_EDGE = "127.0.0.4"  # the one edge that misses a publish
CORRUPT_EDGE = "127.0.0.3"  # the one edge whose bytes change in place
NAME = "repo"
MTIME = 1_790_000_000  # Last-Modified of the first publish (2026-09-21)
FILES = 20
SIZES = tuple(int(64 * 1024 * 32 ** ((i / (FILES - 1)) ** 2)) for i in range(FILES))  # 64K-2M
PATHS = tuple(f"/pool/f{i:02d}.bin" for i in range(FILES))
PUBLISHED = (PATHS[4], PATHS[12], PATHS[19])  # what a new publish changes
CORRUPTED = PATHS[12]  # a 406 KiB file
CYCLE_TIMEOUT_S = 120.0
SUITE = "stable"
INRELEASE = f"/dists/{SUITE}/InRelease"
APT_INDEX = "main/binary-amd64/Packages"


# ---- the lab ------------------------------------------------------------------------------


@dataclass
class ByteLab(Lab):
    """The test lab, its access log also naming the bytes nginx sent for each request."""

    def _nginx_conf(self) -> str:
        conf = super()._nginx_conf()
        logged = conf.replace("$connection';", "$connection $bytes_sent';")
        if logged == conf:
            raise RuntimeError("the lab's log format changed: cannot log $bytes_sent")
        return logged

    def log_position(self) -> int:
        path = self.root / "access.log"
        return path.stat().st_size if path.exists() else 0

    def sent_since(self, position: int) -> tuple[int, int, int]:
        """(requests, 304 answers, bytes sent) logged after `position`."""
        with open(self.root / "access.log", "rb") as log:
            log.seek(position)
            lines = log.read().decode().splitlines()
        not_modified = sum(1 for line in lines if '" 304 ' in line)
        return len(lines), not_modified, sum(int(line.rsplit(" ", 1)[1]) for line in lines)


def corpus_bytes(index: int, generation: int) -> bytes:
    """File `index` of publish `generation`: deterministic, incompressible."""
    return random.Random(f"{index}/{generation}").randbytes(SIZES[index])


def write_plain(lab: Lab, edges: Sequence[str], generation: int, paths: Sequence[str]) -> None:
    for path in paths:
        index = PATHS.index(path)
        lab.write(path, corpus_bytes(index, generation), edges, mtime=MTIME + 3600 * generation)


def corrupt_in_place(root: Path, path: str) -> None:
    """Other bytes at the same size and the same mtime: nginx's ETag (mtime-size) and
    Last-Modified do not change, so a conditional request is answered 304."""
    target = root / path.lstrip("/")
    before = target.stat()
    data = bytearray(target.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    target.write_bytes(bytes(data))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


# ---- an APT repository without aptly ------------------------------------------------------


def packages_text(generation: int, count: int) -> bytes:
    """A Packages index of `count` stanzas (about 700 bytes each), deterministic."""
    rng = random.Random(f"packages/{generation}")
    stanzas = []
    for i in range(count):
        version = f"1.{generation}.{i % 7}"
        sha = rng.randbytes(32).hex()
        words = " ".join(rng.choice(("cdn", "edge", "probe", "mirror", "index")) for _ in range(40))
        stanzas.append(
            f"Package: pkg{i:05d}\nVersion: {version}\nArchitecture: amd64\n"
            "Maintainer: cdnprobe bench <bench@cdnprobe.invalid>\n"
            f"Installed-Size: {rng.randint(1, 9999)}\n"
            f"Filename: pool/main/p/pkg{i:05d}/pkg{i:05d}_{version}_amd64.deb\n"
            f"Size: {rng.randint(1000, 10**7)}\nSHA256: {sha}\n"
            f"Description: package {i} of the bandwidth bench\n {words}\n"
        )
    return "\n".join(stanzas).encode()


def write_apt_tree(tree: Path, generation: int, work: Path) -> int:
    """dists/stable with Packages and Packages.gz (main, amd64), a Release listing both
    with their sizes and SHA256, and InRelease clear-signed by gpg (tests.aptrepo); every
    file's mtime the publish's time. Returns the number of packages."""
    from tests.aptrepo import sign_release

    count = 2000 + 10 * generation  # a publish adds packages
    dists = tree / "dists" / SUITE
    index = dists / "main" / "binary-amd64"
    index.mkdir(parents=True, exist_ok=True)
    packages = packages_text(generation, count)
    files = {APT_INDEX: packages, f"{APT_INDEX}.gz": gzip.compress(packages, 6, mtime=0)}
    for name, data in files.items():
        (dists / name).write_bytes(data)
    when = MTIME + 3600 * generation
    listing = "".join(
        f" {hashlib.sha256(d).hexdigest()} {len(d):>8} {n}\n" for n, d in files.items()
    )
    (dists / "Release").write_text(
        f"Origin: bench\nLabel: bench\nSuite: {SUITE}\nCodename: {SUITE}\n"
        f"Date: {formatdate(when, usegmt=True).replace('GMT', 'UTC')}\n"
        f"Architectures: amd64\nComponents: main\nDescription: the bandwidth bench\n"
        f"SHA256:\n{listing}"
    )
    sign_release(dists, work)
    for path in [*dists.rglob("*")]:
        if path.is_file():
            os.utime(path, (when, when))
    return count


# ---- the daemon, cycle by cycle -----------------------------------------------------------


@dataclass
class Cycle:
    number: int
    body_bytes: int  # cdnprobe_received_bytes_total, this cycle's increase
    requests: int
    not_modified: int  # 304 answers nginx logged
    sent_bytes: int  # nginx's $bytes_sent, headers included
    report: TargetReport

    @property
    def full(self) -> bool:
        return self.not_modified == 0


def received_total(exposition: bytes) -> int:
    """The sum of cdnprobe_received_bytes_total over the target's edges, as a scrape reads it."""
    total = 0.0
    for line in exposition.decode().splitlines():
        if line.startswith("cdnprobe_received_bytes_total{") and f'target="{NAME}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


@dataclass
class Probed:
    """One daemon with one target; `cycle()` runs the next cycle and measures it."""

    lab: ByteLab
    config: str
    daemon: Daemon | None = None
    runner: TargetRunner | None = None
    cycles: list[Cycle] = field(default_factory=list)
    _received: int = 0

    async def start(self) -> Cycle:
        position = self.lab.log_position()
        self.daemon = Daemon(parse_config(self.config))
        self.daemon.start()
        self.runner = self.daemon.runners[NAME]
        # the schedule starts the first cycle after a random offset (under 2.5 s for an
        # interval of 1 h): wait for it, so no scheduled cycle falls between ours
        for _ in range(400):
            if self.runner.running or self.runner.snapshot.cycles:
                break
            await asyncio.sleep(0.025)
        if self.runner.running:
            await asyncio.wait_for(self.runner.cycle_now(), CYCLE_TIMEOUT_S)
        if self.runner.snapshot.cycles != 1:
            raise RuntimeError("the daemon's first scheduled cycle did not run")
        return self._measured(position)

    async def cycle(self) -> Cycle:
        assert self.runner is not None
        position = self.lab.log_position()
        await asyncio.wait_for(self.runner.cycle_now(), CYCLE_TIMEOUT_S)
        return self._measured(position)

    def _measured(self, position: int) -> Cycle:
        assert self.daemon is not None and self.runner is not None
        snapshot = self.runner.snapshot
        if snapshot.report is None or snapshot.cycles != len(self.cycles) + 1:
            raise RuntimeError(f"cycle {len(self.cycles) + 1} failed (see the daemon's log)")
        received = received_total(self.daemon.exposition())
        requests, not_modified, sent = self.lab.sent_since(position)
        number = len(self.cycles) + 1
        self.cycles.append(
            Cycle(number, received - self._received, requests, not_modified, sent, snapshot.report)
        )
        self._received = received
        return self.cycles[-1]

    async def stop(self) -> None:
        if self.daemon is not None:
            await self.daemon.stop(grace_s=1)


def plain_config(lab: Lab, full_every: int | None) -> str:
    listed = ", ".join(PATHS)
    revalidate = f"    revalidate: {{full_every: {full_every}}}\n" if full_every else ""
    return (
        "concurrency: 64\ndns_min_interval: 1h\ntargets:\n"
        f"  - name: {NAME}\n    url: https://{HOST}:{lab.port}\n    paths: [{listed}]\n"
        f'    interval: 1h\n    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n'
        f"{revalidate}"
    )


def apt_config(lab: Lab, full_every: int | None) -> str:
    revalidate = f"    revalidate: {{full_every: {full_every}}}\n" if full_every else ""
    return (
        "concurrency: 64\ndns_min_interval: 1h\ntargets:\n"
        f"  - name: {NAME}\n    type: apt\n    url: https://{HOST}:{lab.port}/\n"
        f"    suites: [{SUITE}]\n    trusted: true\n"
        f'    interval: 1h\n    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n'
        f"{revalidate}"
    )


def apt_revalidation_supported(lab: Lab) -> str | None:
    """None when the config takes `revalidate` on an APT target; else the parser's reason."""
    try:
        parse_config(apt_config(lab, 10))
    except ConfigError as exc:
        return str(exc)
    return None


# ---- what the report says -----------------------------------------------------------------


def by_path(report: TargetReport) -> dict[str, ObjectReport]:
    return {obj.path: obj for obj in report.objects}


def verdicts(obj: ObjectReport) -> dict[str, Verdict]:
    return {r.edge.address: r.verdict for r in obj.results}


def hashes(obj: ObjectReport) -> dict[str, str | None]:
    return {r.edge.address: r.observation.sha256 for r in obj.results}


def all_ok(report: TargetReport) -> bool:
    return all(v is Verdict.OK for obj in report.objects for v in verdicts(obj).values())


@dataclass
class Change:
    """A change to the lab and how the daemon's report shows it has been seen."""

    name: str
    apply: Callable[[], None]
    seen: Callable[[TargetReport], bool]
    bounded_by_full_pass: bool = False  # only a full pass can see it (a 304 cannot)
    watched: tuple[str, str] | None = None  # (edge, path) whose verdict the note names
    after_full: int = 0  # made this many cycles after a full pass (with revalidation)


@dataclass
class Outcome:
    change: str
    seen_after: int | None
    bound: int
    after: list[Cycle]
    note: str = ""
    by_full_pass: bool = False  # with revalidation, only the next full pass can see it


# ---- a run --------------------------------------------------------------------------------


async def warm_up(probed: Probed, full_every: int | None, after_full: int = 0) -> None:
    """The daemon's first cycle, then cycles up to the first full pass after it (cycle
    full_every; without revalidation, the second cycle), then `after_full` more."""
    await probed.start()
    minimum = full_every or 2
    for _ in range(minimum + (full_every or 0)):  # a pass later than expected is allowed for
        if len(probed.cycles) >= minimum and probed.cycles[-1].full:
            break
        await probed.cycle()
    if not probed.cycles[-1].full:
        raise RuntimeError(f"no full pass within {len(probed.cycles)} cycles")
    for _ in range(after_full):
        await probed.cycle()


async def steady(
    lab: ByteLab, config: str, full_every: int | None, periods: int, reset: Callable[[], None]
) -> list[Cycle]:
    """The measured cycles after the warm-up: without revalidation, 5; with it, `periods`
    whole full_every periods, each ending with its full pass."""
    reset()
    probed = Probed(lab, config)
    try:
        await warm_up(probed, full_every)
        warm = len(probed.cycles)
        for _ in range(full_every * periods if full_every else 5):
            await probed.cycle()
    finally:
        await probed.stop()
    return probed.cycles[warm:]


async def scenario(
    lab: ByteLab, config: str, full_every: int | None, change: Change, reset: Callable[[], None]
) -> Outcome:
    """A fresh daemon on a fresh repository; the change `change.after_full` cycles after a
    full pass; then cycles until the report shows it (at most the bound + 3), and one more."""
    reset()
    probed = Probed(lab, config)
    bound = 1
    if change.bounded_by_full_pass and full_every:
        bound = full_every - change.after_full
    try:
        await warm_up(probed, full_every, change.after_full if full_every else 0)
        if not all_ok(probed.cycles[-1].report):
            raise RuntimeError(f"{change.name}: not every edge ok before the change")
        change.apply()
        seen_after = None
        after: list[Cycle] = []
        reused_ages: list[int] = []
        for k in range(1, bound + 4):
            cycle = await probed.cycle()
            after.append(cycle)
            if change.seen(cycle.report):
                seen_after = k
                break
            if change.watched is not None:
                edge, path = change.watched
                reused_ages += [
                    r.observation.hash_age_cycles
                    for r in by_path(cycle.report)[path].results
                    if r.observation.revalidated and r.edge.address == edge
                ]
        notes = []
        if seen_after is not None:
            if change.watched is not None:
                edge, path = change.watched
                notes.append(f"{edge} {verdicts(by_path(after[-1].report)[path])[edge]}")
            after.append(await probed.cycle())  # what the cycle after costs (a full pass?)
            if not change.seen(after[-1].report):
                notes.append("**no longer seen in the cycle after**")
    finally:
        await probed.stop()
    if reused_ages and change.watched is not None:
        notes.append(
            f"before that {change.watched[0]} reported revalidated, hash age "
            f"{min(reused_ages)}-{max(reused_ages)} cycles"
        )
    note = "; ".join(notes)
    by_full_pass = change.bounded_by_full_pass and full_every is not None
    return Outcome(change.name, seen_after, bound, after, note, by_full_pass)


def plain_changes(lab: Lab) -> list[Change]:
    others = [a for a in EDGES if a != STALE_EDGE]
    new = {p: hashlib.sha256(corpus_bytes(PATHS.index(p), 1)).hexdigest() for p in PUBLISHED}

    def publish_seen(report: TargetReport) -> bool:
        objects = by_path(report)
        return all(
            set(hashes(objects[p]).values()) == {new[p]} and all_ok_obj(objects[p])
            for p in PUBLISHED
        )

    def stale_seen(report: TargetReport) -> bool:
        objects = by_path(report)
        for p in PUBLISHED:
            got, said = hashes(objects[p]), verdicts(objects[p])
            if said[STALE_EDGE] not in (Verdict.STALE, Verdict.DIVERGENT):
                return False
            if any(got[a] != new[p] or said[a] is not Verdict.OK for a in others):
                return False
        return True

    def corruption_seen(report: TargetReport) -> bool:
        return verdicts(by_path(report)[CORRUPTED])[CORRUPT_EDGE] is not Verdict.OK

    return [
        Change("new publish (every edge)", lambda: write_plain(lab, EDGES, 1, PUBLISHED),
               publish_seen),
        Change(f"stale edge ({STALE_EDGE} misses the publish)",
               lambda: write_plain(lab, others, 1, PUBLISHED), stale_seen,
               watched=(STALE_EDGE, PUBLISHED[0])),
        Change(f"in-place corruption ({CORRUPT_EDGE}{CORRUPTED}, same size and mtime)",
               lambda: corrupt_in_place(lab.docroot(CORRUPT_EDGE), CORRUPTED), corruption_seen,
               bounded_by_full_pass=True, watched=(CORRUPT_EDGE, CORRUPTED)),
    ]  # fmt: skip


def all_ok_obj(obj: ObjectReport) -> bool:
    return all(v is Verdict.OK for v in verdicts(obj).values())


def apt_changes(lab: Lab, trees: dict[int, Path], new_inrelease: str) -> list[Change]:
    others = [a for a in EDGES if a != STALE_EDGE]

    def publish_seen(report: TargetReport) -> bool:
        obj = by_path(report)[INRELEASE]
        return set(hashes(obj).values()) == {new_inrelease} and all_ok_obj(obj)

    def stale_seen(report: TargetReport) -> bool:
        obj = by_path(report)[INRELEASE]
        got, said = hashes(obj), verdicts(obj)
        return said[STALE_EDGE] is Verdict.STALE and all(
            got[a] == new_inrelease and said[a] is Verdict.OK for a in others
        )

    def corruption_seen(report: TargetReport) -> bool:
        obj = by_path(report)[INRELEASE]
        apt = dict(obj.apt).get(CORRUPT_EDGE)
        return apt is not None and any(p.file == f"{APT_INDEX}.gz" for p in apt.problems)

    return [
        Change("new publish (every edge)", lambda: copy_tree(lab, trees[1], EDGES), publish_seen),
        Change(f"stale edge ({STALE_EDGE} misses the publish)",
               lambda: copy_tree(lab, trees[1], others), stale_seen,
               watched=(STALE_EDGE, INRELEASE)),
        Change(f"in-place corruption ({CORRUPT_EDGE} {APT_INDEX}.gz, same size and mtime)",
               lambda: corrupt_in_place(lab.docroot(CORRUPT_EDGE) / "dists" / SUITE,
                                        f"{APT_INDEX}.gz"),
               corruption_seen, bounded_by_full_pass=True, watched=(CORRUPT_EDGE, INRELEASE)),
    ]  # fmt: skip


def copy_tree(lab: Lab, tree: Path, edges: Sequence[str]) -> None:
    for address in edges:
        root = lab.docroot(address)
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(tree, root)  # copy2: the publish's mtimes come along


# ---- the tables ---------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / (1 << 20):.3f}" if n else "0"


def steady_rows(
    kind: str, full_every: int | None, measured: list[Cycle], baseline: float
) -> list[str]:
    def row(label: str, cycles: list[Cycle]) -> str:
        body = statistics.fmean(c.body_bytes for c in cycles)
        sent = statistics.fmean(c.sent_bytes for c in cycles)
        share = f"{body / baseline:.2%}" if baseline else "-"
        sent_share = f"{sent / baseline:.2%}" if baseline else "-"
        return (
            f"| {kind} | {label} | {len(cycles)} | {body:,.0f} | {share} | "
            f"{statistics.fmean(c.not_modified for c in cycles):.0f} of "
            f"{statistics.fmean(c.requests for c in cycles):.0f} | {sent:,.0f} | {sent_share} |"
        )

    if full_every is None:
        return [row("without revalidate", measured)]
    between = [c for c in measured if not c.full]
    passes = [c for c in measured if c.full]
    numbers = [c.number for c in passes]
    if numbers != [c.number for c in measured if c.number % full_every == 0]:
        print(f"note: full passes at cycles {numbers}, not at every {full_every}th", flush=True)
    first, last = measured[0].number, measured[-1].number
    label = f"full_every {full_every}"
    return [
        row(f"{label}: whole periods (cycles {first}-{last})", measured),
        row(f"{label}: between full passes", between),
        row(
            f"{label}: the full pass{'es' if len(passes) > 1 else ''} "
            f"(cycle{'s' if len(passes) > 1 else ''} "
            f"{', '.join(str(c.number) for c in passes)})",
            passes,
        ),
    ]


STEADY_HEAD = (
    "| kind | revalidate: cycles measured | cycles | body bytes / cycle (mean) | of a full fetch "
    "| 304s / requests | nginx bytes sent / cycle | of a full fetch |\n"
    "|---|---|---|---|---|---|---|---|"
)
CHANGE_HEAD = (
    "| target | change | seen in cycle (after the change) | at most | met "
    "| body bytes: that cycle | the cycle after | note |\n|---|---|---|---|---|---|---|---|"
)


def change_row(kind: str, label: str, outcome: Outcome, revalidating: bool) -> str:
    seen = str(outcome.seen_after) if outcome.seen_after else f"not within {outcome.bound + 3}"
    ok = outcome.seen_after is not None and outcome.seen_after <= outcome.bound
    met = "yes" if ok else "**no**"
    must = "1 (the next cycle)"
    if outcome.by_full_pass:
        must = f"{outcome.bound} (the next full pass)"
    first = outcome.after[outcome.seen_after - 1] if outcome.seen_after else outcome.after[-1]
    then = outcome.after[outcome.seen_after] if outcome.seen_after else None

    def cell(cycle: Cycle) -> str:
        return f"{cycle.body_bytes:,}" + (" (full pass)" if cycle.full and revalidating else "")

    first_cell, then_cell = cell(first), cell(then) if then else "-"
    return (
        f"| {kind} {label} | {outcome.change} | {seen} | {must} | {met} | {first_cell} | "
        f"{then_cell} | {outcome.note} |"
    )


async def run_kind(
    kind: str,
    lab: ByteLab,
    config: Callable[[int | None], str],
    reset: Callable[[], None],
    changes: list[Change],
    modes: Sequence[int | None],
    periods: int,
) -> None:
    """The steady-state table for every mode, then the change table for the first two."""
    print(STEADY_HEAD, flush=True)
    baseline = 0.0
    for full_every in modes:
        measured = await steady(lab, config(full_every), full_every, periods, reset)
        if full_every is None:
            baseline = statistics.fmean(c.body_bytes for c in measured)
        for line in steady_rows(kind, full_every, measured, baseline):
            print(line, flush=True)
    print()
    print(CHANGE_HEAD, flush=True)
    for full_every in modes[:2]:
        label = f"full_every {full_every}" if full_every else "without revalidate"
        late = [
            replace(c, name=f"{c.name}, {full_every - 1} cycles after a full pass",
                    after_full=full_every - 1)
            for c in changes
            if c.bounded_by_full_pass and full_every
        ]  # fmt: skip
        for change in [*changes, *late]:
            outcome = await scenario(lab, config(full_every), full_every, change, reset)
            print(change_row(kind, label, outcome, full_every is not None), flush=True)
    print()


async def run(work: Path, full_every: int, long_full_every: int, periods: int) -> None:
    lab = ByteLab(work / "lab", trustme.CA(), [EdgeSpec(a) for a in EDGES])
    lab.start()
    started = time.monotonic()
    try:
        total = sum(SIZES)
        print(f"{len(EDGES)} nginx TLS edges on loopback, {FILES} files of "
              f"{SIZES[0] >> 10} KiB-{SIZES[-1] >> 20} MiB ({total / (1 << 20):.2f} MiB) per edge, "
              f"{len(EDGES) * total / (1 << 20):.2f} MiB per full cycle; full_every {full_every} "
              f"(steady state also {long_full_every})\n")  # fmt: skip

        def reset_plain() -> None:
            for address in EDGES:
                shutil.rmtree(lab.docroot(address), ignore_errors=True)
                lab.docroot(address).mkdir(parents=True)
            write_plain(lab, EDGES, 0, PATHS)

        modes: list[int | None] = [None, full_every, long_full_every]
        print("### plain target\n")
        await run_kind(
            "plain", lab, lambda n: plain_config(lab, n), reset_plain, plain_changes(lab),
            modes, periods,
        )  # fmt: skip
        print("### apt target\n")
        if shutil.which("gpg") is None:
            print("APT rows skipped: gpg is not installed (the InRelease is clear-signed)")
            return
        why = apt_revalidation_supported(lab)
        if why is not None:
            print("APT rows with revalidate skipped: prober.config.parse_config refuses "
                  f"`revalidate` on a type: apt target ({why}); only the rows without it run"
                  "\n")  # fmt: skip
            modes = [None]
        await run_apt(lab, work, modes, periods)
    finally:
        lab.stop()
        print(f"({time.monotonic() - started:.0f} s)")


async def run_apt(lab: ByteLab, work: Path, modes: Sequence[int | None], periods: int) -> None:
    from tests.aptrepo import gnupg_dir, stop_gpg_agent

    trees = {g: work / f"apt-v{g}" for g in (0, 1)}
    home = gnupg_dir(work / "gpg")
    try:
        counts = {g: write_apt_tree(tree, g, work / "gpg") for g, tree in trees.items()}
    finally:
        stop_gpg_agent(home)
        shutil.rmtree(home, ignore_errors=True)
    dists = trees[0] / "dists" / SUITE
    sizes = {n: (dists / n).stat().st_size for n in ("InRelease", APT_INDEX, f"{APT_INDEX}.gz")}
    print(f"APT repository: {counts[0]} packages (after the publish: {counts[1]}); "
          + ", ".join(f"{n} {s:,} bytes" for n, s in sizes.items()) + "\n")  # fmt: skip
    new = hashlib.sha256((trees[1] / "dists" / SUITE / "InRelease").read_bytes()).hexdigest()
    await run_kind(
        "apt", lab, lambda n: apt_config(lab, n), lambda: copy_tree(lab, trees[0], EDGES),
        apt_changes(lab, trees, new), modes, periods,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.bandwidth", description=__doc__)
    parser.add_argument("--full-every", type=int, default=10, help="N (default %(default)s)")
    parser.add_argument(
        "--long-full-every", type=int, default=100, help="a second N, steady state only"
    )
    parser.add_argument("--periods", type=int, default=2, help="full_every periods measured")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cdnprobe-bench-bandwidth"))
    args = parser.parse_args()
    if not 2 <= args.full_every <= 100 or not 2 <= args.long_full_every <= 200:
        parser.error("--full-every 2..100, --long-full-every 2..200")
    if not 1 <= args.periods <= 5:
        parser.error("--periods 1..5")
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    asyncio.run(run(args.work, args.full_every, args.long_full_every, args.periods))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
