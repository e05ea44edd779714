"""The APT validator with plain values: InRelease armor, Release fields, apt's candidates
(compressions, by-hash) and its decision per answer, the Release-level rules (fallback,
signatures, dates, weak hashes), counting packages while decompressing, and the problems of
one edge. tests/test_apt_conditions.py checks the same rules against the real apt."""

from __future__ import annotations

import asyncio
import bz2
import gzip
import lzma
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from prober import gpgv
from prober.errors import ErrorReason
from prober.model import Problem
from prober.validators.apt import (
    Answer,
    AptOptions,
    Candidate,
    IndexFamily,
    PackageCounter,
    ReleaseError,
    Signature,
    Step,
    by_hash_enabled,
    by_hash_path,
    candidates,
    decide,
    detached_signature_problem,
    index_plan,
    inrelease_fallback,
    judge_edge,
    parse_expect,
    parse_release,
    redirect_refused,
    release_hash_kinds,
    release_problems,
    release_sha512,
    signature_problem,
    unwrap_inrelease,
    walk,
)
from tests.aptrepo import gnupg_dir, sign_release, stop_gpg_agent

FetchedIndex = Answer  # (status, bytes_read, sha256, error): the old positional shape

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
    assert release.file("main/binary-amd64/Packages.xz").size == 50
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
    file = parse_release(RELEASE).file("main/binary-amd64/Packages.gz")
    assert by_hash_path(file) == "main/binary-amd64/by-hash/SHA256/" + "b" * 64


def fetched_as_promised(
    plan: list[IndexFamily], broken: dict[str, Answer] | None = None
) -> dict[str, Answer]:
    found = {v.path: Answer(200, v.size, v.sha256) for f in plan for v in f.variants}
    found.update(
        {c.path: Answer(200, c.file.size, c.file.sha256) for f in plan for c in f.candidates}
    )
    found.update(broken or {})
    return found


def test_only_the_compression_apt_reads_makes_it_fail() -> None:
    """A broken gz beside a good xz is a problem, not a failure: apt reads the xz."""
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"], AptOptions(by_hash="no"))
    gz_broken = fetched_as_promised(
        plan, {"main/binary-amd64/Packages.gz": Answer(200, 61, "z" * 64, size=61)}
    )
    result = judge_edge(release, plan, gz_broken, {}, [], NOW)
    assert [p.reason for p in result.problems] == [Problem.SIZE_MISMATCH]
    assert (
        not result.would_fail and dict(result.index_match)["main/binary-amd64/Packages.gz"] is False
    )
    xz_broken = fetched_as_promised(
        plan, {"main/binary-amd64/Packages.xz": Answer(200, 50, "z" * 64, size=50)}
    )
    result = judge_edge(release, plan, xz_broken, {}, [], NOW)
    assert [p.reason for p in result.problems] == [Problem.HASH_MISMATCH] and result.would_fail


def test_missing_xz_falls_back_to_gz_and_an_error_on_the_last_compression_fails() -> None:
    """pkgAcqIndex::CommonFailed: a 404 or a transport error moves apt to the next
    compression; the index fails only when no compression is left."""
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"], AptOptions(by_hash="no"))
    broken = {
        "main/binary-amd64/Packages.xz": Answer(404, 9, "n" * 64),
        "main/binary-amd64/Packages.gz": Answer(None, 3, None, ErrorReason.TRUNCATED),
        "main/binary-amd64/Packages": Answer(None, 3, None, ErrorReason.TRUNCATED),
    }
    result = judge_edge(release, plan, fetched_as_promised(plan, broken), {}, [], NOW)
    assert {p.reason for p in result.problems} == {Problem.MISSING, Problem.FETCH_ERROR}
    assert result.would_fail  # no compression left
    only_xz = {"main/binary-amd64/Packages.xz": Answer(404, 9, "n" * 64)}
    result = judge_edge(release, plan, fetched_as_promised(plan, only_xz), {}, [], NOW)
    assert [p.reason for p in result.problems] == [Problem.MISSING] and not result.would_fail


def test_an_index_without_its_uncompressed_name_in_the_release_is_never_fatal() -> None:
    """pkgAcqMetaBase::QueueIndexes queues an index only when the Release lists its
    uncompressed name (binary-all lists only Packages.gz here): apt skips it, so a broken
    copy is reported and fails nothing, and its packages are not counted."""
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"], AptOptions(by_hash="no"))
    family = next(f for f in plan if f.name == "main/binary-all/Packages")
    assert not family.queued and family.counted is None
    broken = {"main/binary-all/Packages.gz": Answer(None, 3, None, ErrorReason.TRUNCATED)}
    result = judge_edge(release, plan, fetched_as_promised(plan, broken), {}, [], NOW)
    assert [p.file for p in result.problems] == ["main/binary-all/Packages.gz"]
    assert not result.would_fail


def test_expired_release_fails() -> None:
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"])
    later = datetime(2026, 12, 1, tzinfo=UTC)
    result = judge_edge(release, plan, fetched_as_promised(plan), {}, [], later)
    assert [p.reason for p in result.problems] == [Problem.EXPIRED] and result.would_fail


def test_by_hash_missing_is_reported_and_apt_takes_the_canonical_name() -> None:
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"])
    path = "main/binary-amd64/by-hash/SHA256/" + "c" * 64
    result = judge_edge(
        release, plan, fetched_as_promised(plan, {path: Answer(404, 0, None)}), {}, [], NOW
    )
    assert [p.reason for p in result.problems] == [Problem.BY_HASH_MISSING]
    assert not result.would_fail


PACKAGES = b"Package: a\nVersion: 1\n\nPackage: b\nVersion: 2.0\nDescription: x\n\nPackage: b\nVersion: 2.1\n"


@pytest.mark.parametrize(
    ("suffix", "data"),
    [
        ("", PACKAGES),
        (".gz", gzip.compress(PACKAGES, mtime=0)),
        (".xz", lzma.compress(PACKAGES)),
        (".bz2", bz2.compress(PACKAGES)),
    ],
    ids=["plain", "gz", "xz", "bz2"],  # the same every run: pytest-xdist's workers must agree
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


# ---- apt's candidates ---------------------------------------------------------------------


def test_candidates_follow_apts_compression_order_and_put_by_hash_first() -> None:
    """aptconfiguration.cc getCompressionTypes (xz bz2 lzma gz lz4 zst, then uncompressed);
    pkgAcqTransactionItem::QueueURI: by-hash first, the canonical name its alternative."""
    release = parse_release(RELEASE)
    family = next(f for f in index_plan(release) if f.name == "main/binary-amd64/Packages")
    assert [(c.path.rsplit("/", 1)[-1], c.by_hash) for c in family.candidates] == [
        ("c" * 64, True), ("Packages.xz", False),
        ("b" * 64, True), ("Packages.gz", False),
        ("a" * 64, True), ("Packages", False),
    ]  # fmt: skip


def test_by_hash_option_yes_no_force() -> None:
    """AcquireByHash: force always, yes (the default) only when the Release says so."""
    with_hash, without = parse_release(RELEASE), parse_release(RELEASE.replace("yes", "no"))
    assert by_hash_enabled(with_hash, None) and by_hash_enabled(with_hash, "yes")
    assert not by_hash_enabled(with_hash, "no")
    assert not by_hash_enabled(without, None) and by_hash_enabled(without, "force")


def test_by_hash_uses_the_strongest_hash() -> None:
    """HashStringList::find(nullptr): SHA512 when the Release lists one."""
    text = RELEASE + "SHA512:\n " + "f" * 128 + " 60 main/binary-amd64/Packages.gz\n"
    sha512 = release_sha512(text)
    file = parse_release(text).file("main/binary-amd64/Packages.gz")
    (first, second) = candidates([file], True, sha512)
    assert first.path == "main/binary-amd64/by-hash/SHA512/" + "f" * 128 and first.by_hash
    assert second.path == "main/binary-amd64/Packages.gz"


def test_languages_select_the_translations() -> None:
    """Acquire::Languages: Translation-en by default, none with ()."""
    release = parse_release(RELEASE)
    names = {f.name for f in index_plan(release, ["main"], ["amd64"])}
    assert "main/i18n/Translation-en" in names
    none = {f.name for f in index_plan(release, ["main"], ["amd64"], AptOptions(languages=()))}
    assert "main/i18n/Translation-en" not in none


# ---- apt's decision per answer -----------------------------------------------------------

FILE = parse_release(RELEASE).file("main/binary-amd64/Packages.gz")
CANONICAL = Candidate(FILE.path, FILE, False)


@pytest.mark.parametrize(
    ("answer", "step", "reason"),
    [
        (Answer(200, 60, "b" * 64, size=60), Step.DONE, None),
        (Answer(404, 10, None), Step.NEXT, Problem.MISSING),
        (Answer(500, 10, None), Step.NEXT, Problem.MISSING),
        (Answer(None, 0, None, ErrorReason.TIMEOUT), Step.NEXT, Problem.FETCH_ERROR),
        (Answer(200, 70, "x" * 64, size=70), Step.FAIL, Problem.SIZE_MISMATCH),
        (Answer(200, 70, "x" * 64), Step.FAIL, Problem.HASH_MISMATCH),  # no Content-Length
        (Answer(200, 60, "x" * 64, size=60), Step.FAIL, Problem.HASH_MISMATCH),
        (Answer(200, 0, "e" * 64, size=0), Step.FAIL, Problem.HASH_MISMATCH),  # empty
        (Answer(301, 0, None, location="/elsewhere"), Step.FOLLOW, None),
    ],
    ids=["good", "404", "500", "timeout", "size", "chunked", "hash", "empty", "redirect"],
)
def test_decide_as_apt(answer: Answer, step: Step, reason: Problem | None) -> None:
    """acquire-worker.cc HandleFailure / pkgAcqIndex::CommonFailed: HTTP and transport
    errors move on, a size (MaximumSizeExceeded) or hash mismatch fails the update."""
    decision = decide(CANONICAL, answer, "http://repo.test/dists/stable/" + FILE.path)
    assert decision.step is step
    assert (decision.problem.reason if decision.problem else None) == reason


def test_https_to_http_redirect_is_refused() -> None:
    """basehttp.cc: "Redirection from https to '…' is forbidden"; http → https is fine."""
    assert redirect_refused("https://a/x", "http://a/y")
    assert not redirect_refused("http://a/x", "https://b/y")
    assert not redirect_refused("https://a/x", "/y")
    refused = decide(CANONICAL, Answer(302, 0, None, location="http://a/y"), "https://a/x")
    assert refused.step is Step.NEXT and refused.problem is not None
    assert refused.problem.reason is Problem.REDIRECT_REFUSED


def test_walk_stops_at_the_first_fatal_answer() -> None:
    """A corrupted by-hash file: RemoveAlternativeSite drops the canonical name too."""
    release = parse_release(RELEASE)
    family = next(f for f in index_plan(release) if f.name == "main/binary-amd64/Packages")
    first = family.candidates[0]
    answers = {c.path: Answer(200, c.file.size, c.file.sha256) for c in family.candidates}
    answers[first.path] = Answer(200, first.file.size, "x" * 64)
    outcome = walk(family, answers)
    assert not outcome.ok and [p.file for p in outcome.problems] == [first.path]


# ---- the Release ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "trusted", "clearsigned", "falls_back"),
    [
        (Answer(404, 0, None), False, True, True),
        (Answer(403, 0, None), False, True, False),
        (Answer(403, 0, None), True, True, True),
        (Answer(500, 0, None), False, True, False),
        (Answer(503, 0, None), True, True, False),  # transient: never
        (Answer(None, 0, None, ErrorReason.TIMEOUT), False, True, False),
        (Answer(None, 0, None, ErrorReason.CONNECT), True, True, False),
        (Answer(None, 0, None, ErrorReason.TLS), False, True, True),
        (Answer(200, 70, "p" * 64), False, False, False),  # a portal page: NOSPLIT
        (Answer(200, 70, "p" * 64), True, False, True),
        (Answer(200, 70, "p" * 64), True, True, False),  # a good InRelease is used
    ],
    ids=[
        "404", "403", "403-trusted", "500", "503-trusted", "timeout", "refused-trusted",
        "tls", "portal", "portal-trusted", "good",
    ],
)  # fmt: skip
def test_inrelease_fallback(
    answer: Answer, trusted: bool, clearsigned: bool, falls_back: bool
) -> None:
    """pkgAcqMetaClearSig::Failed: Release + Release.gpg after a 404, never after a
    transient error (basehttp.cc's transient codes), after another HTTP error or a file
    that is no clearsigned message only for trusted=yes."""
    assert inrelease_fallback(answer, trusted, clearsigned) is falls_back


@pytest.mark.parametrize(
    ("signature", "trusted", "reason"),
    [
        (Signature.VERIFIED, False, None),
        (Signature.NOT_VERIFIED, False, None),
        (Signature.NOT_SIGNED, False, Problem.NOT_SIGNED),
        (Signature.NOT_SIGNED, True, None),
        (Signature.BAD, False, Problem.BAD_SIGNATURE),
        (Signature.NO_PUBKEY, False, Problem.NO_PUBKEY),
        (Signature.BAD, True, None),
    ],
)
def test_signature_problem(signature: Signature, trusted: bool, reason: Problem | None) -> None:
    problem = signature_problem(signature, "InRelease", trusted)
    assert (problem.reason if problem else None) == reason


def test_detached_signature_must_be_armored() -> None:
    """apt-pkg/contrib/gpgv.cc ExecGPGV: a binary Release.gpg is unsupported."""
    armored = b"-----BEGIN PGP SIGNATURE-----\n\niHUEABYKAB0\n-----END PGP SIGNATURE-----\n"
    assert detached_signature_problem(armored) is None
    assert "binary" in (detached_signature_problem(b"\x88\x75\x04\x00") or "")
    assert detached_signature_problem(b"<html>portal</html>") == "NODATA"
    assert "unclosed" in (detached_signature_problem(armored.split(b"-----END")[0]) or "")
    assert "lines not" in (detached_signature_problem(armored + b"junk\n") or "")


def test_date_in_the_future_beyond_max_future_time() -> None:
    """debReleaseIndex::Load: NotBefore = Date - Max-FutureTime (10 s by default)."""
    release = parse_release(RELEASE)  # Date: 23 Nov 2026 12:00:00
    just_before = datetime(2026, 11, 23, 11, 59, 55, tzinfo=UTC)
    assert release_problems(release, AptOptions(), just_before) == []
    early = datetime(2026, 11, 23, 11, 59, 0, tzinfo=UTC)
    (problem,) = release_problems(release, AptOptions(), early, file="InRelease")
    assert problem.reason is Problem.NOT_VALID_YET and problem.file == "InRelease"
    assert release_problems(release, AptOptions(max_future_seconds=3600), early) == []


def test_valid_until_only_with_check_valid_until() -> None:
    release = parse_release(RELEASE)
    later = datetime(2026, 12, 1, tzinfo=UTC)
    assert [p.reason for p in release_problems(release, AptOptions(), later)] == [Problem.EXPIRED]
    assert release_problems(release, AptOptions(check_valid_until=False), later) == []


def test_weak_hashes_only() -> None:
    """Only MD5Sum/SHA1: "provides only weak security information"."""
    weak = "Date: Mon, 23 Nov 2026 12:00:00 UTC\nMD5Sum:\n " + "a" * 32 + " 5 main/x\n"
    kinds = release_hash_kinds(weak)
    assert kinds == {"md5sum"}
    (problem,) = release_problems(parse_release(weak), AptOptions(), NOW, kinds)
    assert problem.reason is Problem.WEAK_HASHES
    assert (
        release_problems(parse_release(RELEASE), AptOptions(), NOW, release_hash_kinds(RELEASE))
        == []
    )


# ---- prober/gpgv.py: the real gpgv ----------------------------------------------------------


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with Release, InRelease, an armored Release.gpg and key.gpg / key.asc."""
    work = tmp_path_factory.mktemp("gpgv")
    dists = work / "dists"
    dists.mkdir()
    (dists / "Release").write_text(RELEASE)
    key = sign_release(dists, work, detached=True)
    env = {**os.environ, "GNUPGHOME": str(gnupg_dir(work))}
    armored = subprocess.run(
        ["gpg", "--export", "--armor"], env=env, capture_output=True, check=True
    )
    (work / "key.asc").write_bytes(armored.stdout)
    assert key == work / "key.gpg"
    yield work
    stop_gpg_agent(gnupg_dir(work))


@pytest.mark.parametrize("keyring", ["key.gpg", "key.asc"])
def test_gpgv_verifies_a_clearsigned_inrelease(signed: Path, keyring: str) -> None:
    """A binary keyring as it is, an armored one dearmored first."""
    data = (signed / "dists" / "InRelease").read_bytes()
    result = asyncio.run(gpgv.verify_clearsigned(str(signed / keyring), data))
    assert result.signature is Signature.VERIFIED, result


def test_gpgv_detached_and_bad_signatures(signed: Path) -> None:
    ring = str(signed / "key.gpg")
    release = (signed / "dists" / "Release").read_bytes()
    sig = (signed / "dists" / "Release.gpg").read_bytes()
    assert asyncio.run(gpgv.verify_detached(ring, release, sig)).signature is Signature.VERIFIED
    bad = asyncio.run(gpgv.verify_detached(ring, release + b"X", sig))
    assert bad.signature is Signature.BAD and "BAD signature" in bad.reason
    inrelease = (signed / "dists" / "InRelease").read_bytes()
    tampered = inrelease.replace(b"Origin: Test", b"Origin: Evil")
    assert asyncio.run(gpgv.verify_clearsigned(ring, tampered)).signature is Signature.BAD
    portal = asyncio.run(gpgv.verify_clearsigned(ring, b"<html>log in</html>"))
    assert portal.signature is Signature.BAD and "NODATA" in portal.reason


def test_gpgv_unknown_key_and_missing_keyring(signed: Path, tmp_path: Path) -> None:
    """A keyring without the signer: NO_PUBKEY; no keyring file: an error, no traceback."""
    data = (signed / "dists" / "InRelease").read_bytes()
    empty = tmp_path / "empty.gpg"
    empty.write_bytes(b"")
    assert asyncio.run(gpgv.verify_clearsigned(str(empty), data)).signature is Signature.NO_PUBKEY
    missing = asyncio.run(gpgv.verify_clearsigned(str(tmp_path / "nope.gpg"), data))
    assert missing.signature is Signature.ERROR and "No such file" in missing.reason


def test_gpgv_is_bounded_in_time(signed: Path) -> None:
    """A timeout of ~0 s: an error result, the child killed, no exception."""
    data = (signed / "dists" / "InRelease").read_bytes()
    result = asyncio.run(gpgv.verify_clearsigned(str(signed / "key.gpg"), data, timeout_s=1e-6))
    assert result.signature is Signature.ERROR and "longer than" in result.reason


def test_a_broken_translation_is_reported_but_not_fatal() -> None:
    """Only Translation-en.bz2 is listed, not the uncompressed name: apt never queues it
    (pkgAcqMetaBase::QueueIndexes; the real apt agrees in tests/test_apt_listed.py), so a
    missing one is a problem, not a failure."""
    release = parse_release(RELEASE)
    plan = index_plan(release, ["main"], ["amd64"], AptOptions(by_hash="no"))
    gone = {"main/i18n/Translation-en.bz2": Answer(404, 0, None)}
    result = judge_edge(release, plan, fetched_as_promised(plan, gone), {}, [], NOW)
    assert [p.reason for p in result.problems] == [Problem.MISSING] and not result.would_fail


def test_a_broken_sources_index_is_reported_but_not_fatal_for_a_deb_line() -> None:
    """apt-get update for a `deb` line fetches no Sources (only deb-src lines do): a Sources
    file an edge serves wrong is a problem, never a failure apt would meet."""
    sources = f" {'9' * 64}   70 main/source/Sources.gz\n"
    text = RELEASE.replace(f" {'h' * 64}", sources + f" {'h' * 64}")
    release = parse_release(
        text.replace("Architectures: amd64 arm64", "Architectures: amd64 source")
    )
    plan = index_plan(release, ["main"], [], AptOptions(by_hash="no"))  # every one listed
    assert "main/source/Sources" in {f.name for f in plan}
    gone = {"main/source/Sources.gz": Answer(404, 0, None)}
    result = judge_edge(release, plan, fetched_as_promised(plan, gone), {}, [], NOW)
    assert [p.file for p in result.problems] == ["main/source/Sources.gz"]
    assert not result.would_fail
