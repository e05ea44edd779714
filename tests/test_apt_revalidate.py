"""Bytes only when they changed, for APT (`revalidate: {full_every: N}` on a `type: apt`
target), at the daemon against nginx edges serving a real aptly publish: every cycle reads
each edge's InRelease in full; an edge whose InRelease is byte-identical to its last one is
asked for its indexes with its own validators (nginx answers 304); a new publish is read in
full at once; an index corrupted in place (same size and mtime, so the same validators) is
caught at the next full pass, and not before; a task asking for a package the kept readings
did not look for gets the indexes read again."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.aptrepo import INDEX, Published, serve
from tests.conftest import APT_EDGES
from tests.daemon import RunningDaemon, probe_logged, started, task_done
from tests.lab import HOST, Lab

FULL_EVERY = 6
INRELEASE = "/dists/stable/InRelease"
PACKAGES = "main/binary-amd64/Packages"  # apt's index family (the plan reads one variant)


@pytest.fixture
def daemon(apt_lab: Lab, tmp_path: Path) -> Iterator[RunningDaemon]:
    config = tmp_path / "apt-revalidate.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: deb\n    type: apt\n"
        f"    url: http://{HOST}:{apt_lab.http_port}/\n    suites: [stable]\n"
        f'    resolvers: ["{apt_lab.resolver}"]\n    interval: 1h\n'
        f"    revalidate: {{full_every: {FULL_EVERY}}}\n"
    )
    with started(config, "deb") as running:
        yield running


def index_statuses(asked: list[tuple[str, str, int]]) -> set[int]:
    return {status for _, path, status in asked if "/binary-" in path}


def test_an_unchanged_repository_asks_with_validators_and_reuses_the_answers(
    apt_lab: Lab, daemon: RunningDaemon
) -> None:
    scrape, asked = probe_logged(daemon, apt_lab, "deb")  # the second cycle: not a full pass
    inreleases = [s for _, path, s in asked if path == INRELEASE]
    assert inreleases == [200] * len(APT_EDGES)  # the InRelease is always read in full
    assert index_statuses(asked) == {304}
    for address in APT_EDGES:
        labels = {"target": "deb", "path": INRELEASE, "address": address}
        assert scrape.get("cdnprobe_edge_object_hash_age_cycles", **labels) == 1
        assert scrape.get("cdnprobe_edge_object_match", **labels) == 1
        assert scrape.get("cdnprobe_apt_packages", file=PACKAGES, address=address) == 1
        assert scrape.get("cdnprobe_apt_edge_would_fail", address=address) == 0
    scrape, asked = probe_logged(daemon, apt_lab, "deb")
    assert index_statuses(asked) == {304}
    assert scrape.get("cdnprobe_edge_object_hash_age_cycles", address=APT_EDGES[0]) == 2


def test_a_new_publish_is_read_in_full_in_the_next_cycle(
    apt_lab: Lab, published: Published, daemon: RunningDaemon
) -> None:
    probe_logged(daemon, apt_lab, "deb")
    for address in APT_EDGES:
        serve(apt_lab, address, published.v2)
    scrape, asked = probe_logged(daemon, apt_lab, "deb")
    assert 304 not in index_statuses(asked)
    for address in APT_EDGES:
        assert scrape.get("cdnprobe_apt_packages", file=PACKAGES, address=address) == 2
        assert scrape.get("cdnprobe_edge_object_hash_age_cycles", address=address) == 0
    # the reference changed, so the cycle after is a full pass too; then validators again
    _, asked = probe_logged(daemon, apt_lab, "deb")
    assert 304 not in index_statuses(asked)
    _, asked = probe_logged(daemon, apt_lab, "deb")
    assert index_statuses(asked) == {304}


def test_an_in_place_corruption_is_caught_at_the_next_full_pass_and_not_before(
    apt_lab: Lab, daemon: RunningDaemon
) -> None:
    """What a 304 cannot prove: bytes changed under the same validators. Cycle 1 (at start)
    was full; the corruption lands before cycle 2; cycles 2 to 5 reuse the kept answers;
    cycle 6 is the full pass that sees it."""
    edge = APT_EDGES[1]
    index = apt_lab.docroot(edge) / INDEX / "Packages"
    stat = index.stat()
    data = bytearray(index.read_bytes())
    data[data.index(b"Version: 1.0")] ^= 0x20  # 'V' → 'v': same size
    index.write_bytes(bytes(data))
    os.utime(index, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: the same ETag
    plain = "main/binary-amd64/Packages"
    for number in range(2, FULL_EVERY):
        scrape, asked = probe_logged(daemon, apt_lab, "deb")
        assert index_statuses(asked) == {304}, number
        assert scrape.get("cdnprobe_apt_index_match", file=plain, address=edge) == 1, number
    scrape, asked = probe_logged(daemon, apt_lab, "deb")  # cycle 6 = FULL_EVERY: the full pass
    assert 304 not in index_statuses(asked)
    assert scrape.get("cdnprobe_apt_index_match", file=plain, address=edge) == 0
    assert scrape.get("cdnprobe_apt_index_match", file=plain, address=APT_EDGES[0]) == 1


def test_a_task_asking_for_a_new_name_gets_the_indexes_read_again(
    apt_lab: Lab, published: Published, daemon: RunningDaemon
) -> None:
    """The kept readings of the indexes looked for no package name; a task expecting one
    must not be answered from them (which would say the package is missing everywhere)."""
    for address in APT_EDGES:
        serve(apt_lab, address, published.v2)
    probe_logged(daemon, apt_lab, "deb")  # a full read of the new publish, no names watched
    probe_logged(daemon, apt_lab, "deb")  # the full pass after the reference changed
    _, asked = probe_logged(daemon, apt_lab, "deb")
    assert index_statuses(asked) == {304}
    before = len(apt_lab.access_log())
    doc = task_done(daemon, "deb", {"expect": {"world-cdn": "1.0"}})
    assert doc["consistent"] is True
    asked_again = [line for line in apt_lab.access_log()[before:] if "/binary-" in line]
    assert asked_again and all('" 200 ' in line for line in asked_again)
    (entry,) = doc["report"]["targets"]
    assert all(e["revalidated"] is False for e in entry["edges"])
    probe_logged(daemon, apt_lab, "deb")  # cycle 6: the scheduled full pass
    # with nothing new asked for, the next task is answered with validators again
    doc = task_done(daemon, "deb", {})
    (entry,) = doc["report"]["targets"]
    assert doc["consistent"] is True and all(e["revalidated"] for e in entry["edges"])
    assert any("revalidated:" in note for note in entry["notes"])
