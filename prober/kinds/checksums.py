"""`type: checksums`: a checksum manifest and every artifact it lists, fetched from every edge
and checked against the manifest from the same edge (or the origin's). Only fetching and
assembly: the rule is validators/checks.artifact_check, the verdicts are compare.py's."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from prober.compare import compare_object
from prober.config import ChecksumsTarget
from prober.errors import DiscoveryError
from prober.fetch import BufferSink, Fetcher
from prober.kinds.base import KindSpec, ProbeContext, first_address, resolve_edges
from prober.kinds.revalidation import (
    NO_SINK,
    Revalidation,
    fetch_read,
    no_reading,
    revalidation_for,
)
from prober.model import Edge, Kind, ObjectReport, Observation, TargetReport
from prober.validators.checks import artifact_check
from prober.validators.checksums import ManifestEntry, ManifestError, parse_manifest

Manifest = dict[str, ManifestEntry]


@dataclass(frozen=True, slots=True)
class ChecksumSpec:
    name: str
    manifest_url: str
    artifacts: tuple[str, ...] = ()  # names in the manifest; empty: all of them
    origin: str | None = None  # a base URL to read the manifest from instead of each edge
    max_edges: int = 256
    rehash_every: int = 1  # daemon: full hash every N cycles at least (1: every cycle)
    full_every: int | None = None  # revalidate: a full pass every N cycles; None: every cycle

    @property
    def host(self) -> str:
        return urlsplit(self.manifest_url).hostname or ""


def spec(target: ChecksumsTarget) -> ChecksumSpec:
    manifest = target.url.rstrip("/") + (target.manifest or "")
    full_every = target.revalidate.full_every if target.revalidate else None
    return ChecksumSpec(
        target.name, manifest, tuple(target.artifacts), target.origin, target.max_edges,
        target.rehash_every, full_every,
    )  # fmt: skip


def paths(spec: ChecksumSpec) -> tuple[str, ...]:
    return ()  # artifacts are judged by their manifest, not by history


@dataclass(slots=True)
class RehashCache:
    """The documented opt-in for huge artifacts: while Content-Length, ETag and Last-Modified
    stay the same (a HEAD each cycle), reuse the hash of the last full fetch, for at most
    `every` cycles. Reused hashes carry hash_age_cycles > 0, so nothing is passed off as new."""

    every: int
    cycle: int = 0
    last: dict[tuple[str, str], tuple[Observation, int]] = field(default_factory=dict)

    def keep(self, addresses: set[str]) -> None:
        """Forget edges that left DNS."""
        for key in [k for k in self.last if k[0] not in addresses]:
            del self.last[key]

    async def fetch(self, fetcher: Fetcher, edge: Edge, url: str) -> Observation:
        key = (edge.address, url)
        previous = self.last.get(key)
        if previous is not None and self.cycle - previous[1] < self.every:
            head = await fetcher.head(edge, url)
            if _same_version(head, previous[0]):
                age = self.cycle - previous[1]
                return replace(previous[0], elapsed_s=head.elapsed_s, hash_age_cycles=age)
        observation = await fetcher.fetch(edge, url)
        if observation.complete:
            self.last[key] = (observation, self.cycle)
        else:
            self.last.pop(key, None)
        return observation


def _same_version(head: Observation, full: Observation) -> bool:
    if not head.complete or head.status != full.status or head.size != full.size:
        return False
    if head.etag is None and head.last_modified is None:
        return False  # nothing to tell a change by: hash it again
    return (head.etag, head.last_modified) == (full.etag, full.last_modified)


def _rehash_cache(spec: ChecksumSpec, ctx: ProbeContext) -> RehashCache | None:
    """The daemon keeps one cache per target across cycles; `check` runs one cycle only."""
    if spec.rehash_every <= 1:
        return None
    cache = ctx.memory.get("rehash")
    if not isinstance(cache, RehashCache) or cache.every != spec.rehash_every:
        cache = ctx.memory["rehash"] = RehashCache(spec.rehash_every)
    return cache


@dataclass(frozen=True, slots=True)
class _Tools:
    """What one cycle's fetches share: the fetcher and the opt-in reuse of hashes, either
    `rehash` (rehash_every, by HEAD) or `reval` (revalidate, by 304); never both (config)."""

    fetcher: Fetcher
    rehash: RehashCache | None = None
    reval: Revalidation | None = None

    async def manifest(self, edge: Edge, url: str) -> tuple[Observation, Manifest | None]:
        """The edge's manifest as parsed; with revalidation, a 304 gives the edge's own last
        one (never another edge's)."""
        return await fetch_read(self.fetcher, self.reval, edge, url, BufferSink, _read_manifest)

    async def artifact(self, edge: Edge, url: str) -> Observation:
        if self.reval is not None:
            observation, _ = await self.reval.fetch_read(
                self.fetcher, edge, url, NO_SINK, no_reading
            )
            return observation
        if self.rehash is not None:
            return await self.rehash.fetch(self.fetcher, edge, url)
        return await self.fetcher.fetch(edge, url)


async def probe(spec: ChecksumSpec, ctx: ProbeContext) -> TargetReport:
    started = ctx.clock()
    rehash = _rehash_cache(spec, ctx)
    if rehash is not None:
        rehash.cycle += 1
    dns = await resolve_edges(Kind.CHECKSUMS, spec.name, spec.host, spec.max_edges, ctx, started)
    if isinstance(dns, TargetReport):
        return dns
    edges = dns.edges
    origin_edge = await _origin_edge(spec, ctx) if spec.origin else None
    addresses = {e.address for e in edges} | ({origin_edge.address} if origin_edge else set())
    if rehash is not None:
        rehash.keep(addresses)
    reval = revalidation_for(spec.full_every, ctx.memory)
    if reval is not None:
        reval.start_cycle(addresses)
    tools = _Tools(ctx.fetcher, rehash, reval)
    fetched = await asyncio.gather(*(tools.manifest(e, spec.manifest_url) for e in edges))
    manifests = {e.address: m for e, (_, m) in zip(edges, fetched, strict=True)}
    source = "manifest on the same edge"
    origins: tuple[str, ...] = ()
    if spec.origin:
        origin = await _origin_manifest(spec, origin_edge, tools)
        manifests = dict.fromkeys(manifests, origin)
        source = "manifest on the origin"
        origins = (origin_edge.address,) if origin_edge else ()
    observed = [(e, obs) for e, (obs, _) in zip(edges, fetched, strict=True)]
    path = urlsplit(spec.manifest_url).path
    notes = reval.note(observed, "manifests (as parsed)") if reval is not None else ()
    manifest_obj = compare_object(
        spec.manifest_url, spec.host, path, observed, kind=Kind.CHECKSUMS, name="manifest",
        notes=notes,
    )  # fmt: skip
    names = spec.artifacts or tuple(sorted({n for m in manifests.values() if m for n in m}))
    directory = spec.manifest_url.rsplit("/", 1)[0] + "/"
    objects = [manifest_obj]
    for name in names:
        objects.append(await _artifact(name, directory + name, edges, manifests, source, tools))
    if reval is not None:
        reval.end_cycle(objects)
    finished = ctx.clock()
    return TargetReport(
        spec.name, spec.host, dns, tuple(objects), started, finished, kind=Kind.CHECKSUMS,
        origins=origins,
    )  # fmt: skip


async def _origin_edge(spec: ChecksumSpec, ctx: ProbeContext) -> Edge | None:
    """The origin's address (its first), or None if its name did not resolve."""
    assert spec.origin is not None
    edge = await first_address(urlsplit(spec.origin).hostname or "", ctx)
    return None if isinstance(edge, DiscoveryError) else edge


async def _origin_manifest(spec: ChecksumSpec, edge: Edge | None, tools: _Tools) -> Manifest | None:
    """The origin's manifest (none if its name did not resolve). With revalidation the
    origin too is asked with its own last validators; a new manifest there (another
    reference for every artifact) makes the next cycle a full pass."""
    assert spec.origin is not None
    if edge is None:
        return None
    url = spec.origin.rstrip("/") + urlsplit(spec.manifest_url).path
    obs, manifest = await tools.manifest(edge, url)
    if tools.reval is not None:
        tools.reval.saw(url, obs.sha256 if obs.complete and obs.status == 200 else None)
    return manifest


async def _read_manifest(obs: Observation, sink: BufferSink | None) -> Manifest | None:
    return _manifest(obs, sink)


def _manifest(obs: Observation, sink: BufferSink | None) -> Manifest | None:
    if sink is None or not obs.complete or obs.status != 200 or sink.overflow:
        return None
    try:
        return parse_manifest(bytes(sink.data))
    except ManifestError:
        return None


async def _artifact(
    name: str,
    url: str,
    edges: Sequence[Edge],
    manifests: dict[str, Manifest | None],
    source: str,
    tools: _Tools,
) -> ObjectReport:
    found = await asyncio.gather(*(tools.artifact(e, url) for e in edges))
    checks = []
    for edge, obs in zip(edges, found, strict=True):
        manifest = manifests.get(edge.address)
        entry = manifest.get(name) if manifest else None
        checks.append(artifact_check(edge.address, obs, entry, manifest is not None, source))
    observed = list(zip(edges, found, strict=True))
    notes: tuple[str, ...] = ()
    if tools.reval is not None:
        notes = tools.reval.note(observed, "hashes")
    elif reused := [e.address for e, obs in observed if obs.hash_age_cycles]:
        notes = (f"hash reused on {len(reused)} edges: metadata unchanged (HEAD), rehash_every",)
    host = urlsplit(url).hostname or ""
    return compare_object(
        url, host, urlsplit(url).path, observed,
        kind=Kind.CHECKSUMS, name=name, checks=checks, notes=notes,
    )  # fmt: skip


KIND = KindSpec(Kind.CHECKSUMS, spec, probe, paths)
