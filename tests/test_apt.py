"""APT: cdnprobe against a real aptly repository on nginx edges, checked against the real
`apt-get update` on each edge: cdnprobe flags exactly the edges where apt fails, with the
same kind of failure, and none where apt succeeds."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.aptrepo import INDEX, Published, apt_get_update, publish_two_versions
from tests.conftest import cdnprobe
from tests.lab import HOST, EdgeSpec, Lab, free_port

GOOD, OLD, SIZE, HASH, GZ_ONLY = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "::1"
EDGES = (GOOD, OLD, SIZE, HASH, GZ_ONLY)


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """Unsigned (apt runs with trusted=yes here, cdnprobe with --trusted)."""
    return publish_two_versions(tmp_path_factory.mktemp("aptly"), signed=False)


def stage(lab: Lab, published: Published) -> None:
    """Each edge gets the repository in one state."""
    trees = {
        GOOD: published.v2,
        OLD: published.v1,
        SIZE: published.v2,
        HASH: published.v2,
        GZ_ONLY: published.v2,
    }
    for address, tree in trees.items():
        shutil.rmtree(lab.docroot(address), ignore_errors=True)
        shutil.copytree(tree, lab.docroot(address))
    # mixed: the new Release, but the old Packages.bz2 (the compression apt fetches)
    shutil.copy(published.v1 / INDEX / "Packages.bz2", lab.docroot(SIZE) / INDEX / "Packages.bz2")
    # corrupt: same size, other bytes
    corrupt = lab.docroot(HASH) / INDEX / "Packages.bz2"
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    # mixed, but only in a compression apt does not fetch
    shutil.copy(published.v1 / INDEX / "Packages.gz", lab.docroot(GZ_ONLY) / INDEX / "Packages.gz")


@pytest.fixture
def apt_lab(tmp_path: Path, ca: trustme.CA, published: Published) -> Iterator[Lab]:
    lab = Lab(tmp_path / "lab", ca, [EdgeSpec(a) for a in EDGES])
    lab.http_port = free_port(["127.0.0.2"])
    lab.start()
    try:
        stage(lab, published)
        yield lab
    finally:
        lab.stop()


def check_apt(lab: Lab, *extra: str) -> tuple[int, dict[str, Any]]:
    """--trusted: these repositories are unsigned, and apt_get_update runs apt with
    [trusted=yes] for them (without it, apt refuses every edge: not_signed)."""
    proc = cdnprobe(
        "check", "--apt", f"http://{HOST}:{lab.http_port}/", "--suite", "stable",
        "--resolver", lab.resolver, "--json", "--trusted", *extra,
    )  # fmt: skip
    assert proc.stderr == ""
    return proc.returncode, json.loads(proc.stdout)


def test_cdnprobe_flags_exactly_the_edges_apt_fails_on(apt_lab: Lab, tmp_path: Path) -> None:
    code, doc = check_apt(apt_lab)
    (target,) = doc["targets"]
    edges = {e["address"]: e for e in target["edges"]}
    for address in EDGES:
        host = f"[{address}]" if ":" in address else address
        apt = apt_get_update(tmp_path / f"apt-{address}", f"http://{host}:{apt_lab.http_port}/")
        verdict = edges[address]["apt"]
        assert verdict["would_fail"] == (not apt.ok), (address, apt.output, verdict)
        if not apt.ok:
            fetched = [p for p in verdict["problems"] if p["file"].endswith("Packages.bz2")]
            assert fetched and fetched[0]["reason"] == apt.failure, (address, apt.output)
    assert code == 1


def test_verdicts_and_problems_per_edge(apt_lab: Lab) -> None:
    _, doc = check_apt(apt_lab)
    (target,) = doc["targets"]
    assert target["url"] == f"http://{HOST}:{apt_lab.http_port}/dists/stable/InRelease"
    edges = {e["address"]: e for e in target["edges"]}
    assert {a: e["verdict"] for a, e in edges.items()} == {
        GOOD: "ok", OLD: "stale", SIZE: "divergent", HASH: "divergent", GZ_ONLY: "ok",
    }  # fmt: skip
    assert edges[OLD]["lag_seconds"] >= 1
    assert edges[OLD]["apt"]["would_fail"] is False
    good = edges[GOOD]["apt"]
    assert good["problems"] == [] and good["signed"] is False and good["acquire_by_hash"] is False
    assert good["release_date"].endswith("UTC") and good["valid_until"] is None
    assert good["packages"] == {"main/binary-amd64/Packages": 2}
    assert edges[OLD]["apt"]["packages"] == {"main/binary-amd64/Packages": 1}
    (size,) = edges[SIZE]["apt"]["problems"]
    assert size["file"] == "main/binary-amd64/Packages.bz2" and size["reason"] == "size_mismatch"
    assert size["expected_size"] != size["size"]
    (digest,) = edges[HASH]["apt"]["problems"]
    assert digest["reason"] == "hash_mismatch" and digest["expected_size"] == digest["size"]
    (gz,) = edges[GZ_ONLY]["apt"]["problems"]
    assert (
        gz["file"] == "main/binary-amd64/Packages.gz"
        and edges[GZ_ONLY]["apt"]["would_fail"] is False
    )


def test_table_says_what_apt_will_say(apt_lab: Lab) -> None:
    proc = cdnprobe(
        "check",
        "--apt",
        f"http://{HOST}:{apt_lab.http_port}/",
        "--suite",
        "stable",
        "--resolver",
        apt_lab.resolver,
        "--trusted",
    )
    assert proc.returncode == 1
    assert (
        f"{SIZE}: apt-get update fails: main/binary-amd64/Packages.bz2: File has unexpected size"
        in proc.stdout
    )
    assert (
        f"{HASH}: apt-get update fails: main/binary-amd64/Packages.bz2: Hash Sum mismatch"
        in proc.stdout
    )
    assert f"{GZ_ONLY}: apt-get update passes, but: main/binary-amd64/Packages.gz" in proc.stdout


def test_expected_package_missing_on_an_edge(apt_lab: Lab) -> None:
    """--expect world-cdn=1.0: the edge still on version 1 lacks the upload."""
    _, doc = check_apt(apt_lab, "--expect", "world-cdn=1.0", "--expect", "hello-cdn=2.0")
    edges = {e["address"]: e for e in doc["targets"][0]["edges"]}
    missing = [
        p["detail"]
        for p in edges[OLD]["apt"]["problems"]
        if p["reason"] == "expected_package_missing"
    ]
    assert missing == ["world-cdn=1.0", "hello-cdn=2.0"]
    assert not [
        p for p in edges[GOOD]["apt"]["problems"] if p["reason"] == "expected_package_missing"
    ]


def test_consistent_repository_exits_0(apt_lab: Lab, published: Published) -> None:
    for address in EDGES:
        shutil.rmtree(apt_lab.docroot(address))
        shutil.copytree(published.v2, apt_lab.docroot(address))
    code, doc = check_apt(apt_lab, "--expect", "world-cdn=1.0")
    assert code == 0
    assert {e["verdict"] for e in doc["targets"][0]["edges"]} == {"ok"}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["check", "--apt", "http://repo.test/"], "--apt needs at least one --suite"),
        (["check", "--suite", "stable", "http://repo.test/x"], "go with --apt"),
        (
            ["check", "--apt", "http://repo.test/", "--suite", "s", "--expect", "nover"],
            "--expect: expected name=version",
        ),
        (["check", "--apt", "ftp://repo.test/", "--suite", "s"], "scheme must be http or https"),
    ],
)
def test_bad_apt_usage_exits_2(argv: list[str], needle: str) -> None:
    proc = cdnprobe(*argv)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1 and needle in proc.stderr


def test_daemon_exports_the_apt_metrics(apt_lab: Lab, tmp_path: Path) -> None:
    """`type: apt` in the daemon: the contract's APT series for every edge."""
    from tests.daemon import one_cycle

    config = tmp_path / "apt.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: deb\n    type: apt\n"
        f"    url: http://{HOST}:{apt_lab.http_port}/\n    suites: [stable]\n    trusted: true\n"
        f'    resolvers: ["{apt_lab.resolver}"]\n    interval: 1s\n    expect: ["world-cdn=1.0"]\n'
    )
    s = one_cycle(config, "deb")
    fails = {
        a: s.get("cdnprobe_apt_edge_would_fail", target="deb", suite="stable", address=a)
        for a in EDGES
    }
    assert fails == {GOOD: 0, OLD: 0, SIZE: 1, HASH: 1, GZ_ONLY: 0}
    date = {a: s.get("cdnprobe_apt_release_timestamp_seconds", address=a) for a in (GOOD, OLD)}
    assert date[OLD] is not None and date[GOOD] is not None and date[OLD] < date[GOOD]
    assert s.get("cdnprobe_apt_packages", file="main/binary-amd64/Packages", address=GOOD) == 2
    assert s.get("cdnprobe_apt_packages", file="main/binary-amd64/Packages", address=OLD) == 1
    gz = "main/binary-amd64/Packages.gz"
    assert s.get("cdnprobe_apt_index_match", file=gz, address=GZ_ONLY) == 0
    assert s.get("cdnprobe_apt_index_match", file=gz, address=GOOD) == 1
    assert s.get("cdnprobe_apt_problems", address=OLD, reason="expected_package_missing") == 1
    assert s.get("cdnprobe_edge_object_stale", path="/dists/stable/InRelease", address=OLD) == 1
    assert s.get("cdnprobe_apt_release_valid_until_seconds") is None  # aptly sets none


def test_missing_by_hash_is_reported_but_apt_falls_back(tmp_path: Path, ca: trustme.CA) -> None:
    """With Acquire-By-Hash, an edge missing the by-hash files: apt falls back to the plain
    name and succeeds, so cdnprobe reports by_hash_missing without would_fail."""
    from tests.aptrepo import publish_by_hash

    tree = publish_by_hash(tmp_path / "pub")
    lab = Lab(tmp_path / "lab", ca, [EdgeSpec(GOOD), EdgeSpec(OLD)])
    lab.http_port = free_port(["127.0.0.2"])
    lab.start()
    try:
        for address in (GOOD, OLD):
            shutil.rmtree(lab.docroot(address))
            shutil.copytree(tree, lab.docroot(address))
        shutil.rmtree(lab.docroot(OLD) / INDEX / "by-hash")
        _, doc = check_apt(lab)
        apt = apt_get_update(tmp_path / "apt", f"http://{OLD}:{lab.http_port}/")
    finally:
        lab.stop()
    edges = {e["address"]: e["apt"] for e in doc["targets"][0]["edges"]}
    assert edges[GOOD]["acquire_by_hash"] is True and edges[GOOD]["problems"] == []
    reasons = {p["reason"] for p in edges[OLD]["problems"]}
    assert reasons == {"by_hash_missing"}
    assert apt.ok, apt.output
    assert edges[OLD]["would_fail"] is False


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_expired_release_agrees_with_apt(apt_lab: Lab, tmp_path: Path, signed: bool) -> None:
    """A Release past its Valid-Until, signed (InRelease) or not: apt refuses it, and cdnprobe
    says expired and would_fail; `signed` tells the two apart."""
    from tests.aptrepo import gnupg_dir, sign_release, stop_gpg_agent

    dists = apt_lab.docroot(GOOD) / "dists/stable"
    text = (dists / "Release").read_text()
    (dists / "Release").write_text(
        text.replace(
            "Architectures:", "Valid-Until: Sun, 01 Nov 2026 00:00:00 UTC\nArchitectures:", 1
        )
    )
    key = sign_release(dists, tmp_path) if signed else None
    stop_gpg_agent(gnupg_dir(tmp_path))
    _, doc = check_apt(apt_lab)
    apt = apt_get_update(tmp_path / "apt", f"http://{GOOD}:{apt_lab.http_port}/", key)
    edge = next(e for e in doc["targets"][0]["edges"] if e["address"] == GOOD)
    assert edge["apt"]["signed"] is signed
    # no --keyring: a signature is detected, not verified (the contract's APT options)
    assert edge["apt"]["signature"] == ("not_verified" if signed else "not_signed")
    assert edge["apt"]["valid_until"] == "Sun, 01 Nov 2026 00:00:00 UTC"
    assert [p["reason"] for p in edge["apt"]["problems"]] == ["expired"]
    assert not apt.ok and apt.failure == "expired", apt.output
    assert edge["apt"]["would_fail"] is True
