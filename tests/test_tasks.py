"""The daemon's task API, for release pipelines, against the real daemon and nginx lab: many
callers at once share cycles, every answer comes from a cycle that began after its POST,
and bad or unknown requests get one line and fetch nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import FaultEdgeFactory
from tests.daemon import RunningDaemon, http, post_task, started, task_wait
from tests.lab import Lab

PATH = "/dists/stable/InRelease"
NEW, OLD = 1_790_000_000, 1_789_990_000


def config_text(lab: Lab, timeout: str = "10s") -> str:
    return (
        "dns_min_interval: 0s\ntargets:\n  - name: repo\n"
        f"    url: https://repo.test:{lab.port}\n    paths: [{PATH}]\n    interval: 1h\n"
        f'    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n    timeout: {timeout}\n'
    )


@pytest.fixture
def daemon(lab: Lab, tmp_path: Path) -> Iterator[RunningDaemon]:
    lab.write(PATH, b"Suite: stable\nVersion: 2\n", mtime=NEW)
    config = tmp_path / "tasks.yaml"
    config.write_text(config_text(lab))
    with started(config, "repo") as running:
        yield running


def requests_for(lab: Lab) -> int:
    return sum(1 for line in lab.access_log() if PATH in line)


def test_a_task_answers_from_a_cycle_after_its_post(lab: Lab, daemon: RunningDaemon) -> None:
    """An edge changed just before the POST shows in that task's report."""
    lab.write(PATH, b"Suite: stable\nVersion: 1\n", edges=["127.0.0.3"], mtime=OLD)
    status, created = post_task(daemon, "repo")
    assert status == 202 and created["state"] in ("pending", "running")
    assert created["target"] == "repo"
    done = task_wait(daemon, created["id"])
    assert done["state"] == "done" and done["consistent"] is False and done["error"] is None
    (entry,) = done["report"]["targets"]
    verdicts = {e["address"]: e["verdict"] for e in entry["edges"]}
    assert verdicts["127.0.0.3"] == "stale"
    assert done["created"] <= done["finished"]
    status, again = http(f"{daemon.base}/api/v1/checks/{created['id']}")
    assert status == 200 and json.loads(again) == done


def test_fifty_callers_at_once_share_at_most_two_cycles(
    lab: Lab, fault_edge: FaultEdgeFactory, tmp_path: Path
) -> None:
    """A cycle that takes seconds (one edge hangs until the timeout): fifty callers during
    it share the one pending cycle after it, and every one of them gets its answer."""
    lab.write(PATH, b"Suite: stable\nVersion: 2\n", mtime=NEW)
    fault_edge("127.0.0.5", "hang")
    lab.set_dns("repo.test", [*(e.address for e in lab.edges), "127.0.0.5"])
    config = tmp_path / "slow.yaml"
    config.write_text(config_text(lab, timeout="2s"))
    with started(config, "repo") as daemon:
        fifty_callers(lab, daemon)


def fifty_callers(lab: Lab, daemon: RunningDaemon) -> None:
    before = requests_for(lab)
    scrapes: list[int] = []
    stop = threading.Event()

    def scrape_throughout() -> None:
        while not stop.is_set() and len(scrapes) < 500:
            scrapes.append(http(daemon.base + "/metrics")[0])

    scraper = threading.Thread(target=scrape_throughout)
    scraper.start()
    try:
        with ThreadPoolExecutor(50) as pool:
            created = list(pool.map(lambda _: post_task(daemon, "repo"), range(50)))
            answers = list(pool.map(lambda c: task_wait(daemon, c[1]["id"]), created))
    finally:
        stop.set()
        scraper.join(timeout=30)
    assert all(status == 202 for status, _ in created)
    assert len({doc["id"] for doc in answers}) == 50
    assert all(doc["state"] == "done" and doc["consistent"] is False for doc in answers)
    # one running and one pending cycle at most: each asks every nginx edge once
    assert len(lab.edges) < requests_for(lab) - before <= 2 * len(lab.edges)
    assert scrapes and set(scrapes) == {200}
    metrics = daemon.scrape()
    assert metrics.get("cdnprobe_tasks_total", outcome="inconsistent") == 50


def test_until_converged_repeats_until_the_deadline_then_until_consistent(
    lab: Lab, daemon: RunningDaemon
) -> None:
    lab.write(PATH, b"Suite: stable\nVersion: 1\n", edges=["127.0.0.4"], mtime=OLD)
    _, stuck = post_task(daemon, "repo", b'{"until": "converged", "deadline": "3s"}')
    late = task_wait(daemon, stuck["id"])
    assert late["state"] == "done" and late["consistent"] is False
    _, recovering = post_task(daemon, "repo", b'{"until": "converged", "deadline": "60s"}')
    lab.write(PATH, b"Suite: stable\nVersion: 2\n", edges=["127.0.0.4"], mtime=NEW)
    assert task_wait(daemon, recovering["id"])["consistent"] is True


def test_unknown_targets_and_ids_are_404_and_fetch_nothing(lab: Lab, daemon: RunningDaemon) -> None:
    before = requests_for(lab)
    status, doc = post_task(daemon, "https:%2F%2Fevil.example")
    assert status == 404 and "only configured targets" in doc["error"]
    status, doc = post_task(daemon, "nosuchtarget")
    assert status == 404
    assert http(f"{daemon.base}/api/v1/checks/0123456789abcdef")[0] == 404
    assert http(f"{daemon.base}/api/v1/checks/0123456789abcdef/wait?timeout=1")[0] == 404
    assert requests_for(lab) == before


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "bad task body: Expecting property name"),
        (b"[1, 2]", "bad task body: the body must be a JSON object"),
        (b'{"until": "forever"}', "bad task body: until: must be 'converged' or absent"),
        (b'{"deadline": "soon"}', "bad task body: deadline: expected a duration"),
        (
            b'{"colour": "red"}',
            "bad task body: colour: unknown field (known: until, deadline, expect)",
        ),
    ],
)
def test_bad_input_is_400_with_one_line(daemon: RunningDaemon, body: bytes, error: str) -> None:
    status, doc = post_task(daemon, "repo", body)
    assert status == 400
    assert doc["error"].startswith(error) and "\n" not in doc["error"]


def test_wait_timeout_is_bounded(daemon: RunningDaemon) -> None:
    _, created = post_task(daemon, "repo")
    status, text = http(f"{daemon.base}/api/v1/checks/{created['id']}/wait?timeout=301")
    assert status == 400 and "between 0 and 300" in json.loads(text)["error"]
    assert task_wait(daemon, created["id"])["state"] == "done"
