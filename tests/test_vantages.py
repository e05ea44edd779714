"""Vantage points against real DNS servers on loopback: Knot with mod-geoip answers by EDNS
Client Subnet (eu and us regions), dnsmasq is a second, plain resolver, FaultDns a sick one.

The subnets are documentation ranges carried as data in queries; every packet goes to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import dns.message
import dns.query
import dns.rdatatype
import pytest

from prober.discovery import CachingDiscoverer, Discoverer, NoEdgesError, Vantage
from prober.errors import DiscoveryError, UsageError
from prober.kinds.base import cap_edges
from prober.model import DnsAnswer, Edge, VantageAnswer
from tests.conftest import cdnprobe
from tests.faults import FaultDns
from tests.knot import ALIAS, DEFAULT_EDGES, REGIONS, ZONE, KnotLab
from tests.lab import HOST, Lab

EU, US = REGIONS
assert ZONE == HOST  # the lab's certificate and dnsmasq name the same host


@pytest.fixture
def fault_dns() -> Iterator[list[FaultDns]]:
    started: list[FaultDns] = []
    yield started
    for server in started:
        server.stop()


def closed_port() -> int:
    """A loopback port nobody listens on: a datagram to it comes back ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def resolve(discoverer: Discoverer | CachingDiscoverer, name: str = HOST) -> DnsAnswer:
    return asyncio.run(discoverer.resolve(name))


def addresses(edges: tuple[Edge, ...]) -> set[str]:
    return {e.address for e in edges}


def vantage(answer: DnsAnswer, name: str) -> VantageAnswer:
    (found,) = [v for v in answer.vantages if v.name == name]
    return found


def regional(knot: KnotLab, *extra: Vantage) -> Discoverer:
    vantages = [Vantage(r.name, r.subnet) for r in (EU, US)]
    return Discoverer([knot.resolver], timeout_s=2, vantages=[*vantages, *extra])


def dnsmasq_serves(lab: Lab, name: str, wanted: set[str], timeout_s: float = 5.0) -> None:
    """Rewrites dnsmasq's records and waits (bounded) until it answers with them."""
    lab.set_dns(name, sorted(wanted))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got: set[str] = set()
        for rdtype in ("A", "AAAA"):
            query = dns.message.make_query(name, rdtype)
            response, _ = dns.query.udp_with_fallback(
                query, "127.0.0.1", port=lab.dns_port, timeout=2
            )
            got |= {r.to_text() for rrset in response.answer for r in rrset}
        if got == wanted:
            return
        time.sleep(0.05)
    raise AssertionError(f"dnsmasq does not answer {name} with the {len(wanted)} addresses")


# ---- the lab itself ------------------------------------------------------------------------


def test_knot_answers_each_client_subnet_with_its_regions_edges(knot: KnotLab) -> None:
    """The GeoDNS lab works: eu and us subnets get their edges, anyone else the default, and
    the alias into another zone comes back as the CNAME alone (the asker must follow it)."""

    def answer(name: str, rdtype: str, subnet: str | None) -> set[str]:
        response = knot.query(name, rdtype, subnet)
        wanted = dns.rdatatype.from_text(rdtype)
        return {r.to_text() for rrset in response.answer if rrset.rdtype == wanted for r in rrset}

    assert answer(HOST, "A", EU.subnet) == {"127.0.0.2", "127.0.0.3"}
    assert answer(HOST, "A", US.subnet) == {"127.0.0.4"}
    assert answer(HOST, "AAAA", US.subnet) == {"::1"}
    assert answer(HOST, "A", None) == set(DEFAULT_EDGES)
    assert answer(ALIAS, "A", EU.subnet) == set()
    assert answer(ALIAS, "CNAME", EU.subnet) == {"geo.cdn.test."}


# ---- vantages: every region's edges, united ------------------------------------------------


def test_two_vantages_get_each_regions_edges_united_with_seen_by(knot: KnotLab) -> None:
    """Each vantage asks with its own client subnet; the union holds both regions' edges, each
    once, and every edge says which vantage was sent to it."""
    answer = resolve(regional(knot))
    assert addresses(answer.edges) == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"}
    assert answer.by_vantage
    seen = {edge.address: names for edge, names in answer.seen_by}
    assert seen == {
        "127.0.0.2": ("eu",),
        "127.0.0.3": ("eu",),
        "127.0.0.4": ("us",),
        "::1": ("us",),
    }
    assert answer.seen_by_edge(Edge("::1", 6)) == ("us",)
    eu, us = vantage(answer, "eu"), vantage(answer, "us")
    assert (eu.ecs, eu.resolver, eu.error) == (EU.subnet, knot.resolver, None)
    assert addresses(eu.addresses) == set(EU.addresses)
    assert addresses(us.addresses) == set(US.addresses)
    assert eu.problems == ("AAAA: no records",)
    assert eu.ttl_s == knot.ttl_s
    assert answer.problems == ("eu: AAAA: no records",)


def test_a_cname_into_another_zone_is_followed_with_the_vantages_subnet(knot: KnotLab) -> None:
    """Knot answers the alias with a bare CNAME into cdn.test; each vantage asks for the target
    with its own subnet and gets its own region's edges, not the zone's default."""
    answer = resolve(regional(knot), ALIAS)
    assert addresses(vantage(answer, "eu").addresses) == set(EU.addresses)
    assert addresses(vantage(answer, "us").addresses) == set(US.addresses)
    assert not addresses(answer.edges) & set(DEFAULT_EDGES)


def test_a_vantage_that_is_only_another_resolver_is_united(knot: KnotLab, lab: Lab) -> None:
    """A vantage without a subnet asks its own resolver plainly (dnsmasq here); an edge that
    two vantages were sent to is listed once, with both."""
    dnsmasq_serves(lab, HOST, {"127.0.0.2", "127.0.0.9"})
    answer = resolve(regional(knot, Vantage("isp", resolver=lab.resolver)))
    assert addresses(answer.edges) == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9", "::1"}
    assert [e.address for e in answer.edges].count("127.0.0.2") == 1
    assert answer.seen_by_edge(Edge("127.0.0.2", 4)) == ("eu", "isp")
    assert answer.seen_by_edge(Edge("127.0.0.9", 4)) == ("isp",)
    isp = vantage(answer, "isp")
    assert (isp.ecs, isp.resolver) == (None, lab.resolver)


# ---- without vantages: every resolver asked ------------------------------------------------


def test_every_listed_resolver_is_asked_and_the_answers_united(knot: KnotLab, lab: Lab) -> None:
    """Two resolvers, no vantages: both are asked (not one as a failover list); seen_by holds
    resolver addresses, and the DiscoveryError-style description names both."""
    dnsmasq_serves(lab, HOST, {DEFAULT_EDGES[0], "127.0.0.9"})
    discoverer = Discoverer([knot.resolver, lab.resolver], timeout_s=2)
    answer = resolve(discoverer)
    assert addresses(answer.edges) == {DEFAULT_EDGES[0], "127.0.0.9"}
    assert not answer.by_vantage
    assert answer.seen_by_edge(Edge(DEFAULT_EDGES[0], 4)) == (knot.resolver, lab.resolver)
    assert answer.seen_by_edge(Edge("127.0.0.9", 4)) == (lab.resolver,)
    assert answer.resolver == f"{knot.resolver},{lab.resolver}"
    assert [v.name for v in answer.vantages] == [knot.resolver, lab.resolver]


def test_the_address_cap_applies_to_the_union(knot: KnotLab, lab: Lab) -> None:
    """max_edges cuts the united, address-ordered list; seen_by still covers the dropped."""
    dnsmasq_serves(lab, HOST, {"127.0.0.9"})
    answer = cap_edges(resolve(regional(knot, Vantage("isp", resolver=lab.resolver))), 3)
    assert [e.address for e in answer.edges] == ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    assert [e.address for e in answer.dropped] == ["127.0.0.9", "::1"]
    assert answer.seen_by_edge(Edge("127.0.0.9", 4)) == ("isp",)


def test_an_answer_too_big_for_udp_comes_by_tcp_for_a_vantage(lab: Lab) -> None:
    """200 addresses with an ECS option on the query: truncated over UDP, complete over TCP."""
    many = {f"127.0.1.{i}" for i in range(1, 201)}
    dnsmasq_serves(lab, HOST, many)
    discoverer = Discoverer(vantages=[Vantage("eu", EU.subnet, lab.resolver)], timeout_s=5)
    assert addresses(resolve(discoverer).edges) == many


# ---- failing vantages ----------------------------------------------------------------------


def test_a_dead_vantage_keeps_its_error_and_the_target_still_resolves(knot: KnotLab) -> None:
    dead = f"127.0.0.1:{closed_port()}"
    answer = resolve(regional(knot, Vantage("asia", "192.0.2.0/24", dead)))
    assert addresses(answer.edges) == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"}
    asia = vantage(answer, "asia")
    assert (asia.error, asia.addresses, asia.resolver) == ("unreachable", (), dead)
    assert "asia: unreachable" in answer.problems


def test_a_silent_vantage_times_out_without_failing_the_target(
    knot: KnotLab, fault_dns: list[FaultDns]
) -> None:
    silent = FaultDns("hang").start()
    fault_dns.append(silent)
    started = time.monotonic()
    answer = resolve(regional(knot, Vantage("asia", "192.0.2.0/24", f"127.0.0.1:{silent.port}")))
    assert vantage(answer, "asia").error == "timeout"
    assert addresses(answer.edges) == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"}
    assert time.monotonic() - started < 5  # the 2 s lifetime, not more


@pytest.mark.parametrize("word", ["unreachable", "timeout", "SERVFAIL", "REFUSED"])
def test_all_vantages_dead_is_a_discovery_error_with_the_word(
    knot: KnotLab, fault_dns: list[FaultDns], word: str
) -> None:
    """No vantage answers: DiscoveryError, NAME: WORD from RESOLVER (RESOLVER (VANTAGE), ...),
    and what each vantage said is kept on the error."""
    name = HOST
    if word == "unreachable":
        resolver = f"127.0.0.1:{closed_port()}"
    elif word == "REFUSED":
        resolver, name = knot.resolver, "elsewhere.example"  # not Knot's zone: it refuses
    else:
        server = FaultDns("hang" if word == "timeout" else "servfail").start()
        fault_dns.append(server)
        resolver = f"127.0.0.1:{server.port}"
    vantages = [Vantage(r.name, r.subnet, resolver) for r in (EU, US)]
    with pytest.raises(NoEdgesError) as caught:
        resolve(Discoverer(vantages=vantages, timeout_s=1), name)
    assert isinstance(caught.value, DiscoveryError)
    assert str(caught.value) == f"{name}: {word} from {resolver} (eu),{resolver} (us)"
    assert caught.value.rcode == word
    assert [(v.name, v.error) for v in caught.value.vantages] == [("eu", word), ("us", word)]


def test_the_most_telling_failure_names_its_resolver(knot: KnotLab) -> None:
    """An NXDOMAIN from Knot outweighs an unreachable vantage, and the message names Knot."""
    dead = f"127.0.0.1:{closed_port()}"
    vantages = [Vantage("eu", EU.subnet), Vantage("asia", "192.0.2.0/24", dead)]
    with pytest.raises(DiscoveryError) as caught:
        resolve(Discoverer([knot.resolver], timeout_s=1, vantages=vantages), f"nope.{HOST}")
    assert str(caught.value) == f"nope.{HOST}: NXDOMAIN from {knot.resolver} (eu)"


def test_an_unreachable_resolver_is_named_unreachable_not_servfail(lab: Lab) -> None:
    """A resolver whose port is closed answers with ICMP port unreachable: the word is
    `unreachable`, at once (not a SERVFAIL, not after the whole timeout), in the CLI's line."""
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(DiscoveryError) as caught:
        resolve(Discoverer([f"127.0.0.1:{port}"], timeout_s=5))
    assert time.monotonic() - started < 2
    assert str(caught.value) == f"{HOST}: unreachable from 127.0.0.1:{port}"
    proc = cdnprobe("check", lab.url("/x"), "--resolver", f"127.0.0.1:{port}", "--timeout", "5")
    assert proc.returncode == 3
    assert proc.stderr.strip() == f"cdnprobe: {HOST}: unreachable from 127.0.0.1:{port}"


# ---- the daemon's cache --------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_reuses_each_vantage_for_the_interval_and_asks_a_failed_one_again(
    lab: Lab, fault_dns: list[FaultDns]
) -> None:
    """Within dns_min_interval a vantage's answer is reused (even past its TTL of 0: the
    interval caps the DNS load); a failed vantage is asked again; after it, all are."""
    sick = FaultDns("servfail").start()
    fault_dns.append(sick)
    dnsmasq_serves(lab, HOST, {"127.0.0.2"})
    clock = FakeClock()
    inner = Discoverer(
        vantages=[
            Vantage("lab", resolver=lab.resolver),
            Vantage("sick", EU.subnet, f"127.0.0.1:{sick.port}"),
        ],
        timeout_s=2,
    )
    cache = CachingDiscoverer(inner, min_interval_s=10, clock=clock)
    first = resolve(cache)
    assert addresses(first.edges) == {"127.0.0.2"}
    assert vantage(first, "lab").ttl_s == 0  # dnsmasq's hosts records carry TTL 0
    assert vantage(first, "sick").error == "SERVFAIL"
    asked = sick.queries
    assert asked >= 2

    dnsmasq_serves(lab, HOST, {"127.0.0.3"})
    clock.now += 9
    second = resolve(cache)
    assert addresses(second.edges) == {"127.0.0.2"}  # reused within the interval
    assert sick.queries > asked  # the failed vantage was asked again

    clock.now += 2
    third = resolve(cache)
    assert addresses(third.edges) == {"127.0.0.3"}
    assert third.seen_by_edge(Edge("127.0.0.3", 4)) == ("lab",)


def test_a_literal_address_is_its_own_edge_and_asks_nobody() -> None:
    dead = f"127.0.0.1:{closed_port()}"
    answer = resolve(Discoverer(vantages=[Vantage("eu", EU.subnet, dead)]), "127.0.0.2")
    assert answer.edges == (Edge("127.0.0.2", 4),)
    assert answer.vantages == ()


@pytest.mark.parametrize(
    ("vantages", "message"),
    [
        ([Vantage("eu", "not-a-net")], "subnet 'not-a-net' is not an IP network"),
        ([Vantage("eu"), Vantage("eu")], "vantage names must be unique"),
        ([Vantage("eu", resolver="resolver.example")], "HOST must be an IP address"),
    ],
)
def test_bad_vantages_are_usage_errors(vantages: list[Vantage], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Discoverer(["127.0.0.1:53"], vantages=vantages)
