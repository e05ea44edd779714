"""Host name → every edge address (A and AAAA) anyone is sent to, through dnspython.

Every listed resolver is asked, concurrently, and the answers are united: an edge appears once
however many resolvers named it. With vantages, each vantage asks its own resolver with EDNS
Client Subnet (RFC 7871), which is how a GeoDNS or CDN authoritative server answers users in
that network; the union is then over the vantages, and every edge carries the vantages that
were sent to it (`DnsAnswer.seen_by`).

DNS failures are translated here, once, into words: NXDOMAIN, SERVFAIL, REFUSED, timeout,
unreachable (the resolver's port or host refused the datagram: ICMP unreachable), no records.
A name with at least one address from any vantage is a DnsAnswer (the other vantages' and
families' trouble kept as problems); a name with none raises DiscoveryError.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import dns.asyncbackend
import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver

from prober.errors import DiscoveryError, UsageError
from prober.model import DnsAnswer, Edge, Family, VantageAnswer

_FAMILIES: tuple[tuple[str, Family], ...] = (("A", 4), ("AAAA", 6))
# Most telling first: an authoritative "no such name" beats a sick or silent resolver.
_PRECEDENCE = ("NXDOMAIN", "SERVFAIL", "REFUSED", "unreachable", "timeout")
_MAX_CHAIN = 8  # CNAME hops followed by new queries (dnspython's own chain limit is 16)
_MAX_ATTEMPTS = 16  # queries per lookup, whatever the deadline says
_ATTEMPT_S = 2.0  # one UDP try; a lost datagram is retried until the lookup's lifetime ends
_EDNS_PAYLOAD = 1232  # the DNS Flag Day 2020 size: larger answers come truncated, then by TCP

Server = tuple[str, int]


def parse_resolver(spec: str) -> tuple[str, int]:
    """'HOST[:PORT]' or '[V6]:PORT' or a bare IPv6 address → (address, port)."""
    host, port = spec.strip(), 53
    if host.startswith("["):
        inner, sep, rest = host[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"bad resolver {spec!r}: expected HOST[:PORT] or [IPV6]:PORT")
        host, port_text = inner, rest[1:]
    elif host.count(":") == 1:
        host, port_text = host.split(":")
    else:
        port_text = ""
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UsageError(f"bad resolver {spec!r}: port must be 1-65535")
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(f"bad resolver {spec!r}: HOST must be an IP address") from None
    return host, port


def edge_for_literal(host: str) -> Edge | None:
    """An IP-literal URL host is its own single edge; no DNS is asked."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return Edge(str(ip), 4 if ip.version == 4 else 6)


@dataclass(frozen=True, slots=True)
class Vantage:
    """A place users ask from: its resolver is told the client subnet `subnet` (ECS).

    `resolver` None: the target's first resolver, or the system's. `subnet` None: the resolver
    is asked plainly (a vantage that is only another resolver)."""

    name: str
    subnet: str | None = None
    resolver: str | None = None


@dataclass(frozen=True, slots=True)
class _Source:
    """One asker: a vantage, or (without vantages) one resolver."""

    name: str  # what seen_by says: the vantage's name, or the resolver's address
    resolver: str  # how the resolver is described in answers and errors
    servers: tuple[Server, ...]  # in failover order (only the system's can hold several)
    ecs: dns.edns.ECSOption | None = None
    subnet: str | None = None
    is_vantage: bool = False

    @property
    def label(self) -> str:
        """The source as DiscoveryError names it: `127.0.0.1:53`, or `127.0.0.1:53 (eu)`."""
        return f"{self.resolver} ({self.name})" if self.is_vantage else self.resolver


class _Failed(Exception):
    """A lookup that ended without a usable response; `word` says why."""

    def __init__(self, word: str) -> None:
        super().__init__(word)
        self.word = word


class Discoverer:
    """Asks every resolver (or every vantage) for a name's A and AAAA records, no cache.

    `Discoverer(resolvers, timeout_s)` asks each resolver and unites the answers;
    `Discoverer(resolvers, timeout_s, vantages=[Vantage(...)])` asks the vantages instead, each
    its own resolver (default: the first of `resolvers`, or the system's)."""

    def __init__(
        self,
        resolvers: Sequence[str] = (),
        timeout_s: float = 5.0,
        *,
        vantages: Sequence[Vantage] = (),
    ) -> None:
        self._timeout_s = timeout_s
        self._sources = _sources([parse_resolver(s) for s in resolvers], vantages)
        self._by_vantage = bool(vantages)
        self.description = ",".join(dict.fromkeys(s.resolver for s in self._sources))

    @property
    def vantage_names(self) -> tuple[str, ...]:
        """The names answers and seen_by use, in the order they are asked."""
        return tuple(s.name for s in self._sources)

    async def resolve(self, name: str) -> DnsAnswer:
        return await self.resolve_reusing(name, {})

    async def resolve_reusing(self, name: str, reuse: Mapping[str, VantageAnswer]) -> DnsAnswer:
        """Like `resolve`, but a vantage named in `reuse` is not asked: that is its answer."""
        literal = edge_for_literal(name)
        if literal is not None:
            return DnsAnswer(name, (literal,), "literal")
        answers = await asyncio.gather(
            *(self._reused_or_ask(source, name, reuse) for source in self._sources)
        )
        return self._unite(name, answers)

    async def _reused_or_ask(
        self, source: _Source, name: str, reuse: Mapping[str, VantageAnswer]
    ) -> VantageAnswer:
        reused = reuse.get(source.name)
        return reused if reused is not None else await self._ask(source, name)

    async def _ask(self, source: _Source, name: str) -> VantageAnswer:
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        outcomes = await asyncio.gather(
            *(_lookup(source, name, rr, family, deadline) for rr, family in _FAMILIES)
        )
        edges = sorted({edge for found, _, _ in outcomes for edge in found})
        problems = tuple(
            f"{rr}: {why}" for (rr, _), (_, why, _) in zip(_FAMILIES, outcomes, strict=True) if why
        )
        ttls = [ttl for found, _, ttl in outcomes if found and ttl is not None]
        error = None if edges else _word_of([why for _, why, _ in outcomes])
        return VantageAnswer(
            name=source.name,
            resolver=source.resolver,
            ecs=source.subnet,
            addresses=tuple(edges),
            error=error,
            problems=problems,
            ttl_s=min(ttls) if ttls else None,
        )

    def _unite(self, name: str, answers: Sequence[VantageAnswer]) -> DnsAnswer:
        seen: dict[Edge, list[str]] = {}
        for answer in answers:
            for edge in answer.addresses:
                seen.setdefault(edge, []).append(answer.name)
        if not seen:
            raise self._no_edges(name, answers)
        edges = tuple(sorted(seen))
        return DnsAnswer(
            name,
            edges,
            self.description,
            _problems(answers),
            vantages=tuple(answers),
            by_vantage=self._by_vantage,
            seen_by=tuple((edge, tuple(seen[edge])) for edge in edges),
        )

    def _no_edges(self, name: str, answers: Sequence[VantageAnswer]) -> DiscoveryError:
        word = _word_of([a.error or "" for a in answers])
        labels = {s.name: s.label for s in self._sources}
        named = [labels[a.name] for a in answers if a.error == word] or list(labels.values())
        return NoEdgesError(name, ",".join(named), word, tuple(answers))


class NoEdgesError(DiscoveryError):
    """No vantage (or resolver) gave an address; what each one said is kept in `vantages`.

    The message is DiscoveryError's `NAME: RCODE from RESOLVER`, RESOLVER naming the resolvers
    that gave RCODE (the most telling failure among them)."""

    def __init__(
        self, name: str, resolver: str, rcode: str, vantages: tuple[VantageAnswer, ...]
    ) -> None:
        super().__init__(name, resolver, rcode)
        self.vantages = vantages


def _problems(answers: Sequence[VantageAnswer]) -> tuple[str, ...]:
    """Per-family trouble; with several askers each line starts with the asker's name."""
    if len(answers) == 1:
        return answers[0].problems
    lines: list[str] = []
    for answer in answers:
        if answer.error is not None:
            lines.append(f"{answer.name}: {answer.error}")
        else:
            lines.extend(f"{answer.name}: {problem}" for problem in answer.problems)
    return tuple(lines)


def _word_of(reasons: Sequence[str]) -> str:
    for word in _PRECEDENCE:
        if word in reasons:
            return word
    if all(r in ("no records", "no A or AAAA records") for r in reasons):
        return "no A or AAAA records"
    return "/".join(dict.fromkeys(r for r in reasons if r))


# ---- who asks whom ---------------------------------------------------------------------------


def _sources(servers: Sequence[Server], vantages: Sequence[Vantage]) -> tuple[_Source, ...]:
    if not vantages:
        if not servers:
            return (_system_source(),)
        unique = dict.fromkeys(servers)
        return tuple(_Source(_describe(*s), _describe(*s), (s,)) for s in unique)
    names = [v.name for v in vantages]
    if len(set(names)) != len(names) or not all(names):
        raise UsageError(f"vantage names must be unique and not empty: {names}")
    default = servers[0] if servers else None
    return tuple(_vantage_source(v, default) for v in vantages)


def _vantage_source(vantage: Vantage, default: Server | None) -> _Source:
    server = parse_resolver(vantage.resolver) if vantage.resolver else default
    ecs, subnet = _ecs(vantage)
    if server is None:
        system = _system_source()
        return _Source(vantage.name, system.resolver, system.servers, ecs, subnet, True)
    return _Source(vantage.name, _describe(*server), (server,), ecs, subnet, True)


def _ecs(vantage: Vantage) -> tuple[dns.edns.ECSOption | None, str | None]:
    if vantage.subnet is None:
        return None, None
    try:
        network = ipaddress.ip_network(vantage.subnet.strip(), strict=False)
    except ValueError:
        raise UsageError(
            f"bad vantage {vantage.name!r}: subnet {vantage.subnet!r} is not an IP network"
        ) from None
    # The source prefix as given: a resolver passes at most /24 (IPv4) or /56 (IPv6) upstream.
    return dns.edns.ECSOption(str(network.network_address), network.prefixlen), str(network)


def _system_source() -> _Source:
    try:
        system = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        raise UsageError("no system resolver (resolv.conf); pass --resolver HOST[:PORT]") from None
    servers = tuple(_system_servers(system.nameservers, system.port))
    if not servers:
        raise UsageError("no plain-DNS system resolver (resolv.conf); pass --resolver HOST[:PORT]")
    description = "system resolver (" + ",".join(h for h, _ in servers) + ")"
    return _Source(",".join(_describe(*s) for s in servers), description, servers)


def _system_servers(nameservers: Iterable[object], port: int) -> Iterable[Server]:
    # resolv.conf's list is a failover list, as every stub resolver reads it
    for ns in nameservers:
        if isinstance(ns, str):
            yield ns, port
        elif isinstance(ns, dns.nameserver.Do53Nameserver):
            yield ns.address, ns.port


def _describe(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- one lookup: name and type, CNAME chain followed, per asker ------------------------------


async def _lookup(
    source: _Source, name: str, rdtype: str, family: Family, deadline: float
) -> tuple[list[Edge], str, float | None]:
    """(edges, why none, shortest TTL along the chain) of one name and type for one asker."""
    qname = dns.name.from_text(name)
    ttl: float | None = None
    try:
        for _ in range(_MAX_CHAIN):
            response = await _exchange(source, _query(source, qname, rdtype), deadline)
            chain = response.resolve_chaining()
            ttl = chain.minimum_ttl if ttl is None else min(ttl, chain.minimum_ttl)
            if chain.answer is not None:
                edges = [_edge(r.address, family) for r in chain.answer]
                return edges, "", ttl
            if response.rcode() == dns.rcode.NXDOMAIN:
                return [], "NXDOMAIN", None
            if not _chain_goes_on(response, qname, chain.canonical_name):
                return [], "no records", None
            qname = chain.canonical_name
    except _Failed as failed:
        return [], failed.word, None
    except dns.exception.DNSException as exc:  # e.g. a chain too long, a malformed answer
        return [], type(exc).__name__, None
    return [], "CNAME chain too long", None


def _chain_goes_on(
    response: dns.message.QueryMessage, asked: dns.name.Name, end: dns.name.Name
) -> bool:
    """An authoritative server answers a CNAME into another zone with the CNAME alone (no SOA
    for the target's zone): the target must be asked for, with the same ECS, to know what this
    vantage is sent to. A recursive resolver (RA) has followed the chain itself."""
    if end == asked or response.flags & dns.flags.RA:
        return False
    return not any(rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority)


def _query(source: _Source, qname: dns.name.Name, rdtype: str) -> dns.message.QueryMessage:
    options: list[dns.edns.Option] | None = [source.ecs] if source.ecs is not None else None
    return dns.message.make_query(qname, rdtype, use_edns=0, payload=_EDNS_PAYLOAD, options=options)


def _edge(address: str, family: Family) -> Edge:
    return Edge(str(ipaddress.ip_address(address)), family)


async def _exchange(
    source: _Source, query: dns.message.Message, deadline: float
) -> dns.message.QueryMessage:
    """A response from one of the source's servers: a silent one is asked again until the
    deadline; one that fails (unreachable, SERVFAIL, REFUSED) is dropped for this lookup."""
    loop = asyncio.get_running_loop()
    failures: dict[Server, str] = {}
    alive = list(source.servers)
    for attempt in range(_MAX_ATTEMPTS):
        remaining = deadline - loop.time()
        if not alive or remaining <= 0:
            break
        server = alive[attempt % len(alive)]
        try:
            return await _ask_server(query, server, min(_ATTEMPT_S, remaining))
        except _Failed as failed:
            failures[server] = failed.word
            if failed.word != "timeout":  # silence may be a lost datagram; the rest is not
                alive.remove(server)
    raise _Failed(_word_of(list(failures.values())) if failures else "timeout")


async def _ask_server(
    query: dns.message.Message, server: Server, timeout_s: float
) -> dns.message.QueryMessage:
    """One query over UDP (TCP when the answer comes truncated), failures as words."""
    host, port = server
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    backend = dns.asyncbackend.get_backend("asyncio")
    try:
        async with asyncio.timeout(timeout_s):
            # A connected UDP socket: only then does the kernel report the ICMP "port
            # unreachable" of a dead resolver (ECONNREFUSED) instead of leaving us to time out.
            udp = await backend.make_socket(  # type: ignore[no-untyped-call]  # untyped upstream
                family, socket.SOCK_DGRAM, 0, None, (host, port)
            )
            async with udp:
                response, _ = await dns.asyncquery.udp_with_fallback(
                    query, host, timeout_s, port, ignore_unexpected=True, udp_sock=udp
                )
    except (TimeoutError, dns.exception.Timeout):
        raise _Failed("timeout") from None
    except OSError:  # ECONNREFUSED, EHOSTUNREACH, ENETUNREACH: nobody serves DNS there
        raise _Failed("unreachable") from None
    except dns.exception.DNSException as exc:  # a malformed or mismatched response
        raise _Failed(type(exc).__name__) from None
    if not isinstance(response, dns.message.QueryMessage):
        raise _Failed("BadResponse")
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        # SERVFAIL, REFUSED, FORMERR, NOTIMP, ...: this server cannot help with this lookup
        raise _Failed(dns.rcode.to_text(rcode))
    return response


# ---- the daemon's cache ----------------------------------------------------------------------


class CachingDiscoverer:
    """Re-resolves a name at most once per `min_interval_s`, each vantage on its own.

    A vantage's answer is reused while it is younger than `min_interval_s`, even when its TTL
    is shorter: the interval is the operator's cap on the DNS load the daemon makes ("re-resolve
    at most this often"), and a GeoDNS TTL of 0-5 s must not turn every probe cycle into a
    query burst. It is never reused past the interval, even when its TTL is longer: a CDN moving
    users to new edges is then seen within one interval, not one TTL. Failures are never
    cached: a vantage that failed is asked again on the next resolve while the others' answers
    are reused."""

    def __init__(
        self,
        inner: Discoverer,
        min_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._min_interval_s = min_interval_s
        self._clock = clock
        self._answers: dict[tuple[str, str], tuple[float, VantageAnswer]] = {}
        self.description = inner.description

    async def resolve(self, name: str) -> DnsAnswer:
        now = self._clock()
        fresh = {
            vantage: cached[1]
            for vantage in self._inner.vantage_names
            if (cached := self._answers.get((name, vantage))) is not None
            and now - cached[0] < self._min_interval_s
        }
        try:
            answer = await self._inner.resolve_reusing(name, fresh)
        except NoEdgesError as exc:
            self._forget(name, exc.vantages)
            raise
        self._remember(name, answer.vantages, fresh, now)
        return answer

    def _remember(
        self,
        name: str,
        answers: Iterable[VantageAnswer],
        fresh: Mapping[str, VantageAnswer],
        now: float,
    ) -> None:
        for answer in answers:
            if answer.name in fresh:
                continue  # keeps the time it was fetched
            if answer.error is None:
                self._answers[(name, answer.name)] = (now, answer)
            else:
                self._answers.pop((name, answer.name), None)

    def _forget(self, name: str, answers: Iterable[VantageAnswer]) -> None:
        for answer in answers:
            self._answers.pop((name, answer.name), None)
