"""One cycle of one target: discover → fetch every object from every edge → compare.

`check` and `run` both call `run_cycle`, so the terminal and the daemon cannot disagree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from prober.compare import PastReference, compare_object
from prober.discovery import CachingDiscoverer, Discoverer
from prober.errors import DiscoveryError
from prober.fetch import Fetcher
from prober.model import DnsAnswer, Edge, ObjectReport, Observation, TargetReport

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TargetSpec:
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
    ) -> TargetSpec:
        base = base_url.rstrip("/")
        host = urlsplit(base).hostname or ""
        return cls(name, host, tuple(base + p for p in paths), origin, max_edges)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def origin_url(origin_base: str, url: str) -> str:
    """The object's URL on the origin: the origin's scheme, host, port and prefix + the path."""
    return origin_base.rstrip("/") + path_of(url)


async def run_cycle(
    spec: TargetSpec,
    discoverer: Discoverer | CachingDiscoverer,
    fetcher: Fetcher,
    *,
    clock: Clock = utc_now,
    past: Mapping[str, Sequence[PastReference]] | None = None,
) -> TargetReport:
    started = clock()
    try:
        dns = await discoverer.resolve(spec.host)
    except DiscoveryError as exc:
        return TargetReport(spec.name, spec.host, None, (), started, clock(), str(exc), exc.rcode)
    dns = cap_edges(dns, spec.max_edges)
    origin_edge, origin_note = await _origin_edge(spec, discoverer)
    await fetcher.forget(set(dns.edges) | ({origin_edge} if origin_edge else set()))
    observed, origins = await asyncio.gather(
        _fetch_all(fetcher, dns.edges, spec.urls), _fetch_origin(fetcher, spec, origin_edge)
    )
    now = clock()
    objects = tuple(
        _compare(
            spec, url, observed[url], origins.get(url), (past or {}).get(path_of(url), ()), now
        )
        for url in spec.urls
    )
    if origin_note:
        objects = tuple(_with_note(o, origin_note) for o in objects)
    return TargetReport(spec.name, spec.host, dns, objects, started, now)


async def _fetch_all(
    fetcher: Fetcher, edges: Sequence[Edge], urls: Sequence[str]
) -> dict[str, list[tuple[Edge, Observation]]]:
    pairs = [(url, edge) for url in urls for edge in edges]
    found = await asyncio.gather(*(fetcher.fetch(edge, url) for url, edge in pairs))
    observed: dict[str, list[tuple[Edge, Observation]]] = {url: [] for url in urls}
    for (url, edge), obs in zip(pairs, found, strict=True):
        observed[url].append((edge, obs))
    return observed


async def _origin_edge(
    spec: TargetSpec, discoverer: Discoverer | CachingDiscoverer
) -> tuple[Edge | None, str]:
    """The origin is fetched by its own name: its first address, as any client would."""
    if not spec.origin:
        return None, ""
    host = urlsplit(spec.origin).hostname or ""
    try:
        answer: DnsAnswer = await discoverer.resolve(host)
    except DiscoveryError as exc:
        return None, f"origin not resolved ({exc}); reference chosen from the edges"
    return answer.edges[0], ""


async def _fetch_origin(
    fetcher: Fetcher, spec: TargetSpec, edge: Edge | None
) -> dict[str, Observation]:
    if edge is None or not spec.origin:
        return {}
    origin = spec.origin
    found = await asyncio.gather(*(fetcher.fetch(edge, origin_url(origin, u)) for u in spec.urls))
    return dict(zip(spec.urls, found, strict=True))


def _compare(
    spec: TargetSpec,
    url: str,
    observed: Sequence[tuple[Edge, Observation]],
    origin: Observation | None,
    past: Sequence[PastReference],
    now: datetime,
) -> ObjectReport:
    return compare_object(url, spec.host, path_of(url), observed, origin, past, now)


def cap_edges(dns: DnsAnswer, max_edges: int) -> DnsAnswer:
    """Probe at most `max_edges` addresses (the first in address order, the same every cycle)."""
    if len(dns.edges) <= max_edges:
        return dns
    return replace(dns, edges=dns.edges[:max_edges], dropped=dns.edges[max_edges:])


def _with_note(report: ObjectReport, note: str) -> ObjectReport:
    return replace(report, notes=(*report.notes, note))
