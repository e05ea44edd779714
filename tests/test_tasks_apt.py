"""The task API as a release pipeline uses it after an aptly publish: `"expect": {"NAME":
"VERSION"}` in the task body, judged against each edge's own indexes in a cycle shared with
other callers, while the target's own (scheduled) verdicts stay what its config says."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.aptrepo import Published, serve
from tests.conftest import APT_EDGES
from tests.daemon import RunningDaemon, http, post_task, started, task_wait
from tests.faults import FaultEdge
from tests.lab import HOST, Lab

NEW_PACKAGE = {"world-cdn": "1.0"}  # only in the second publish


@pytest.fixture
def daemon(apt_lab: Lab, tmp_path: Path) -> Iterator[RunningDaemon]:
    config = tmp_path / "apt-tasks.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: deb\n    type: apt\n"
        f"    url: http://{HOST}:{apt_lab.http_port}/\n    suites: [stable]\n"
        f'    resolvers: ["{apt_lab.resolver}"]\n    interval: 1h\n    timeout: 2s\n'
        "  - name: plain\n"
        f"    url: http://{HOST}:{apt_lab.http_port}/\n    paths: [/dists/stable/Release]\n"
        f'    resolvers: ["{apt_lab.resolver}"]\n    interval: 1h\n'
    )
    with started(config, "deb") as running:
        yield running


def answer(daemon: RunningDaemon, task_id: str, timeout: float = 90) -> dict[str, Any]:
    doc = task_wait(daemon, task_id, timeout)
    assert doc["state"] == "done", doc
    return doc


def edges(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (target,) = doc["report"]["targets"]
    return {e["address"]: e for e in target["edges"]}


def missing(edge: dict[str, Any]) -> list[str]:
    return [
        p.get("detail", "")
        for p in (edge.get("apt") or {}).get("problems", [])
        if p.get("reason") == "expected_package_missing"
    ]


def test_expect_in_a_task_body_is_judged_per_task_on_a_shared_cycle(
    apt_lab: Lab, daemon: RunningDaemon
) -> None:
    """Every edge serves the first publish, consistently: a task expecting the second
    publish's new package is not consistent (each edge named without it), a task without
    expectations on the same cycle is, and the target's exported verdicts are unchanged."""
    before = len(apt_lab.access_log())
    (s1, expecting), (s2, plain) = (
        post_task(daemon, "deb", {"expect": NEW_PACKAGE}),
        post_task(daemon, "deb"),
    )
    assert s1 == s2 == 202
    with_expect, without = answer(daemon, expecting["id"]), answer(daemon, plain["id"])
    assert without["consistent"] is True
    assert with_expect["consistent"] is False
    assert {a: e["verdict"] for a, e in edges(with_expect).items()} == dict.fromkeys(
        APT_EDGES, "divergent"
    )
    assert all(missing(e) == ["world-cdn=1.0"] for e in edges(with_expect).values())
    assert all(not missing(e) for e in edges(without).values())
    # both came from one cycle (the two POSTs were made while none was running, so the
    # second shares the first's cycle or the pending one after it): each edge asked once
    # or twice for its InRelease, never more
    inreleases = [line for line in apt_lab.access_log()[before:] if "InRelease" in line]
    assert len(APT_EDGES) <= len(inreleases) <= 2 * len(APT_EDGES)
    metrics = daemon.scrape()
    for address in APT_EDGES:
        assert metrics.get("cdnprobe_edge_object_match", target="deb", address=address) == 1
        assert (
            metrics.get("cdnprobe_apt_problems", address=address, reason="expected_package_missing")
            is None
        )


def test_until_converged_with_expect_ends_when_the_last_edge_has_the_package(
    apt_lab: Lab, published: Published, daemon: RunningDaemon
) -> None:
    """The pipeline's call after its publish: the edges switch one by one; the task is done
    and consistent only once every edge lists world-cdn 1.0 (and not at the switch of the
    first two, when the third still serves the old publish)."""
    serve(apt_lab, APT_EDGES[0], published.v2)
    status, created = post_task(
        daemon, "deb", {"until": "converged", "deadline": "60s", "expect": NEW_PACKAGE}
    )
    assert status == 202
    time.sleep(1.5)
    serve(apt_lab, APT_EDGES[1], published.v2)
    time.sleep(1.5)
    status, text = http(f"{daemon.base}/api/v1/checks/{created['id']}")
    assert json.loads(text)["state"] in ("pending", "running")  # the third edge is still old
    switched = time.time()
    serve(apt_lab, APT_EDGES[2], published.v2)
    done = answer(daemon, created["id"])
    assert done["consistent"] is True
    assert all(e["verdict"] == "ok" and not missing(e) for e in edges(done).values())
    finished = time.mktime(time.strptime(done["finished"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert finished >= int(switched)


def test_until_converged_with_expect_stops_at_the_deadline(
    apt_lab: Lab, published: Published, daemon: RunningDaemon
) -> None:
    for address in APT_EDGES[:2]:
        serve(apt_lab, address, published.v2)
    _, created = post_task(
        daemon, "deb", {"until": "converged", "deadline": "4s", "expect": NEW_PACKAGE}
    )
    done = answer(daemon, created["id"])
    assert done["consistent"] is False
    laggard = APT_EDGES[2]
    assert missing(edges(done)[laggard]) == ["world-cdn=1.0"]
    assert edges(done)[laggard]["verdict"] != "ok"
    assert all(not missing(edges(done)[a]) for a in APT_EDGES[:2])


@pytest.mark.parametrize(
    ("target", "body", "error"),
    [
        ("plain", {"expect": NEW_PACKAGE}, "bad task body: expect: only for apt targets"),
        ("deb", {"expect": {}}, "bad task body: expect: must be an object of package names"),
        ("deb", {"expect": ["world-cdn=1.0"]}, "bad task body: expect: must be an object"),
        ("deb", {"expect": {"world-cdn": 1}}, "bad task body: expect: 'world-cdn': a package"),
        ("deb", {"expect": {" ": "1.0"}}, "bad task body: expect: ' ': a package name"),
    ],
)
def test_bad_expectations_are_400_with_one_line_and_fetch_nothing(
    apt_lab: Lab, daemon: RunningDaemon, target: str, body: dict[str, Any], error: str
) -> None:
    before = len(apt_lab.access_log())
    status, doc = post_task(daemon, target, body)
    assert status == 400
    assert doc["error"].startswith(error) and "\n" not in doc["error"]
    assert len(apt_lab.access_log()) == before


def test_many_pipelines_with_different_expectations_share_cycles(
    apt_lab: Lab, published: Published, daemon: RunningDaemon, ca: trustme.CA
) -> None:
    """Twenty callers during a slow cycle (a fourth edge never answers until the timeout),
    half waiting for the new package, half for a version the second publish removed: the one
    pending cycle after it answers all of them, each by its own expectation."""
    for address in APT_EDGES:
        serve(apt_lab, address, published.v2)
    silent = FaultEdge(["127.0.0.5"], apt_lab.http_port, "silent", ca).start()
    try:
        apt_lab.set_dns(HOST, [*APT_EDGES, "127.0.0.5"])
        status, first = post_task(daemon, "deb")  # starts the slow cycle
        assert status == 202
        time.sleep(0.5)
        before = len(apt_lab.access_log())
        bodies = [{"expect": NEW_PACKAGE}, {"expect": {"hello-cdn": "1.0"}}] * 10
        with ThreadPoolExecutor(len(bodies)) as pool:
            created = list(pool.map(lambda body: post_task(daemon, "deb", body), bodies))
            docs = list(pool.map(lambda c: answer(daemon, c[1]["id"]), created))
        answer(daemon, first["id"])
    finally:
        silent.stop()
    assert all(status == 202 for status, _ in created)
    for body, doc in zip(bodies, docs, strict=True):
        ((name, version),) = body["expect"].items()
        found = {a: missing(e) for a, e in edges(doc).items() if a in APT_EDGES}
        wanted = [] if name == "world-cdn" else [f"{name}={version}"]
        assert found == dict.fromkeys(APT_EDGES, wanted)
    # the running cycle, then one pending cycle for all twenty: each nginx edge asked once
    inreleases = [line for line in apt_lab.access_log()[before:] if "InRelease" in line]
    assert len(inreleases) == len(APT_EDGES)
    assert len({doc["report"]["checked_at"] for doc in docs}) == 1


def test_a_task_goes_on_across_a_reload_that_changes_its_target(
    apt_lab: Lab, published: Published, daemon: RunningDaemon
) -> None:
    """A reload that changes the target replaces its runner: a waiting `until: converged`
    task goes on with the new one, its package still watched there, and converges."""
    import signal

    _, created = post_task(
        daemon, "deb", {"until": "converged", "deadline": "60s", "expect": NEW_PACKAGE}
    )
    time.sleep(1.0)
    config = daemon.config_path
    config.write_text(config.read_text().replace("timeout: 2s", "timeout: 3s", 1))
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda s: s.get("cdnprobe_config_last_reload_successful") == 1)
    time.sleep(1.0)
    assert "reload" in daemon.log() or "config" in daemon.log()
    _, text = http(f"{daemon.base}/api/v1/checks/{created['id']}")
    assert json.loads(text)["state"] in ("pending", "running"), text
    for address in APT_EDGES:
        serve(apt_lab, address, published.v2)
    done = answer(daemon, created["id"])
    assert done["error"] is None and done["consistent"] is True, done
    assert all(not missing(e) for e in edges(done).values())
    # the answer came from the live runner's cycle (what /metrics exports), not the retired one
    metrics = daemon.scrape()
    packages = "main/binary-amd64/Packages"
    assert all(
        metrics.get("cdnprobe_apt_packages", file=packages, address=a) == 2 for a in APT_EDGES
    )
