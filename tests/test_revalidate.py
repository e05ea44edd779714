"""Bytes only when they changed (`revalidate: {full_every: N}`), at the daemon against nginx
edges, cycle by cycle through /probe: each edge is asked with its own last validators and a
304 reuses its own last hash, labelled with its age; a new publish is seen in the next cycle;
an in-place corruption that keeps the validators is caught at the next full pass."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import RunningDaemon, Scrape, http, parse, received, started, wait_until
from tests.lab import Lab

PATH = "/big.bin"
SIZE = 256 << 10
MTIME = 1_790_000_000
EDGE = "127.0.0.3"


@pytest.fixture
def daemon(lab: Lab, tmp_path: Path) -> Iterator[RunningDaemon]:
    lab.write(PATH, os.urandom(SIZE), mtime=MTIME)
    config = tmp_path / "revalidate.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: repo\n"
        f"    url: https://repo.test:{lab.port}\n    paths: [{PATH}]\n    interval: 1h\n"
        f'    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n'
        "    revalidate: {full_every: 4}\n"
    )
    with started(config, "repo") as running:
        yield running


def cycle(daemon: RunningDaemon) -> Scrape:
    """One cycle now, then the whole exposition (the counters are there)."""
    status, _ = http(daemon.base + "/probe?target=repo")
    assert status == 200
    return parse(http(daemon.base + "/metrics")[1])


def ages(scrape: Scrape) -> dict[str, float]:
    return {
        dict(labels)["address"]: value
        for labels, value in scrape.samples["cdnprobe_edge_object_hash_age_cycles"].items()
    }


def test_an_unchanged_repository_costs_almost_nothing(lab: Lab, daemon: RunningDaemon) -> None:
    """Cycle 1 was full; cycles 2 and 3 are 304s from every edge, with their hashes' ages."""
    full = received(daemon.scrape())
    assert full >= SIZE * len(lab.edges)
    second = cycle(daemon)
    third = cycle(daemon)
    assert set(ages(second).values()) == {1} and set(ages(third).values()) == {2}
    assert received(third) - full <= 0.02 * full  # two cycles for under 2% of one full
    assert third.get("cdnprobe_object_variants", path=PATH) == 1
    conditional = [line for line in lab.access_log() if PATH in line and '" 304 ' in line]
    assert len(conditional) == 2 * len(lab.edges)


def test_a_new_publish_is_seen_in_the_next_cycle(lab: Lab, daemon: RunningDaemon) -> None:
    cycle(daemon)
    lab.write(PATH, os.urandom(SIZE), edges=[EDGE], mtime=MTIME + 60)
    after = cycle(daemon)
    assert after.get("cdnprobe_object_variants", path=PATH) == 2
    assert ages(after)[EDGE] == 0  # fetched and hashed: its validators changed
    assert after.get("cdnprobe_edge_object_match", address=EDGE, path=PATH) == 1  # the newest
    # the reference changed: the cycle after is a full pass, every body hashed again
    assert set(ages(cycle(daemon)).values()) == {0}


def test_an_in_place_corruption_is_caught_at_the_next_full_pass(
    lab: Lab, daemon: RunningDaemon
) -> None:
    """Same size, same mtime, so nginx's ETag and Last-Modified stay: a 304 cannot tell.
    The next full pass (every 4 cycles) hashes it and finds the other bytes."""
    lab.write(PATH, os.urandom(SIZE), edges=[EDGE], mtime=MTIME)
    seen_at = None
    for n in range(2, 6):  # cycle 1 was the daemon's first; the next full pass is cycle 4
        scrape = cycle(daemon)
        if scrape.get("cdnprobe_edge_object_match", address=EDGE, path=PATH) == 0:
            seen_at = n
            break
        assert ages(scrape)[EDGE] == n - 1  # reused, and said so
    assert seen_at == 4


def test_the_origin_is_revalidated_too_and_its_bytes_are_counted(lab: Lab, tmp_path: Path) -> None:
    """With `origin:`, the origin is one more server asked with its own last validators;
    what it sends is counted under its own address."""
    lab.write(PATH, os.urandom(SIZE), mtime=MTIME)
    origin, *edges = [e.address for e in lab.edges]  # the origin is no edge
    lab.set_dns("repo.test", edges)
    lab.set_dns("origin.test", [origin])
    config = tmp_path / "origin.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: repo\n"
        f"    url: https://repo.test:{lab.port}\n    paths: [{PATH}]\n    interval: 1h\n"
        f"    origin: https://origin.test:{lab.port}\n"
        f'    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n'
        "    revalidate: {full_every: 4}\n"
    )
    with started(config, "repo") as daemon:
        first = daemon.scrape()
        assert received(first) == SIZE * (len(edges) + 1)  # every edge, and the origin
        labels = {"target": "repo", "address": origin}
        assert first.get("cdnprobe_received_bytes_total", **labels) == SIZE
        before = len(lab.access_log())
        second = cycle(daemon)
    asked = [line for line in lab.access_log()[before:] if PATH in line]
    assert len(asked) == len(edges) + 1 and all('" 304 ' in line for line in asked)
    assert received(second) == received(first)
    assert second.get("cdnprobe_object_variants", path=PATH) == 1


def test_a_reload_that_changes_the_target_starts_with_a_full_pass(
    lab: Lab, daemon: RunningDaemon
) -> None:
    """Kept answers were taken under the old settings (here a body limit): after a reload
    that changed the target, the first cycle hashes every body again."""
    import signal

    assert set(ages(cycle(daemon)).values()) == {1}  # revalidating
    config = daemon.config_path
    config.write_text(config.read_text() + f"    max_body_size: {SIZE * 2}\n")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in daemon.log(), 10, "the reload")
    assert set(ages(cycle(daemon)).values()) == {0}
    assert set(ages(cycle(daemon)).values()) == {1}  # and revalidating again after it
