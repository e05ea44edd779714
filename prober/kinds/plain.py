"""`type: http`: paths compared byte for byte across every edge (and an origin, if given)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from prober.compare import compare_object
from prober.config import PlainTarget
from prober.errors import DiscoveryError
from prober.fetch import Fetcher
from prober.kinds.base import KindSpec, ProbeContext, fetch_pairs, first_address, resolve_edges
from prober.kinds.revalidation import Revalidation, revalidation_for
from prober.model import Edge, Kind, Observation, TargetReport


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
    revalidation = revalidation_for(spec.full_every, ctx.memory)
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


KIND = KindSpec(Kind.PLAIN, spec, probe, paths)
