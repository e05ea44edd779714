"""What every kind shares: the probe's signature, the tools a probe gets, the DNS prelude.

A kind is a spec made from its validated target config, and one probe of that spec giving a
TargetReport. `check`, `wait` and the daemon all call the same probes, so the terminal, the
gate and the exporter cannot disagree about a verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from prober.compare import PastReference
from prober.config import AnyTarget
from prober.discovery import CachingDiscoverer, Discoverer, Vantage
from prober.errors import DiscoveryError
from prober.fetch import Connections, Fetcher, Slots
from prober.model import DnsAnswer, Edge, Kind, Observation, TargetReport

Clock = Callable[[], datetime]
# ProbeContext.memory key: package names to read beyond the target's own `expect` (the
# daemon's runner sets those of the tasks waiting on a cycle; apt.with_expect judges them)
WATCH = "watch"
Resolver = Discoverer | CachingDiscoverer
S = TypeVar("S")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ProbeContext:
    """The tools of one target's probes, and what the target remembers between cycles."""

    discoverer: Resolver
    fetcher: Fetcher
    clock: Clock = utc_now
    # path → bodies that were the reference in earlier cycles, newest first (daemon only)
    past: Mapping[str, Sequence[PastReference]] = field(default_factory=dict)
    # a kind's own memory between cycles (e.g. the checksums kind's rehash cache)
    memory: dict[str, Any] = field(default_factory=dict)
    max_in_flight: int = 64  # the bound on requests in flight these probes share


@dataclass(frozen=True, slots=True)
class KindSpec(Generic[S]):
    """One row of the kinds table."""

    kind: Kind
    spec: Callable[[Any], S]  # a validated target config of this kind → the probe's spec
    probe: Callable[[S, ProbeContext], Awaitable[TargetReport]]
    paths: Callable[[S], tuple[str, ...]]  # the object paths the daemon keeps history for


async def resolve_edges(
    kind: Kind,
    name: str,
    host: str,
    max_edges: int,
    ctx: ProbeContext,
    started: datetime,
    *,
    forget: bool = True,
) -> DnsAnswer | TargetReport:
    """The DNS prelude of every cycle: the edges to probe (capped), or the report of a name
    that resolved to no address. Pools of edges that left DNS are closed (`forget`)."""
    try:
        dns = cap_edges(await ctx.discoverer.resolve(host), max_edges)
    except DiscoveryError as exc:
        finished = ctx.clock()
        # what each vantage (or resolver) said, so every one is reported down: vantage_up 0
        said = getattr(exc, "vantages", ())
        failed = DnsAnswer(host, (), exc.resolver, vantages=said) if said else None
        return TargetReport(
            name, host, failed, (), started, finished, str(exc), exc.rcode, kind=kind
        )
    if forget:
        await ctx.fetcher.forget(set(dns.edges))
    return dns


async def first_address(host: str, ctx: ProbeContext) -> Edge | DiscoveryError:
    """An origin is fetched by its own name: its first address, as any client would."""
    try:
        answer = await ctx.discoverer.resolve(host)
    except DiscoveryError as exc:
        return exc
    return answer.edges[0]


def tools_for(
    target: AnyTarget,
    *,
    slots: asyncio.Semaphore,
    concurrency_total: int,
    dns_min_interval_s: float | None = None,
    keepalive_s: float = 120.0,
) -> tuple[Resolver, Fetcher]:
    """The discoverer and fetcher of one target, from its config: the same for `check` and
    the daemon (which caches DNS answers for `dns_min_interval_s`). When `slots` are Slots
    (the daemon's), the fetcher shares their connections with the other targets' fetchers."""
    vantages = [Vantage(v.name, v.subnet, v.resolver) for v in target.vantages]
    plain = Discoverer(target.resolvers, timeout_s=min(target.timeout, 5.0), vantages=vantages)
    discoverer: Resolver = plain
    if dns_min_interval_s is not None:
        discoverer = CachingDiscoverer(plain, dns_min_interval_s)
    connections = slots.connections if isinstance(slots, Slots) else Connections()
    fetcher = Fetcher(
        ssl_context=connections.ssl_context(target.ca_file, target.insecure),
        timeout_s=target.timeout,
        max_body_bytes=target.max_body_size,
        concurrency=slots,
        concurrency_total=concurrency_total,
        connections_per_edge=target.connections_per_edge,
        keepalive_s=keepalive_s,
        http=target.http,
        connections=connections,
    )
    return discoverer, fetcher


async def fetch_pairs(
    fetch: Callable[[Edge, str], Awaitable[Observation]],
    pairs: Sequence[tuple[str, Edge]],
    workers: int,
) -> list[Observation]:
    """Every (URL, edge) fetched, in order, by as many workers as requests may be in flight:
    not one task per probe created at once, whose coroutines and semaphore waiters would all
    live for the whole cycle (at 100k probes, most of the garbage collector's work)."""
    found: list[Observation | None] = [None] * len(pairs)
    queue = iter(range(len(pairs)))

    async def worker() -> None:
        for i in queue:
            url, edge = pairs[i]
            found[i] = await fetch(edge, url)

    await asyncio.gather(*(worker() for _ in range(max(1, min(len(pairs), workers)))))
    return [obs for obs in found if obs is not None]


def cap_edges(dns: DnsAnswer, max_edges: int) -> DnsAnswer:
    """Probe at most `max_edges` addresses (the first in address order, the same every cycle)."""
    if len(dns.edges) <= max_edges:
        return dns
    return replace(dns, edges=dns.edges[:max_edges], dropped=dns.edges[max_edges:])
