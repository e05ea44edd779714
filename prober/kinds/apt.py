"""`type: apt`: for every edge, its InRelease (or Release) and every index it lists for the
selected components and architectures, fetched from that same edge. Only fetching and
assembly: apt's rules are in validators/apt.py, the verdicts in compare.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from prober.compare import compare_object
from prober.config import AptTarget
from prober.fetch import BufferSink, Fetcher
from prober.kinds.base import Clock, KindSpec, ProbeContext, resolve_edges
from prober.model import (
    AptEdgeResult,
    AptProblem,
    Edge,
    FetchedIndex,
    Kind,
    ObjectReport,
    Observation,
    Problem,
    Release,
    TargetReport,
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
    # apt's options, with apt's defaults (the contract's "Clients' own rules")
    keyring: str | None = None
    trusted: bool = False
    languages: tuple[str, ...] = ("en",)
    by_hash: str | None = None  # yes, no, force; None: what the Release says
    check_valid_until: bool = True
    max_future_seconds: float = 10.0

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


def spec(target: AptTarget) -> AptSpec:
    return AptSpec(
        name=target.name,
        base_url=target.url,
        suites=tuple(target.suites),
        components=tuple(target.components),
        architectures=tuple(target.architectures),
        expect=tuple(target.expect),
        max_edges=target.max_edges,
        keyring=target.keyring,
        trusted=target.trusted,
        languages=tuple(target.languages),
        by_hash=target.by_hash,
        check_valid_until=target.check_valid_until,
        max_future_seconds=target.max_future_seconds,
    )


def paths(spec: AptSpec) -> tuple[str, ...]:
    """Per suite, the InRelease: the object whose history the daemon keeps."""
    return tuple(urlsplit(spec.suite_url(s)).path + "InRelease" for s in spec.suites)


async def probe(spec: AptSpec, ctx: ProbeContext) -> TargetReport:
    started = ctx.clock()
    dns = await resolve_edges(Kind.APT, spec.name, spec.host, spec.max_edges, ctx, started)
    if isinstance(dns, TargetReport):
        return dns
    objects = await asyncio.gather(
        *(_suite(spec, s, dns.edges, ctx.fetcher, ctx.clock) for s in spec.suites)
    )
    finished = ctx.clock()
    return TargetReport(spec.name, spec.host, dns, tuple(objects), started, finished, kind=Kind.APT)


async def _suite(
    spec: AptSpec, suite: str, edges: Sequence[Edge], fetcher: Fetcher, clock: Clock
) -> ObjectReport:
    base = spec.suite_url(suite)
    checked = await asyncio.gather(*(_edge(spec, base, edge, fetcher, clock) for edge in edges))
    releases = [(edge, er.observation) for edge, (er, _) in zip(edges, checked, strict=True)]
    results = [(edge.address, result) for edge, (_, result) in zip(edges, checked, strict=True)]
    path = urlsplit(base).path + "InRelease"
    return compare_object(
        base + "InRelease", spec.host, path, releases, kind=Kind.APT, suite=suite, apt=results
    )


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
        return path, FetchedIndex(obs.status, obs.bytes_read, obs.sha256, obs.error), counter

    found = await asyncio.gather(*(one(p) for p in paths))
    fetched = {path: got for path, got, _ in found}
    counters = {counted[path]: c for path, _, c in found if c is not None and path in counted}
    return fetched, counters


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[1] if "." in name else ""


KIND = KindSpec(Kind.APT, spec, probe, paths)
