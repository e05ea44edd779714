"""The bandwidth bench (bench/bandwidth.py) measures what it says: its in-place corruption
keeps nginx's validators (so a conditional request really is answered 304 with the other
bytes behind it), its access log counts the bytes nginx sent, and its APT repository lists
its indexes with their true sizes and hashes in a clear-signed InRelease."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import trustme

from bench.bandwidth import APT_INDEX, SUITE, ByteLab, corrupt_in_place, write_apt_tree
from prober.fetch import Fetcher, make_ssl_context
from prober.model import Edge, Observation
from prober.validators.apt import parse_release, unwrap_inrelease
from tests.lab import EdgeSpec

PATH = "/pool/f.bin"
EDGE = "127.0.0.2"


def test_an_in_place_corruption_is_answered_304(tmp_path: Path, ca: trustme.CA) -> None:
    body = os.urandom(300 << 10)
    lab = ByteLab(tmp_path / "lab", ca, [EdgeSpec(EDGE)])
    lab.start()
    try:
        lab.write(PATH, body, mtime=1_790_000_000)

        async def go() -> tuple[Observation, Observation, Observation]:
            fetcher = Fetcher(ssl_context=make_ssl_context(lab.ca_file), timeout_s=20)
            edge = Edge(EDGE, 4)
            try:
                first = await fetcher.fetch(edge, lab.url(PATH))
                corrupt_in_place(lab.docroot(EDGE), PATH)
                conditional = await fetcher.fetch(
                    edge, lab.url(PATH), (first.etag, first.last_modified)
                )
                return first, conditional, await fetcher.fetch(edge, lab.url(PATH))
            finally:
                await fetcher.close()

        position = lab.log_position()
        first, conditional, full = asyncio.run(go())
        requests, not_modified, sent = lab.sent_since(position)
    finally:
        lab.stop()
    assert first.sha256 == hashlib.sha256(body).hexdigest()
    assert conditional.status == 304 and conditional.bytes_read == 0
    assert (full.etag, full.last_modified) == (first.etag, first.last_modified)
    assert full.size == len(body)
    assert full.sha256 not in (None, first.sha256)  # other bytes behind the same validators
    assert (requests, not_modified) == (3, 1)
    assert 2 * len(body) < sent < 2 * len(body) + 3 * 1024  # two bodies and three headers


@pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg signs the InRelease")
def test_the_apt_repository_lists_its_indexes_truly(tmp_path: Path) -> None:
    from tests.aptrepo import gnupg_dir, stop_gpg_agent

    try:
        count = write_apt_tree(tmp_path / "tree", 0, tmp_path / "gpg")
    finally:
        stop_gpg_agent(gnupg_dir(tmp_path / "gpg"))
        shutil.rmtree(gnupg_dir(tmp_path / "gpg"), ignore_errors=True)
    dists = tmp_path / "tree" / "dists" / SUITE
    text, signed = unwrap_inrelease((dists / "InRelease").read_bytes())
    assert signed and text == (dists / "Release").read_text()
    release = parse_release(text, signed)
    listed = {f.path: (f.size, f.sha256) for f in release.files}
    for name in (APT_INDEX, f"{APT_INDEX}.gz"):
        data = (dists / name).read_bytes()
        assert listed[name] == (len(data), hashlib.sha256(data).hexdigest())
    assert (dists / APT_INDEX).read_text().count("\nPackage: ") + 1 == count
