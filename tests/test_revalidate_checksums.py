"""Bytes only when they changed, for a download site (`revalidate: {full_every: N}` on a
`type: checksums` target), at the daemon against nginx edges: between full passes each edge
is asked for the manifest and every artifact with its own last validators (every edge's
files have another mtime, so another edge's validators would get a 200); a 304 reuses that
edge's own last hash and its own manifest as parsed, labelled with their age; a changed
artifact is seen in the next cycle; one corrupted in place (same size and mtime) is caught
at the next full pass, and not before; `rehash_every` and `revalidate` are one or the other."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from prober.config import parse_config
from tests.conftest import cdnprobe
from tests.daemon import (
    RunningDaemon,
    Scrape,
    post_task,
    probe_logged,
    received,
    started,
    task_wait,
)
from tests.lab import HOST, EdgeSpec, Lab, free_port

EDGES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "::1")
EDGE = "127.0.0.3"  # the one a test changes
NEWER = "127.0.0.4"  # serves its own, newer release: its own manifest and tool
FULL_EVERY = 4
MTIME = 1_790_000_000
V1, V2 = b"toolchain v1.0 " * 5000, b"toolchain v2 " * 5000
DOC = b"release notes\n"
ARTIFACTS = ("NOTES", "tool.tar.gz")


def sums(entries: dict[str, bytes]) -> bytes:
    return "".join(
        f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(entries.items())
    ).encode()


@pytest.fixture
def sums_lab(tmp_path: Path, ca: trustme.CA) -> Iterator[Lab]:
    """Every edge serves release v1 but NEWER, which serves v2 with a manifest saying so:
    each edge agrees with its own manifest, not with the others'."""
    lab = Lab(tmp_path / "lab", ca, [EdgeSpec(a) for a in EDGES])
    lab.http_port = free_port(["127.0.0.2"])
    lab.start()
    try:
        for i, address in enumerate(EDGES):
            tool = V2 if address == NEWER else V1
            mtime = MTIME + 1000 * i
            lab.write("/dl/tool.tar.gz", tool, edges=[address], mtime=mtime)
            lab.write("/dl/NOTES", DOC, edges=[address], mtime=mtime)
            manifest = sums({"tool.tar.gz": tool, "NOTES": DOC})
            lab.write("/dl/SHA256SUMS", manifest, edges=[address], mtime=mtime)
        yield lab
    finally:
        lab.stop()


def config_text(lab: Lab, extra: str = "") -> str:
    return (
        "dns_min_interval: 0s\ntargets:\n  - name: dl\n    type: checksums\n"
        f"    url: http://{HOST}:{lab.http_port}\n    manifest: /dl/SHA256SUMS\n"
        f'    resolvers: ["{lab.resolver}"]\n    interval: 1h\n'
        f"    revalidate: {{full_every: {FULL_EVERY}}}\n{extra}"
    )


@pytest.fixture
def daemon(sums_lab: Lab, tmp_path: Path) -> Iterator[RunningDaemon]:
    config = tmp_path / "sums-revalidate.yaml"
    config.write_text(config_text(sums_lab))
    with started(config, "dl") as running:
        yield running


def report(daemon: RunningDaemon) -> dict[str, dict[str, Any]]:
    """One cycle now through a task (the daemon's JSON): its entries by name."""
    _, created = post_task(daemon, "dl", {})
    doc = task_wait(daemon, created["id"])
    return {entry["name"]: entry for entry in doc["report"]["targets"]}


def match(scrape: Scrape, address: str, artifact: str = "tool.tar.gz") -> float | None:
    labels = {"artifact": artifact, "address": address}
    return scrape.get("cdnprobe_artifact_checksum_match", **labels)


def age(scrape: Scrape, address: str, artifact: str = "tool.tar.gz") -> float | None:
    labels = {"artifact": artifact, "address": address}
    return scrape.get("cdnprobe_artifact_hash_age_cycles", **labels)


def test_an_unchanged_site_is_answered_with_304s_and_each_edges_own_manifest(
    sums_lab: Lab, daemon: RunningDaemon
) -> None:
    """Cycles 2 and 3: the manifest and every artifact from every edge is a 304 to that
    edge's own validators; each artifact is judged by its reused hash against the edge's
    own reused manifest (NEWER's v2 matches NEWER's manifest), labelled with the age."""
    first = daemon.scrape()
    assert {match(first, a, n) for a in EDGES for n in ARTIFACTS} == {1}
    second, asked = probe_logged(daemon, sums_lab, "dl")
    assert len(asked) == (1 + len(ARTIFACTS)) * len(EDGES)
    assert {status for _, _, status in asked} == {304}
    assert {match(second, a, n) for a in EDGES for n in ARTIFACTS} == {1}
    assert {age(second, a, n) for a in EDGES for n in ARTIFACTS} == {1}
    assert {
        second.get("cdnprobe_edge_object_hash_age_cycles", path="/dl/SHA256SUMS", address=a)
        for a in EDGES
    } == {1}
    entries = report(daemon)  # cycle 3
    assert received(daemon.scrape()) == received(first)  # no body in two cycles
    manifest, tool = entries["manifest"], entries["tool.tar.gz"]
    assert all(e["revalidated"] and e["hash_age_cycles"] == 2 for e in manifest["edges"])
    assert all(e["revalidated"] and e["hash_age_cycles"] == 2 for e in tool["edges"])
    expected = {e["address"]: e["check"]["expected"] for e in tool["edges"]}
    assert expected[NEWER] == hashlib.sha256(V2).hexdigest()  # its own manifest, reused
    assert expected[EDGE] == hashlib.sha256(V1).hexdigest()
    assert all(e["check"]["match"] for e in tool["edges"])
    assert any("revalidated:" in note for note in tool["notes"])
    assert not any("rehash_every" in note for note in tool["notes"])


def test_a_changed_artifact_is_seen_in_the_next_cycle(sums_lab: Lab, daemon: RunningDaemon) -> None:
    probe_logged(daemon, sums_lab, "dl")
    sums_lab.write("/dl/tool.tar.gz", V1[:-1] + b"!", edges=[EDGE], mtime=MTIME + 9999)
    scrape, asked = probe_logged(daemon, sums_lab, "dl")
    assert match(scrape, EDGE) == 0 and age(scrape, EDGE) == 0
    assert {match(scrape, a) for a in EDGES if a != EDGE} == {1}
    assert {age(scrape, a) for a in EDGES if a != EDGE} == {2}  # the others still 304
    assert [s for a, p, s in asked if a == EDGE and p == "/dl/tool.tar.gz"] == [200]
    # a new release on every edge: manifests and tools answer 200 and are read at once
    for address in EDGES:
        sums_lab.write("/dl/tool.tar.gz", V2, edges=[address], mtime=MTIME + 20000)
        manifest = sums({"tool.tar.gz": V2, "NOTES": DOC})
        sums_lab.write("/dl/SHA256SUMS", manifest, edges=[address], mtime=MTIME + 20000)
    scrape, _ = probe_logged(daemon, sums_lab, "dl")
    assert {match(scrape, a) for a in EDGES} == {1}
    assert {age(scrape, a) for a in EDGES} == {0}
    # the references changed: the cycle after is a full pass, nothing answered 304
    scrape, asked = probe_logged(daemon, sums_lab, "dl")
    assert 304 not in {status for _, _, status in asked}
    assert {age(scrape, a, n) for a in EDGES for n in ARTIFACTS} == {0}


def test_an_in_place_corruption_is_caught_at_the_next_full_pass(
    sums_lab: Lab, daemon: RunningDaemon
) -> None:
    """Same size, same mtime: nginx's ETag and Last-Modified stay, a 304 cannot tell. The
    edge is reported ok, reused and said so, until the full pass (every 4 cycles)."""
    path = sums_lab.docroot(EDGE) / "dl" / "tool.tar.gz"
    stat = path.stat()
    path.write_bytes(V1[:-1] + b"!")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    seen_at = None
    for number in range(2, FULL_EVERY + 2):  # cycle 1 was the daemon's first
        scrape, _ = probe_logged(daemon, sums_lab, "dl")
        if match(scrape, EDGE) == 0:
            seen_at = number
            break
        assert age(scrape, EDGE) == number - 1  # reused, and said so
    assert seen_at == FULL_EVERY
    assert age(scrape, EDGE) == 0
    assert {match(scrape, a) for a in EDGES if a != EDGE} == {1}


def test_the_origin_manifest_is_revalidated_too(sums_lab: Lab, tmp_path: Path) -> None:
    """With `origin:`, the origin is one more server asked with its own last validators;
    a new manifest there is read at once, and the edges' reused hashes judged against it."""
    origin = "127.0.0.2"
    sums_lab.write("/origin/dl/SHA256SUMS", sums({"tool.tar.gz": V1, "NOTES": DOC}), [origin])
    sums_lab.set_dns("origin.test", [origin])
    config = tmp_path / "origin.yaml"
    extra = f"    origin: http://origin.test:{sums_lab.http_port}/origin\n"
    config.write_text(config_text(sums_lab, extra + "    artifacts: [tool.tar.gz]\n"))
    daemon = RunningDaemon(config).start()
    try:
        first = daemon.wait_for(lambda s: (s.get("cdnprobe_cycles_total", target="dl") or 0) >= 1)
        assert {match(first, a) for a in EDGES} == {1, 0}  # NEWER serves v2
        _, asked = probe_logged(daemon, sums_lab, "dl")
        assert [s for _, p, s in asked if p.startswith("/origin/")] == [304]
        new = sums({"tool.tar.gz": V2, "NOTES": DOC})
        sums_lab.write("/origin/dl/SHA256SUMS", new, [origin], mtime=MTIME + 30000)
        scrape, asked = probe_logged(daemon, sums_lab, "dl")
    finally:
        daemon.kill()
    assert [s for _, p, s in asked if p.startswith("/origin/")] == [200]
    assert match(scrape, NEWER) == 1 and match(scrape, EDGE) == 0
    assert {age(scrape, a) for a in EDGES} == {2}  # the edges' bytes did not change


def test_rehash_every_and_revalidate_are_one_or_the_other(tmp_path: Path) -> None:
    """Both reuse an artifact's hash, by other evidence: a one-line error at load."""
    path = tmp_path / "both.yaml"
    path.write_text(
        "targets:\n  - {name: dl, type: checksums, url: 'https://dl.example', manifest: /S,"
        " rehash_every: 3, revalidate: {full_every: 4}}\n"
    )
    proc = cdnprobe("validate-config", str(path))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"cdnprobe: {path}: targets[0].revalidate: not together with rehash_every above 1: "
        "choose one"
    ]
    # rehash_every 1 (its default: every cycle) is no reuse, and goes with revalidate
    (target,) = parse_config(path.read_text().replace("rehash_every: 3", "rehash_every: 1")).targets
    assert target.revalidate is not None and target.revalidate.full_every == 4
