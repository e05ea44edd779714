"""Vantage points where the user meets them: `cdnprobe check --vantage` and a daemon with
`vantages`, against Knot answering by client subnet (eu → 127.0.0.2-3, us → 127.0.0.4 and
::1) and nginx edges where the us region's edges serve an older InRelease."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import cdnprobe
from tests.daemon import one_cycle
from tests.knot import REGIONS, KnotLab
from tests.lab import Lab

PATH = "/dists/stable/InRelease"
NEW, OLD = 1_790_000_000, 1_789_990_000
EU, US = REGIONS


def stage(lab: Lab) -> None:
    lab.write(PATH, b"Suite: stable\nVersion: 2\n", mtime=NEW)
    lab.write(PATH, b"Suite: stable\nVersion: 1\n", edges=list(US.addresses), mtime=OLD)


def vantages(knot: KnotLab) -> list[str]:
    return [f"--vantage={r.name}={r.subnet}@{knot.resolver}" for r in REGIONS]


def test_check_probes_the_union_and_says_which_region_sees_the_stale_edges(
    lab: Lab, knot: KnotLab
) -> None:
    stage(lab)
    args = ("check", lab.url(PATH), "--ca-file", lab.ca_file, *vantages(knot))
    proc = cdnprobe(*args, "--json")
    assert proc.returncode == 1, proc.stderr
    (target,) = json.loads(proc.stdout)["targets"]
    edges = {e["address"]: e for e in target["edges"]}
    assert set(edges) == {*EU.addresses, *US.addresses}
    assert {a: e["seen_by"] for a, e in edges.items()} == {
        **{a: ["eu"] for a in EU.addresses},
        **{a: ["us"] for a in US.addresses},
    }
    assert {a: e["verdict"] for a, e in edges.items()} == {
        **dict.fromkeys(EU.addresses, "ok"),
        **dict.fromkeys(US.addresses, "stale"),
    }
    by_name = {v["name"]: v for v in target["dns"]["vantages"]}
    assert by_name["eu"]["ecs"] == EU.subnet and by_name["us"]["ecs"] == US.subnet
    assert sorted(by_name["us"]["addresses"]) == sorted(US.addresses)
    assert all(v["error"] is None and v["resolver"] == knot.resolver for v in by_name.values())
    table = cdnprobe(*args).stdout
    assert "SEEN-BY" in table
    assert "=> us: 2 of 2 edges serve an older InRelease (127.0.0.4, ::1)" in table
    assert "=> eu:" not in table


def test_a_dead_vantage_does_not_fail_the_check(lab: Lab, knot: KnotLab) -> None:
    lab.write(PATH, b"Suite: stable\n", mtime=NEW)
    proc = cdnprobe(
        "check", lab.url(PATH), "--ca-file", lab.ca_file, "--json", "--timeout", "2",
        f"--vantage=eu={EU.subnet}@{knot.resolver}", "--vantage=asia=192.0.2.0/24@127.0.0.1:9",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (target,) = json.loads(proc.stdout)["targets"]
    errors = {v["name"]: v["error"] for v in target["dns"]["vantages"]}
    assert errors == {"eu": None, "asia": "unreachable"}


def test_the_daemon_exports_each_vantage_and_who_sees_each_edge(
    lab: Lab, knot: KnotLab, tmp_path: Path
) -> None:
    stage(lab)
    listed = "".join(
        f"      - {{name: {r.name}, subnet: '{r.subnet}', resolver: '{knot.resolver}'}}\n"
        for r in REGIONS
    )
    config = tmp_path / "vantages.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: repo\n"
        f"    url: https://repo.test:{lab.port}\n    paths: [{PATH}]\n    interval: 1s\n"
        f"    ca_file: {lab.ca_file}\n    vantages:\n{listed}"
    )
    s = one_cycle(config, "repo")
    assert s.get("cdnprobe_vantage_up", target="repo", vantage="eu") == 1
    assert s.get("cdnprobe_vantage_up", target="repo", vantage="us") == 1
    assert s.get("cdnprobe_vantage_addresses", vantage="us", family="6") == 1
    assert s.get("cdnprobe_vantage_addresses", vantage="eu", family="4") == 2
    assert s.get("cdnprobe_dns_addresses", target="repo", family="4") == 3  # the union
    seen = {(x["address"], x["vantage"]) for x in s.series("cdnprobe_edge_seen", target="repo")}
    assert seen == {*((a, "eu") for a in EU.addresses), *((a, "us") for a in US.addresses)}
    assert s.get("cdnprobe_edge_object_stale", address="::1") == 1
    assert s.get("cdnprobe_object_reference_info", target="repo", path=PATH) == 1


def test_every_vantage_failing_is_each_one_down_at_the_daemon(lab: Lab, tmp_path: Path) -> None:
    """No vantage answers: the name is unresolved, and each vantage says so by its own
    cdnprobe_vantage_up 0 (not silence)."""
    config = tmp_path / "dead.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: repo\n"
        f"    url: https://repo.test:{lab.port}\n    paths: [{PATH}]\n    interval: 1s\n"
        "    timeout: 2s\n    vantages:\n"
        "      - {name: eu, subnet: '198.51.100.0/24', resolver: '127.0.0.1:9'}\n"
        "      - {name: us, subnet: '203.0.113.0/24', resolver: '127.0.0.1:9'}\n"
    )
    s = one_cycle(config, "repo")
    assert s.get("cdnprobe_dns_up", target="repo") == 0
    assert s.get("cdnprobe_vantage_up", target="repo", vantage="eu") == 0
    assert s.get("cdnprobe_vantage_up", target="repo", vantage="us") == 0
