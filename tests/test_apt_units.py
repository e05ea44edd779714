"""The APT validator with plain values: InRelease armor, Release fields, apt's choice of
compression, counting packages while decompressing, and the problems of one edge."""

from __future__ import annotations

import bz2
import gzip
import lzma
from datetime import UTC, datetime

import pytest

from prober.model import FetchedIndex, Problem
from prober.validators.apt import (
    PackageCounter,
    ReleaseError,
    by_hash_path,
    index_plan,
    judge_edge,
    parse_expect,
    parse_release,
    unwrap_inrelease,
)

RELEASE = """Origin: Test
Suite: stable
Date: Mon, 23 Nov 2026 12:00:00 UTC
Valid-Until: Mon, 30 Nov 2026 12:00:00 UTC
Acquire-By-Hash: yes
Architectures: amd64 arm64
Components: main contrib
SHA256:
 {a}  100 main/binary-amd64/Packages
 {b}   60 main/binary-amd64/Packages.gz
 {c}   50 main/binary-amd64/Packages.xz
 {d}   40 main/binary-arm64/Packages.xz
 {e}   30 contrib/binary-amd64/Packages.gz
 {f}   20 main/binary-all/Packages.gz
 {g}   10 main/i18n/Translation-en.bz2
 {h}    5 main/Contents-amd64.gz
""".format(**{k: k * 64 for k in "abcdefgh"})
NOW = datetime(2026, 11, 24, tzinfo=UTC)


def test_clearsigned_inrelease_is_unwrapped_and_dash_unescaped() -> None:
    signed = (
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        "Origin: Test\n- -dashed line\nDate: Mon, 23 Nov 2026 12:00:00 UTC\n"
        "-----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCgAdFiEE\n-----END PGP SIGNATURE-----\n"
    )
    text, is_signed = unwrap_inrelease(signed.encode())
    assert is_signed
    assert text.splitlines() == [
        "Origin: Test",
        "-dashed line",
        "Date: Mon, 23 Nov 2026 12:00:00 UTC",
    ]


def test_broken_armor_is_an_error() -> None:
    with pytest.raises(ReleaseError):
        unwrap_inrelease(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: x\n")


def test_release_fields() -> None:
    release = parse_release(RELEASE)
    assert release.date == datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert release.valid_until == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert release.acquire_by_hash
    assert release.components == ("main", "contrib")
    assert release.files["main/binary-amd64/Packages.xz"].size == 50
    assert "Contents-amd64" not in " ".join(f.name for f in index_plan(release))


def test_not_a_release() -> None:
    with pytest.raises(ReleaseError):
        parse_release("<html>502 Bad Gateway</html>\n")


def test_plan_follows_selection_and_apts_compression_order() -> None:
    release = parse_release(RELEASE)
    plan = {f.name: f for f in index_plan(release, ["main"], ["amd64"])}
    assert set(plan) == {
        "main/binary-amd64/Packages",
        "main/binary-all/Packages",
        "main/i18n/Translation-en",
    }
    assert plan["main/binary-amd64/Packages"].apt_fetches is not None
    assert plan["main/binary-amd64/Packages"].apt_fetches.path.endswith(
        ".xz"
    )  # xz before gz and none
    everything = {f.name for f in index_plan(release)}
    assert (
        "main/binary-arm64/Packages" in everything and "contrib/binary-amd64/Packages" in everything
    )


def test_by_hash_path() -> None:
    file = parse_release(RELEASE).files["main/binary-amd64/Packages.gz"]
    assert by_hash_path(file) == "main/binary-amd64/by-hash/SHA256/" + "b" * 64


def fetched_as_promised(
    plan: list, broken: dict[str, FetchedIndex] | None = None
) -> dict[str, FetchedIndex]:  # type: ignore[type-arg]
    found = {v.path: FetchedIndex(200, v.size, v.sha256, None) for f in plan for v in f.variants}
    found.update(
        {
            by_hash_path(v): FetchedIndex(200, v.size, v.sha256, None)
            for f in plan
            for v in f.variants
        }
    )
    found.update(broken or {})
    return found


def test_only_the_fetched_compression_makes_apt_fail() -> None:
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"])
    gz_broken = fetched_as_promised(
        plan, {"main/binary-amd64/Packages.gz": FetchedIndex(200, 61, "z" * 64, None)}
    )
    result = judge_edge(release, plan, gz_broken, {}, [], NOW)
    assert [p.reason for p in result.problems] == [Problem.SIZE_MISMATCH]
    assert not result.would_fail and result.index_match["main/binary-amd64/Packages.gz"] is False
    xz_broken = fetched_as_promised(
        plan, {"main/binary-amd64/Packages.xz": FetchedIndex(200, 50, "z" * 64, None)}
    )
    result = judge_edge(release, plan, xz_broken, {}, [], NOW)
    assert [p.reason for p in result.problems] == [Problem.HASH_MISMATCH] and result.would_fail


def test_missing_index_and_transport_errors() -> None:
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"])
    broken = {
        "main/binary-amd64/Packages.xz": FetchedIndex(404, 9, "n" * 64, None),
        "main/binary-all/Packages.gz": FetchedIndex(None, 3, None, "truncated"),
    }
    result = judge_edge(release, plan, fetched_as_promised(plan, broken), {}, [], NOW)
    assert {p.reason for p in result.problems} == {Problem.MISSING, Problem.FETCH_ERROR}
    assert result.would_fail


def test_expired_release_fails() -> None:
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"])
    later = datetime(2026, 12, 1, tzinfo=UTC)
    result = judge_edge(release, plan, fetched_as_promised(plan), {}, [], later)
    assert [p.reason for p in result.problems] == [Problem.EXPIRED] and result.would_fail


def test_by_hash_missing_is_reported() -> None:
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"])
    path = "main/binary-amd64/by-hash/SHA256/" + "c" * 64
    result = judge_edge(
        release,
        plan,
        fetched_as_promised(plan, {path: FetchedIndex(404, 0, None, None)}),
        {},
        [],
        NOW,
    )
    assert [p.reason for p in result.problems] == [Problem.BY_HASH_MISSING]


PACKAGES = b"Package: a\nVersion: 1\n\nPackage: b\nVersion: 2.0\nDescription: x\n\nPackage: b\nVersion: 2.1\n"


@pytest.mark.parametrize(
    ("suffix", "data"),
    [
        ("", PACKAGES),
        (".gz", gzip.compress(PACKAGES)),
        (".xz", lzma.compress(PACKAGES)),
        (".bz2", bz2.compress(PACKAGES)),
    ],
)
def test_counter_counts_stanzas_across_chunks(suffix: str, data: bytes) -> None:
    counter = PackageCounter(suffix, frozenset({"b"}))
    for i in range(0, len(data), 7):  # chunk boundaries anywhere, even inside a line
        counter.feed(data[i : i + 7])
    counter.finish()
    assert (counter.count, counter.versions, counter.failed) == (3, {"b": {"2.0", "2.1"}}, False)


def test_counter_gives_up_on_garbage() -> None:
    counter = PackageCounter(".gz")
    counter.feed(b"not gzip at all")
    assert counter.failed


def test_parse_expect() -> None:
    assert parse_expect(["a=1", " b = 2.0 "]) == [("a", "1"), ("b", "2.0")]
    with pytest.raises(ValueError, match="name=version"):
        parse_expect(["a"])
