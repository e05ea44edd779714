"""`cdnprobe wait`, the publish gate, through the real CLI: an aptly repository published in
two versions, nginx edges that switch from the old publish to the new one at different
moments (as a CDN's sync does), and the gate that opens exactly when the last edge has."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from tests.aptrepo import Published, serve
from tests.conftest import APT_EDGES, ROOT, cdnprobe
from tests.lab import HOST, Lab


def start_wait(lab: Lab, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "prober", "wait", "--apt", f"http://{HOST}:{lab.http_port}/",
            "--suite", "stable", "--expect", "world-cdn=1.0", "--resolver", lab.resolver,
            "--json", *extra]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish(proc: subprocess.Popen[str], timeout_s: float = 90) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=timeout_s)
    return proc.returncode, json.loads(out), err


def test_the_gate_opens_in_the_round_after_the_last_edge_switched(
    apt_lab: Lab, published: Published
) -> None:
    proc = start_wait(apt_lab, "--every", "1s", "--deadline", "60s")
    switched = {}
    try:
        for address in APT_EDGES:
            time.sleep(2.5)
            serve(apt_lab, address, published.v2)
            switched[address] = time.time()
        code, doc, err = finish(proc)
    finally:
        proc.kill()
    assert code == 0, err
    assert doc["wait"]["converged"] is True
    edges = {e["address"]: e for e in doc["targets"][0]["edges"]}
    assert {a: e["verdict"] for a, e in edges.items()} == dict.fromkeys(APT_EDGES, "ok")
    rounds = [line for line in err.splitlines() if line.startswith("round ")]
    assert len(rounds) == doc["wait"]["rounds"] >= 4
    assert rounds[0].startswith("round 1: 0 of 3 edges converged; waiting for 127.0.0.2")
    assert rounds[-1] == f"round {len(rounds)}: 3 of 3 edges converged"
    assert "waiting for 127.0.0.4" in rounds[-2]  # the round before saw the last edge lag
    converged_at = [edges[a]["converged_at"] for a in APT_EDGES]
    assert converged_at == sorted(converged_at)  # in the order the edges switched
    last = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(switched[APT_EDGES[-1]] - 1))
    assert converged_at[-1] >= last


def test_at_the_deadline_it_exits_1_naming_the_edge_that_never_switched(
    apt_lab: Lab, published: Published
) -> None:
    for address in APT_EDGES[:2]:
        serve(apt_lab, address, published.v2)
    started = time.monotonic()
    code, doc, err = finish(start_wait(apt_lab, "--every", "1s", "--deadline", "4s"))
    assert code == 1
    assert time.monotonic() - started < 30
    assert doc["wait"]["converged"] is False and doc["wait"]["rounds"] >= 2
    edges = {e["address"]: e for e in doc["targets"][0]["edges"]}
    assert edges["127.0.0.4"]["converged_at"] is None
    assert edges["127.0.0.2"]["converged_at"] is not None
    assert err.splitlines()[-1].startswith("cdnprobe: not converged after")
    assert err.splitlines()[-1].endswith(": 127.0.0.4")


def test_a_round_that_overruns_every_is_followed_at_once_never_overlapped(apt_lab: Lab) -> None:
    """--every shorter than a round: rounds run back to back, one at a time (the edges'
    access log shows each round's InRelease requests together, never interleaved)."""
    code, doc, _ = finish(start_wait(apt_lab, "--every", "0.01s", "--deadline", "2s"))
    assert code == 1
    inreleases = [line for line in apt_lab.access_log() if "InRelease" in line]
    assert len(inreleases) == doc["wait"]["rounds"] * len(APT_EDGES)


def test_wait_usage_and_unresolvable_names() -> None:
    bad = cdnprobe("wait", "--every", "0", "http://repo.test/")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "cdnprobe: argument --every: must be more than 0 and at most 7d, got '0' "
        "(see cdnprobe wait --help)"
    ]
    none = cdnprobe("wait", "--deadline", "1s", "--every", "0.5s", "--resolver", "127.0.0.1:9",
                    "--timeout", "0.5", "http://missing.test/x", timeout=60)  # fmt: skip
    assert none.returncode == 3
    assert none.stderr.splitlines()[-1].startswith("cdnprobe: missing.test: ")


def test_converged_at_is_the_first_round_from_which_the_edge_stayed_ok() -> None:
    """An edge that was ok, went bad and came back converged when it came back."""
    from datetime import UTC, datetime, timedelta

    from prober.compare import compare_object
    from prober.model import DnsAnswer, Edge, Observation, Report, TargetReport
    from prober.wait import Convergence

    edge, other = Edge("192.0.2.1", 4), Edge("192.0.2.2", 4)
    new = Observation(200, 3, 3, "a" * 64, last_modified="Tue, 01 Dec 2026 10:00:00 GMT")
    old = Observation(200, 3, 3, "b" * 64, last_modified="Tue, 01 Dec 2026 09:00:00 GMT")
    t0 = datetime(2026, 12, 1, tzinfo=UTC)

    def round_with(first: Observation) -> Report:
        obj = compare_object("https://h/p", "h", "/p", [(edge, first), (other, new)])
        dns = DnsAnswer("h", (edge, other), "test")
        return Report(t0, (TargetReport("t", "h", dns, (obj,), t0, t0),))

    convergence = Convergence()
    moments = [t0 + timedelta(seconds=i) for i in range(4)]
    for moment, first in zip(moments, (new, old, new, new), strict=True):
        convergence.update(round_with(first), moment)
    assert convergence.since == {("t", edge.address): moments[2], ("t", other.address): moments[0]}
    assert convergence.progress(4) == "round 4: 2 of 2 edges converged"
