"""`--shard INDEX/COUNT` at the daemon: three replicas over one config against the nginx lab.
Each replica probes and exports only its own targets, and the edges see each target's
requests once, not once per replica; a target added or removed by SIGHUP follows its owner."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from prober.daemon.shard import shard_of
from tests.daemon import RunningDaemon, Scrape
from tests.lab import Lab

# Names whose shard of 3 is known (sha256 of the name, mod 3): one target per replica, and
# one more for the second replica, added later by SIGHUP.
OWNERS = {"debian": 0, "repo": 1, "c": 2}
ADDED = "added"


def config_text(lab: Lab, names: list[str]) -> str:
    # One cycle per target in the test's lifetime: an hour between cycles.
    targets = "".join(
        f"  - name: {name}\n    url: https://repo.test:{lab.port}\n    paths: [/{name}.txt]\n"
        f'    interval: 1h\n    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n'
        for name in names
    )
    return f"dns_min_interval: 0s\ntargets:\n{targets}"


@pytest.fixture
def replicas(lab: Lab, tmp_path: Path) -> Iterator[list[RunningDaemon]]:
    for name in [*OWNERS, ADDED]:
        lab.write(f"/{name}.txt", f"{name}\n".encode())
    config = tmp_path / "shared.yaml"
    config.write_text(config_text(lab, list(OWNERS)))
    started = []
    try:
        for index in range(3):
            daemon = RunningDaemon(config, extra_args=["--shard", f"{index}/3"])
            daemon.log_path = tmp_path / f"replica{index}.log"
            started.append(daemon.start())
        yield started
    finally:
        for daemon in started:
            daemon.kill()


def cycled(scrape: Scrape) -> set[str]:
    return {s["target"] for s in scrape.series("cdnprobe_cycles_total")}


def requests_per_path(lab: Lab) -> Counter[str]:
    return Counter(line.split('"')[1].split()[1] for line in lab.access_log() if '"GET' in line)


def test_each_replica_probes_only_its_own_targets(lab: Lab, replicas: list[RunningDaemon]) -> None:
    assert {name: shard_of(name, 3) for name in [*OWNERS, ADDED]} == {**OWNERS, ADDED: 1}
    for index, daemon in enumerate(replicas):
        mine = {name for name, owner in OWNERS.items() if owner == index}
        scrape = daemon.wait_for(
            lambda s, mine=mine: all(s.get("cdnprobe_cycles_total", target=t) == 1 for t in mine),
            what=f"the first cycle of replica {index}",
        )
        assert cycled(scrape) == mine
        assert {s["target"] for s in scrape.series("cdnprobe_edge_object_match")} == mine
        assert scrape.get("cdnprobe_shard_info", index=str(index), count="3") == 1
    edges = len(lab.edges)
    # Once per edge: three unsharded replicas would have asked every edge three times.
    assert requests_per_path(lab) == {f"/{name}.txt": edges for name in OWNERS}


def test_sighup_starts_an_added_target_only_on_its_owner_and_stops_a_removed_one(
    lab: Lab, replicas: list[RunningDaemon]
) -> None:
    for daemon in replicas:
        daemon.wait_for(lambda s: len(cycled(s)) == 1, what="the first cycle")
    replicas[0].config_path.write_text(config_text(lab, ["debian", "repo", ADDED]))
    for daemon in replicas:
        daemon.signal(signal.SIGHUP)
    owner = replicas[OWNERS["repo"]]
    scrape = owner.wait_for(
        lambda s: s.get("cdnprobe_cycles_total", target=ADDED) == 1, what="the added target"
    )
    assert cycled(scrape) == {"repo", ADDED}
    gone = replicas[OWNERS["c"]].wait_for(lambda s: not cycled(s), what="the removed target")
    assert not gone.series("cdnprobe_edge_object_match")
    first = replicas[OWNERS["debian"]].wait_for(
        lambda s: (
            s.get("cdnprobe_config_last_reload_successful") == 1 and "reloaded" in replicas[0].log()
        ),
        what="the reload of replica 0",
    )
    assert cycled(first) == {"debian"}
    assert requests_per_path(lab)[f"/{ADDED}.txt"] == len(lab.edges)
