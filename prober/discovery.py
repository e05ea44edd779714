"""Host name → every edge address (A and AAAA), through dnspython.

DNS failures are translated here, once, into rcode words (NXDOMAIN, SERVFAIL, timeout, ...).
A name with at least one address is a DnsAnswer (the other family's trouble kept as a
problem); a name with none raises DiscoveryError.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from prober.errors import DiscoveryError, UsageError
from prober.model import DnsAnswer, Edge, Family

_FAMILIES: tuple[tuple[str, Family], ...] = (("A", 4), ("AAAA", 6))


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


class Discoverer:
    """Resolves names with fixed nameservers (or the system's resolv.conf), no cache."""

    def __init__(self, resolvers: Sequence[str] = (), timeout_s: float = 5.0) -> None:
        servers = [parse_resolver(s) for s in resolvers]
        try:
            self._resolver = dns.asyncresolver.Resolver(configure=not servers)
        except dns.resolver.NoResolverConfiguration:
            raise UsageError(
                "no system resolver (resolv.conf); pass --resolver HOST[:PORT]"
            ) from None
        if servers:
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in servers]
        self._resolver.lifetime = timeout_s
        self._resolver.timeout = min(2.0, timeout_s)
        self.description = ",".join(_describe(h, p) for h, p in servers) or _system_description(
            self._resolver
        )

    async def resolve(self, name: str) -> DnsAnswer:
        literal = edge_for_literal(name)
        if literal is not None:
            return DnsAnswer(name, (literal,), "literal")
        outcomes = await asyncio.gather(*(self._family(name, rr, fam) for rr, fam in _FAMILIES))
        edges = sorted({edge for found, _ in outcomes for edge in found})
        problems = tuple(
            f"{rr}: {why}" for (rr, _), (_, why) in zip(_FAMILIES, outcomes, strict=True) if why
        )
        if not edges:
            raise DiscoveryError(name, self.description, _rcode_of(outcomes))
        return DnsAnswer(name, tuple(edges), self.description, problems)

    async def _family(self, name: str, rdtype: str, family: Family) -> tuple[list[Edge], str]:
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return [], "NXDOMAIN"
        except dns.resolver.NoAnswer:
            return [], "no records"
        except dns.resolver.NoNameservers as exc:
            return [], "REFUSED" if "REFUSED" in str(exc) else "SERVFAIL"
        except dns.exception.Timeout:
            return [], "timeout"
        except dns.exception.DNSException as exc:
            return [], type(exc).__name__
        return [Edge(str(ipaddress.ip_address(r.address)), family) for r in answer], ""


def _rcode_of(outcomes: Sequence[tuple[list[Edge], str]]) -> str:
    reasons = [why for _, why in outcomes]
    for word in ("NXDOMAIN", "SERVFAIL", "REFUSED", "timeout"):
        if word in reasons:
            return word
    if all(r == "no records" for r in reasons):
        return "no A or AAAA records"
    return "/".join(reasons)


def _describe(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _system_description(resolver: dns.asyncresolver.Resolver) -> str:
    names = [str(ns) for ns in resolver.nameservers]
    return "system resolver (" + ",".join(names) + ")"


class CachingDiscoverer:
    """Re-resolves a name at most once per `min_interval_s`; failures are never cached."""

    def __init__(self, inner: Discoverer, min_interval_s: float) -> None:
        self._inner = inner
        self._min_interval_s = min_interval_s
        self._answers: dict[str, tuple[float, DnsAnswer]] = {}
        self.description = inner.description

    async def resolve(self, name: str) -> DnsAnswer:
        now = time.monotonic()
        cached = self._answers.get(name)
        if cached is not None and now - cached[0] < self._min_interval_s:
            return cached[1]
        answer = await self._inner.resolve(name)
        self._answers[name] = (now, answer)
        return answer
