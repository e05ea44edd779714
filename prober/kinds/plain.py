"""`type: http`: paths compared byte for byte across every edge (and an origin, if given)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from prober.compare import compare_object
from prober.config import PlainTarget
from prober.errors import DiscoveryError
from prober.fetch import Fetcher
from prober.kinds.base import KindSpec, ProbeContext, fetch_pairs, first_address, resolve_edges
from prober.model import Edge, Kind, ObjectReport, Observation, TargetReport


@dataclass(frozen=True, slots=True)
class PlainSpec:
    """What one cycle probes: one host name, its objects, optionally an origin base URL."""

    name: str
    host: str
    urls: tuple[str, ...]
    origin: str | None = None
    max_edges: int = 256
    full_every: int | None = None  # revalidate: a full pass every N cycles; None: every cycle

    @classmethod
    def from_base(
        cls,
        name: str,
        base_url: str,
        paths: Sequence[str],
        origin: str | None = None,
        max_edges: int = 256,
        full_every: int | None = None,
    ) -> PlainSpec:
        base = base_url.rstrip("/")
        host = urlsplit(base).hostname or ""
        return cls(name, host, tuple(base + p for p in paths), origin, max_edges, full_every)


def spec(target: PlainTarget) -> PlainSpec:
    full_every = target.revalidate.full_every if target.revalidate else None
    return PlainSpec.from_base(
        target.name, target.url, target.paths, target.origin, target.max_edges, full_every
    )


def paths(spec: PlainSpec) -> tuple[str, ...]:
    return tuple(path_of(url) for url in spec.urls)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def origin_url(origin_base: str, url: str) -> str:
    """The object's URL on the origin: the origin's scheme, host, port and prefix + the path."""
    return origin_base.rstrip("/") + path_of(url)


async def probe(spec: PlainSpec, ctx: ProbeContext) -> TargetReport:
    started = ctx.clock()
    dns = await resolve_edges(
        Kind.PLAIN, spec.name, spec.host, spec.max_edges, ctx, started, forget=False
    )
    if isinstance(dns, TargetReport):
        return dns
    origin_edge: Edge | None = None
    origin_notes: tuple[str, ...] = ()
    origin_error: str | None = None
    if spec.origin:
        found = await first_address(urlsplit(spec.origin).hostname or "", ctx)
        if isinstance(found, DiscoveryError):
            origin_notes = (f"origin not resolved ({found}); reference chosen from the edges",)
            origin_error = found.rcode
        else:
            origin_edge = found
    keep = set(dns.edges) | ({origin_edge} if origin_edge else set())
    await ctx.fetcher.forget(keep)
    revalidation = _revalidation(spec, ctx)
    if revalidation is not None:
        kept = {e.address for e in dns.edges} | ({origin_edge.address} if origin_edge else set())
        revalidation.start_cycle(kept)
    observed, origins = await asyncio.gather(
        _fetch_all(ctx, dns.edges, spec.urls, revalidation),
        _fetch_origin(ctx.fetcher, spec, origin_edge, revalidation),
    )
    now = ctx.clock()
    objects = tuple(
        compare_object(
            url,
            spec.host,
            path_of(url),
            observed[url],
            origins.get(url),
            ctx.past.get(path_of(url), ()),
            now,
            notes=origin_notes,
            origin_error=origin_error,
        )
        for url in spec.urls
    )
    if revalidation is not None:
        revalidation.end_cycle(objects)
    asked = (origin_edge.address,) if origin_edge else ()
    return TargetReport(
        spec.name, spec.host, dns, objects, started, now, kind=Kind.PLAIN, origins=asked
    )


async def _fetch_all(
    ctx: ProbeContext,
    edges: Sequence[Edge],
    urls: Sequence[str],
    revalidation: Revalidation | None = None,
) -> dict[str, list[tuple[Edge, Observation]]]:
    pairs = [(url, edge) for url in urls for edge in edges]
    fetch = revalidation.fetcher(ctx.fetcher) if revalidation else ctx.fetcher.fetch
    found = await fetch_pairs(fetch, pairs, ctx.max_in_flight)
    observed: dict[str, list[tuple[Edge, Observation]]] = {url: [] for url in urls}
    for (url, edge), obs in zip(pairs, found, strict=True):
        observed[url].append((edge, obs))
    return observed


async def _fetch_origin(
    fetcher: Fetcher, spec: PlainSpec, edge: Edge | None, revalidation: Revalidation | None
) -> dict[str, Observation]:
    """The origin's copies; with revalidation, the origin too is asked with its own last
    validators (it is one more server whose unchanged bytes need not be sent again)."""
    if edge is None or not spec.origin:
        return {}
    origin = spec.origin
    fetch = revalidation.fetcher(fetcher) if revalidation else fetcher.fetch
    found = await asyncio.gather(*(fetch(edge, origin_url(origin, u)) for u in spec.urls))
    return dict(zip(spec.urls, found, strict=True))


@dataclass(slots=True)
class Revalidation:
    """Bytes only when they changed (opt-in: `revalidate`). Between full passes each edge is
    asked with its *own* last validators; its 304 reuses its own last full hash, labelled with
    its age. A full pass runs every `full_every` cycles and at once (the next cycle) after a
    reference changed. What a 304 cannot prove: an edge that corrupts bytes in place without
    changing its validators looks unchanged until the next full pass hashes it."""

    full_every: int
    cycle: int = 0
    full: bool = True
    force_full: bool = True
    last: dict[tuple[str, str], tuple[Observation, int]] = field(default_factory=dict)
    references: dict[str, str | None] = field(default_factory=dict)

    def start_cycle(self, addresses: set[str]) -> None:
        self.cycle += 1
        self.full = self.force_full or self.cycle % self.full_every == 0
        self.force_full = False
        for key in [k for k in self.last if k[0] not in addresses]:
            del self.last[key]  # an edge that left DNS

    def end_cycle(self, objects: Sequence[ObjectReport]) -> None:
        for obj in objects:
            sha = obj.reference.sha256 if obj.reference else None
            if self.references.get(obj.path, sha) != sha:
                self.force_full = True  # the reference changed: hash everything next cycle
            self.references[obj.path] = sha

    def fetcher(self, fetcher: Fetcher) -> Callable[[Edge, str], Awaitable[Observation]]:
        async def fetch(edge: Edge, url: str) -> Observation:
            key = (edge.address, url)
            previous = self.last.get(key)
            if self.full or previous is None:
                observation = await fetcher.fetch(edge, url)
            else:
                full, cycle = previous
                observation = await fetcher.fetch(edge, url, (full.etag, full.last_modified))
                if observation.status == 304 and observation.error is None:
                    age = self.cycle - cycle
                    return replace(
                        full, elapsed_s=observation.elapsed_s, hash_age_cycles=age,
                        revalidated=True, http_version=observation.http_version,
                    )  # fmt: skip
            if observation.complete and (observation.etag or observation.last_modified):
                self.last[key] = (observation, self.cycle)
            else:
                self.last.pop(key, None)  # nothing to revalidate with: a full fetch next time
            return observation

        return fetch


def _revalidation(spec: PlainSpec, ctx: ProbeContext) -> Revalidation | None:
    if spec.full_every is None:
        return None
    found = ctx.memory.get("revalidation")
    if not isinstance(found, Revalidation) or found.full_every != spec.full_every:
        found = ctx.memory["revalidation"] = Revalidation(spec.full_every)
    return found


KIND = KindSpec(Kind.PLAIN, spec, probe, paths)
