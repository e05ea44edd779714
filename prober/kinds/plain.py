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
from prober.model import Edge, Kind, Observation, TargetReport


@dataclass(frozen=True, slots=True)
class PlainSpec:
    """What one cycle probes: one host name, its objects, optionally an origin base URL."""

    name: str
    host: str
    urls: tuple[str, ...]
    origin: str | None = None
    max_edges: int = 256

    @classmethod
    def from_base(
        cls,
        name: str,
        base_url: str,
        paths: Sequence[str],
        origin: str | None = None,
        max_edges: int = 256,
    ) -> PlainSpec:
        base = base_url.rstrip("/")
        host = urlsplit(base).hostname or ""
        return cls(name, host, tuple(base + p for p in paths), origin, max_edges)


def spec(target: PlainTarget) -> PlainSpec:
    return PlainSpec.from_base(
        target.name, target.url, target.paths, target.origin, target.max_edges
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
    observed, origins = await asyncio.gather(
        _fetch_all(ctx, dns.edges, spec.urls), _fetch_origin(ctx.fetcher, spec, origin_edge)
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
    return TargetReport(spec.name, spec.host, dns, objects, started, now, kind=Kind.PLAIN)


async def _fetch_all(
    ctx: ProbeContext, edges: Sequence[Edge], urls: Sequence[str]
) -> dict[str, list[tuple[Edge, Observation]]]:
    pairs = [(url, edge) for url in urls for edge in edges]
    found = await fetch_pairs(ctx.fetcher, pairs, ctx.max_in_flight)
    observed: dict[str, list[tuple[Edge, Observation]]] = {url: [] for url in urls}
    for (url, edge), obs in zip(pairs, found, strict=True):
        observed[url].append((edge, obs))
    return observed


async def _fetch_origin(
    fetcher: Fetcher, spec: PlainSpec, edge: Edge | None
) -> dict[str, Observation]:
    if edge is None or not spec.origin:
        return {}
    origin = spec.origin
    found = await asyncio.gather(*(fetcher.fetch(edge, origin_url(origin, u)) for u in spec.urls))
    return dict(zip(spec.urls, found, strict=True))


KIND = KindSpec(Kind.PLAIN, spec, probe, paths)
