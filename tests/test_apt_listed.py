"""Which indexes apt fetches at all, with the real `apt-get update` (Acquire::Languages "en")
as the oracle. apt-pkg/acquire-item.cc pkgAcqMetaBase::QueueIndexes queues an index only
when the Release lists its *uncompressed* name (metaIndex::Exists(MetaKey)): an optional
target (Translation-LANG) that is not listed so is skipped silently, a required one
(Packages) with the warning "does not seem to provide it"; an uncompressed entry of size 0
is skipped ("empty files are skipped"). A Translation apt does queue is no less fatal than
Packages: pkgAcqIndex::Failed aborts the transaction when the Release has its hashes.
For every edge, cdnprobe's would_fail must equal what apt says against that edge alone."""

from __future__ import annotations

import bz2
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.aptrepo import INDEX, AptRun, apt_get_update, publish_two_versions
from tests.conftest import cdnprobe
from tests.lab import HOST, EdgeSpec, Lab, free_port

DISTS = "dists/stable"
I18N = f"{DISTS}/main/i18n"
TRANSLATION = (
    b"Package: hello-cdn\nDescription-md5: 0123456789abcdef0123456789abcdef\n"
    b"Description-en: hello-cdn for the cdnprobe APT tests\n\n"
)
HASHES = {"MD5Sum:": "md5", "SHA1:": "sha1", "SHA256:": "sha256", "SHA512:": "sha512"}


def _list(release: str, path: str, data: bytes) -> str:
    """`release` with `path` (relative to the suite) listed in every hash section."""
    out, section = [], None
    for line in release.splitlines(keepends=True):
        if section is not None and not line.startswith(" "):
            digest = hashlib.new(HASHES[section], data).hexdigest()
            out.append(f" {digest} {len(data):>8} {path}\n")
            section = None
        out.append(line)
        if line.strip() in HASHES:
            section = line.strip()
    if section is not None:
        digest = hashlib.new(HASHES[section], data).hexdigest()
        out.append(f" {digest} {len(data):>8} {path}\n")
    return "".join(out)


def _unlist(release: str, path: str) -> str:
    return "".join(
        x for x in release.splitlines(keepends=True) if not x.rstrip().endswith(f" {path}")
    )


def _translation(*, listed: tuple[str, ...], served: tuple[str, ...], corrupt: str | None = None,
                 empty_listing: bool = False) -> Callable[[Path], None]:  # fmt: skip
    """Translation-en as files (`served`: "" uncompressed, ".bz2") and Release entries
    (`listed`); `corrupt`: that variant's bytes flipped after listing, same size."""

    def stage(root: Path) -> None:
        variants = {"": TRANSLATION, ".bz2": bz2.compress(TRANSLATION)}
        release = (root / DISTS / "Release").read_text()
        for suffix in listed:
            data = b"" if empty_listing and suffix == "" else variants[suffix]
            release = _list(release, f"main/i18n/Translation-en{suffix}", data)
        (root / DISTS / "Release").write_text(release)
        (root / I18N).mkdir(parents=True, exist_ok=True)
        for suffix in served:
            data = bytearray(variants[suffix])
            if suffix == corrupt:
                data[len(data) // 2] ^= 0xFF
            (root / I18N / f"Translation-en{suffix}").write_bytes(bytes(data))

    return stage


def _packages_unlisted(root: Path) -> None:
    """Only the compressed Packages listed (no uncompressed name), and Packages.gz broken."""
    release = _unlist((root / DISTS / "Release").read_text(), "main/binary-amd64/Packages")
    (root / DISTS / "Release").write_text(release)
    (root / INDEX / "Packages.gz").write_bytes(b"not gzip at all")
    (root / INDEX / "Packages.bz2").unlink()


@dataclass(frozen=True)
class Condition:
    stage: Callable[[Path], None]
    apt_fails: bool  # what apt's source says (and the real apt must agree)


BOTH = ("", ".bz2")
CONDITIONS: dict[str, Condition] = {
    "Translation-en listed and served": Condition(_translation(listed=BOTH, served=BOTH), False),
    "Translation-en listed, every variant missing": Condition(
        _translation(listed=BOTH, served=()), True
    ),
    "Translation-en listed, bz2 corrupted": Condition(
        _translation(listed=BOTH, served=BOTH, corrupt=".bz2"), True
    ),
    "Translation-en listed, bz2 missing: the uncompressed one": Condition(
        _translation(listed=BOTH, served=("",)), False
    ),
    "only Translation-en.bz2 listed, and missing: never queued": Condition(
        _translation(listed=(".bz2",), served=()), False
    ),
    "only Translation-en.bz2 listed, corrupted: never queued": Condition(
        _translation(listed=(".bz2",), served=(".bz2",), corrupt=".bz2"), False
    ),
    "Translation-en listed empty: skipped": Condition(
        _translation(listed=BOTH, served=(), empty_listing=True), False
    ),
    "Packages listed only compressed, broken: never queued": Condition(
        _packages_unlisted, False
    ),
}  # fmt: skip
ADDRESSES = {name: f"127.0.0.{i}" for i, name in enumerate(CONDITIONS, start=2)}


@dataclass
class Outcome:
    apt: AptRun
    cdnprobe: dict[str, Any]


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA
) -> Iterator[dict[str, Outcome]]:
    work = tmp_path_factory.mktemp("listed")
    tree = publish_two_versions(work / "publish", signed=False).v1
    lab = Lab(work / "lab", ca, [EdgeSpec(a) for a in ADDRESSES.values()])
    lab.http_port = free_port(list(ADDRESSES.values()))
    lab.start()
    try:
        for name, condition in CONDITIONS.items():
            root = lab.docroot(ADDRESSES[name])
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(tree, root)
            condition.stage(root)
        proc = cdnprobe(
            "check", "--apt", f"http://{HOST}:{lab.http_port}/", "--suite", "stable",
            "--resolver", lab.resolver, "--json", "--trusted",
            "--apt-option", "Acquire::Languages=en",
        )  # fmt: skip
        assert proc.stderr == "", proc.stderr
        doc = json.loads(proc.stdout)
        edges = {e["address"]: e["apt"] for e in doc["targets"][0]["edges"]}
        http = f"http://{{}}:{lab.http_port}/"
        with ThreadPoolExecutor(max_workers=4) as pool:
            runs = dict(zip(ADDRESSES, pool.map(
                lambda a: apt_get_update(work / "apt" / a, http.format(a), trusted=True,
                                         languages="en"),
                ADDRESSES.values(),
            ), strict=True))  # fmt: skip
        yield {name: Outcome(runs[name], edges[a]) for name, a in ADDRESSES.items()}
    finally:
        lab.stop()


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_cdnprobe_fails_an_index_exactly_where_apt_does(
    outcomes: dict[str, Outcome], name: str
) -> None:
    got = outcomes[name]
    assert (not got.apt.ok) == CONDITIONS[name].apt_fails, got.apt.output  # apt's source
    assert got.cdnprobe["would_fail"] == (not got.apt.ok), (got.apt.output, got.cdnprobe)


def test_the_real_apt_fetched_translation_en_where_it_was_listed(
    outcomes: dict[str, Outcome],
) -> None:
    """The oracle itself: apt asked for Translation-en where the uncompressed name was
    listed, and not where only the .bz2 was."""
    listed = outcomes["Translation-en listed, every variant missing"].apt.output
    assert "Translation-en" in listed
    unlisted = outcomes["only Translation-en.bz2 listed, and missing: never queued"].apt.output
    assert "Translation-en" not in unlisted
