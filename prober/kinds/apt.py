"""One cycle of an APT target: for every edge, its InRelease (or Release) and every index it
lists for the selected components and architectures, fetched from that same edge."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlsplit

from prober.compare import compare_object
from prober.discovery import CachingDiscoverer, Discoverer
from prober.errors import DiscoveryError
from prober.fetch import BufferSink, Fetcher
from prober.kinds.plain import Clock, cap_edges, utc_now
from prober.model import (
    AptEdgeResult,
    AptProblem,
    Edge,
    EdgeResult,
    FetchedIndex,
    ObjectReport,
    Observation,
    Problem,
    Release,
    TargetReport,
    Verdict,
)
from prober.validators.apt import (
    RELEASE_MAX_BYTES,
    IndexFamily,
    PackageCounter,
    ReleaseError,
    by_hash_path,
    index_plan,
    judge_edge,
    parse_release,
    unwrap_inrelease,
)


@dataclass(frozen=True, slots=True)
class AptSpec:
    name: str
    base_url: str  # the repository root: the folder holding dists/
    suites: tuple[str, ...]
    components: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    expect: tuple[tuple[str, str], ...] = ()
    max_edges: int = 256

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    def suite_url(self, suite: str) -> str:
        return f"{self.base_url.rstrip('/')}/dists/{suite.removeprefix('dists/').strip('/')}/"


@dataclass(slots=True)
class _EdgeRelease:
    observation: Observation
    release: Release | None
    problem: str | None


async def run_apt_cycle(
    spec: AptSpec,
    discoverer: Discoverer | CachingDiscoverer,
    fetcher: Fetcher,
    *,
    clock: Clock = utc_now,
) -> TargetReport:
    started = clock()
    try:
        dns = cap_edges(await discoverer.resolve(spec.host), spec.max_edges)
    except DiscoveryError as exc:
        return TargetReport(spec.name, spec.host, None, (), started, clock(), str(exc), exc.rcode)
    await fetcher.forget(set(dns.edges))
    objects = await asyncio.gather(
        *(_suite(spec, s, dns.edges, fetcher, clock) for s in spec.suites)
    )
    return TargetReport(spec.name, spec.host, dns, tuple(objects), started, clock())


async def _suite(
    spec: AptSpec, suite: str, edges: Sequence[Edge], fetcher: Fetcher, clock: Clock
) -> ObjectReport:
    base = spec.suite_url(suite)
    checked = await asyncio.gather(*(_edge(spec, base, edge, fetcher, clock) for edge in edges))
    now = clock()
    releases = [(edge, er.observation) for edge, (er, _) in zip(edges, checked, strict=True)]
    report = compare_object(
        base + "InRelease", spec.host, urlsplit(base).path + "InRelease", releases
    )
    results = {edge.address: result for edge, (_, result) in zip(edges, checked, strict=True)}
    return _judge_suite(report, suite, results, now)


async def _edge(
    spec: AptSpec, base: str, edge: Edge, fetcher: Fetcher, clock: Clock
) -> tuple[_EdgeRelease, AptEdgeResult]:
    got = await _release(base, edge, fetcher)
    if got.release is None:
        problem = AptProblem("InRelease", _release_problem(got), detail=got.problem)
        return got, AptEdgeResult(None, (problem,), True, {}, {})
    plan = index_plan(got.release, spec.components, spec.architectures)
    fetched, counters = await _indexes(spec, base, edge, fetcher, got.release, plan)
    result = judge_edge(got.release, plan, fetched, counters, spec.expect, clock())
    return got, result


def _release_problem(got: _EdgeRelease) -> Problem:
    obs = got.observation
    if obs.error is not None:
        return Problem.FETCH_ERROR
    if obs.status is None or not 200 <= obs.status < 300:
        return Problem.MISSING
    return Problem.BAD_RELEASE


def _release_sink() -> BufferSink:
    return BufferSink(RELEASE_MAX_BYTES)


async def _release(base: str, edge: Edge, fetcher: Fetcher) -> _EdgeRelease:
    """InRelease, or Release when there is none (apt does the same); signed says if either
    carried a signature (InRelease's own, or a Release.gpg beside the Release)."""
    observation, sink = await fetcher.fetch_into(edge, base + "InRelease", _release_sink)
    signed_elsewhere = False
    if observation.status == 404:
        fallback, fallback_sink = await fetcher.fetch_into(edge, base + "Release", _release_sink)
        if fallback.status is not None and 200 <= fallback.status < 300:
            gpg = await fetcher.fetch(edge, base + "Release.gpg")
            signed_elsewhere = gpg.complete and gpg.status is not None and 200 <= gpg.status < 300
            observation, sink = fallback, fallback_sink
    if not observation.complete or observation.status is None or observation.status >= 300:
        return _EdgeRelease(observation, None, f"HTTP {observation.status or observation.error}")
    assert sink is not None
    if sink.overflow:
        return _EdgeRelease(observation, None, f"Release larger than {RELEASE_MAX_BYTES >> 20} MiB")
    try:
        text, signed = unwrap_inrelease(bytes(sink.data))
        return _EdgeRelease(observation, parse_release(text, signed or signed_elsewhere), None)
    except ReleaseError as exc:
        return _EdgeRelease(observation, None, str(exc))


async def _indexes(
    spec: AptSpec,
    base: str,
    edge: Edge,
    fetcher: Fetcher,
    release: Release,
    plan: Sequence[IndexFamily],
) -> tuple[dict[str, FetchedIndex], dict[str, PackageCounter]]:
    watch = frozenset(name for name, _ in spec.expect)
    counted = {f.counted.path: f.name for f in plan if f.counted is not None}
    paths = [v.path for f in plan for v in f.variants]
    if release.acquire_by_hash:
        paths += [by_hash_path(v) for f in plan for v in f.variants]

    async def one(path: str) -> tuple[str, FetchedIndex, PackageCounter | None]:
        family = counted.get(path)
        make = (lambda: PackageCounter(_suffix(path), watch)) if family else None
        obs, counter = await fetcher.fetch_into(edge, base + path, make)
        if counter is not None:
            counter.finish()
        error = str(obs.error) if obs.error else None
        return path, FetchedIndex(obs.status, obs.bytes_read, obs.sha256, error), counter

    found = await asyncio.gather(*(one(p) for p in paths))
    fetched = {path: got for path, got, _ in found}
    counters = {counted[path]: c for path, _, c in found if c is not None and path in counted}
    return fetched, counters


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[1] if "." in name else ""


def _judge_suite(
    report: ObjectReport, suite: str, results: dict[str, AptEdgeResult], now: datetime
) -> ObjectReport:
    """Edge verdicts with the repository in mind: an edge apt would fail on is divergent; an
    edge on an older (self-consistent) Release is stale, with the lag between the Dates."""
    dates = [r.release.date for r in results.values() if r.release and r.release.date]
    newest = max(dates, default=None)
    judged = []
    for edge_result in report.results:
        apt = results[edge_result.edge.address]
        judged.append(_judge_edge(edge_result, apt, newest))
    notes = report.notes
    if any(r.verdict is not Verdict.OK for r in judged) and newest is not None:
        notes = (*notes, f"newest Release Date among the edges: {newest:%a, %d %b %Y %H:%M:%S} UTC")
    pairs = tuple((r.edge.address, results[r.edge.address]) for r in judged)
    return replace(report, results=tuple(judged), suite=suite, apt=pairs, notes=notes)


def _judge_edge(result: EdgeResult, apt: AptEdgeResult, newest: datetime | None) -> EdgeResult:
    if result.verdict is Verdict.ERROR:
        return result
    if apt.would_fail:
        return replace(result, verdict=Verdict.DIVERGENT, lag_s=None)
    missing = any(p.reason is Problem.EXPECTED_PACKAGE_MISSING for p in apt.problems)
    date = apt.release.date if apt.release else None
    if date is not None and newest is not None and date < newest:
        return replace(result, verdict=Verdict.STALE, lag_s=(newest - date).total_seconds())
    if date is not None and date == newest and result.verdict is Verdict.STALE:
        return replace(result, verdict=Verdict.DIVERGENT, lag_s=0.0)  # same Date, other bytes
    if missing and result.verdict is Verdict.OK:
        return replace(result, verdict=Verdict.DIVERGENT)  # current, but without the upload
    return result
