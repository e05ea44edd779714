"""Bytes only when they changed, for a Go module proxy (`revalidate: {full_every: N}` on a
`type: goproxy` target), at the daemon against nginx edges serving a tree the real `go`
command reads: between full passes each edge is asked for @v/list, @latest and each
version's .zip, .mod and .info with its own last validators (every edge's files have another
mtime, so another edge's validators would get a 200); a 304 reuses that edge's own last h1:
check, labelled with its age; a changed zip and a new version are seen in the next cycle; a
zip corrupted in place (same size and mtime) is caught at the next full pass, and not before."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from prober.config import ConfigError, parse_config
from prober.kinds import kind_of
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
from tests.goproxy_tree import MODULE, go, standard_modules, write_module
from tests.lab import HOST, EdgeSpec, Lab, free_port

EDGES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "::1")
EDGE = "127.0.0.3"  # the one a test changes
FULL_EVERY = 4
ZIP = f"{MODULE}/@v/v1.0.0.zip"
MTIME = 1_790_000_000
FILES_PER_EDGE = 2 + 3 * 2  # @v/list, @latest; .zip, .mod and .info of v1.0.0 and v1.1.0


@pytest.fixture
def go_lab(tmp_path: Path, ca: trustme.CA) -> Iterator[tuple[Lab, str]]:
    """Every edge serves the same module tree, each edge's files with their own mtime; the
    go.sum lines of v1.0.0 as the real `go` computes them."""
    tree = tmp_path / "proxy"
    standard_modules(tree)
    lab = Lab(tmp_path / "lab", ca, [EdgeSpec(a) for a in EDGES])
    lab.http_port = free_port(["127.0.0.2"])
    lab.start()
    try:
        for i, address in enumerate(EDGES):
            shutil.rmtree(lab.docroot(address), ignore_errors=True)
            shutil.copytree(tree, lab.docroot(address))
            for file in lab.docroot(address).rglob("*"):
                os.utime(file, (MTIME + 1000 * i, MTIME + 1000 * i))
        done = go(
            tmp_path / "sum", f"file://{tree}", "mod", "download", "-json", f"{MODULE}@v1.0.0"
        )
        assert done.ok, done.output
        doc = json.loads(done.output)
        yield lab, f"{MODULE} v1.0.0 {doc['Sum']}\n{MODULE} v1.0.0/go.mod {doc['GoModSum']}\n"
    finally:
        lab.stop()


@pytest.fixture
def daemon(go_lab: tuple[Lab, str], tmp_path: Path) -> Iterator[RunningDaemon]:
    lab, gosum = go_lab
    lines = ", ".join(f"'{line}'" for line in gosum.strip().splitlines())
    config = tmp_path / "go-revalidate.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: proxy\n    type: goproxy\n"
        f"    url: http://{HOST}:{lab.http_port}/\n    modules: ['{MODULE}']\n"
        f"    gosum: [{lines}]\n"
        f'    resolvers: ["{lab.resolver}"]\n    interval: 1h\n'
        f"    revalidate: {{full_every: {FULL_EVERY}}}\n"
    )
    with started(config, "proxy") as running:
        yield running


def report(daemon: RunningDaemon) -> dict[str, dict[str, Any]]:
    """One cycle now through a task (the daemon's JSON): its entries by name."""
    _, created = post_task(daemon, "proxy", {})
    doc = task_wait(daemon, created["id"])
    return {entry["name"]: entry for entry in doc["report"]["targets"]}


def match(scrape: Scrape, version: str, address: str) -> float | None:
    labels = {"module": MODULE, "version": version, "address": address}
    return scrape.get("cdnprobe_goproxy_module_match", **labels)


def zip_age(scrape: Scrape, address: str, version: str = "v1.0.0") -> float | None:
    path = f"/{MODULE}/@v/{version}.zip"
    return scrape.get("cdnprobe_edge_object_hash_age_cycles", path=path, address=address)


def test_an_unchanged_proxy_is_answered_with_304s_and_reused_checks(
    go_lab: tuple[Lab, str], daemon: RunningDaemon
) -> None:
    """Cycles 2 and 3: every file from every edge is a 304 to that edge's own validators,
    no body is sent, and each edge's last h1: check is reused, with its age, in the
    metrics and in the JSON."""
    lab, gosum = go_lab
    first = daemon.scrape()
    assert {match(first, v, a) for v in ("v1.0.0", "v1.1.0") for a in EDGES} == {1}
    second, asked = probe_logged(daemon, lab, "proxy")
    assert len(asked) == FILES_PER_EDGE * len(EDGES)
    assert {status for _, _, status in asked} == {304}
    assert {zip_age(second, a) for a in EDGES} == {1}
    assert {match(second, v, a) for v in ("v1.0.0", "v1.1.0") for a in EDGES} == {1}
    entries = report(daemon)  # cycle 3
    assert received(daemon.scrape()) == received(first)
    version = entries[f"{MODULE}@v1.0.0"]
    assert all(e["revalidated"] and e["hash_age_cycles"] == 2 for e in version["edges"])
    assert all(e["check"]["match"] for e in version["edges"])
    assert {e["check"]["actual"] for e in version["edges"]} == {gosum.split()[2]}
    assert any("revalidated:" in note for note in version["notes"])
    listed = entries[f"{MODULE} @v/list"]
    assert all(e["revalidated"] and e["status"] == 200 for e in listed["edges"])
    assert entries[f"{MODULE}@v1.1.0"]["consistent"] is True


def test_a_changed_zip_and_a_new_version_are_seen_in_the_next_cycle(
    go_lab: tuple[Lab, str], daemon: RunningDaemon, tmp_path: Path
) -> None:
    lab, _ = go_lab
    probe_logged(daemon, lab, "proxy")
    foreign = tmp_path / "foreign"
    write_module(foreign, MODULE, "v1.0.0", {"hello.go": 'package hello\n\nconst G = "pwned"\n'})
    shutil.copy(foreign / ZIP, lab.docroot(EDGE) / ZIP)  # a new mtime: new validators
    scrape, asked = probe_logged(daemon, lab, "proxy")
    assert match(scrape, "v1.0.0", EDGE) == 0  # against go.sum, at once
    assert zip_age(scrape, EDGE) == 0
    # its .mod and .info answered 304 and were read again: one check, of one moment
    mod = [s for a, path, s in asked if a == EDGE and path.endswith("v1.0.0.mod")]
    assert mod == [304, 200]
    assert {zip_age(scrape, a) for a in EDGES if a != EDGE} == {2}  # the others still 304
    # a new version on every edge: the list answers 200 and v1.2.0 is read in full
    for address in EDGES:
        write_module(lab.docroot(address), MODULE, "v1.2.0", {"hello.go": "package hello\n"})
    scrape, asked = probe_logged(daemon, lab, "proxy")
    assert {match(scrape, "v1.2.0", a) for a in EDGES} == {1}
    assert {zip_age(scrape, a, "v1.2.0") for a in EDGES} == {0}
    assert {s for _, path, s in asked if path.endswith("/@v/list")} == {200}
    # the list's reference changed: the cycle after is a full pass, nothing answered 304
    scrape, asked = probe_logged(daemon, lab, "proxy")
    assert 304 not in {status for _, _, status in asked}
    assert {zip_age(scrape, a) for a in EDGES} == {0}
    assert match(scrape, "v1.0.0", EDGE) == 0


def corrupt_in_place(path: Path) -> None:
    """A byte inside the zip's first member flipped (its CRC no longer holds), with the
    same size and mtime: nginx's ETag and Last-Modified stay the same."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        first = archive.infolist()[0]
        offset = first.header_offset + 30 + len(first.filename) + len(first.extra) + 2
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_an_in_place_corruption_is_caught_at_the_next_full_pass(
    go_lab: tuple[Lab, str], daemon: RunningDaemon
) -> None:
    """A 304 cannot tell: the edge is reported ok, reused and said so, until the full pass
    (every 4 cycles) reads its zip again and finds it unreadable, as go would."""
    lab, _ = go_lab
    corrupt_in_place(lab.docroot(EDGE) / ZIP)
    seen_at = None
    for number in range(2, FULL_EVERY + 2):  # cycle 1 was the daemon's first
        scrape, _ = probe_logged(daemon, lab, "proxy")
        if match(scrape, "v1.0.0", EDGE) == 0:
            seen_at = number
            break
        assert zip_age(scrape, EDGE) == number - 1  # reused, and said so
    assert seen_at == FULL_EVERY
    assert zip_age(scrape, EDGE) == 0
    assert {match(scrape, "v1.0.0", a) for a in EDGES if a != EDGE} == {1}


KINDS = {
    "http": "paths: [/a]",
    "apt": "type: apt, suites: [stable]",
    "goproxy": "type: goproxy, modules: [m.example/a]",
    "checksums": "type: checksums, manifest: /SHA256SUMS",
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_revalidate_is_accepted_on_every_kind(kind: str) -> None:
    """The contract's option is per target: every kind takes it, and its spec carries it."""
    config = parse_config(
        f"targets:\n  - {{name: t, url: 'https://t.example', {KINDS[kind]},"
        " revalidate: {full_every: 7}}\n"
    )
    (target,) = config.targets
    assert kind_of(target).spec(target).full_every == 7


def test_a_bad_full_every_is_a_one_line_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "targets:\n  - {name: p, type: goproxy, url: 'https://p.example', modules: [m.example/a],"
        " revalidate: {full_every: 0}}\n"
    )
    proc = cdnprobe("validate-config", str(path))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"cdnprobe: {path}: targets[0].revalidate.full_every: "
        "Input should be greater than or equal to 1"
    ]
    with pytest.raises(ConfigError):
        parse_config(path.read_text())
