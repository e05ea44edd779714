"""Every decoder of edge bytes, fuzzed: corrupt, truncated and hostile input (flipped deflate
bytes, zip bombs, sizes and offsets the zip only claims) raises only the decoder's documented
ValueError subclass, and memory stays bounded on a bomb."""

from __future__ import annotations

import bz2
import contextlib
import io
import json
import lzma
import struct
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prober.validators import goproxy
from prober.validators.apt import PackageCounter, ReleaseError, parse_release, unwrap_inrelease
from prober.validators.checksums import ManifestError, parse_manifest
from prober.validators.goproxy import (
    ZipProblem,
    gomod_hash,
    parse_info,
    parse_list,
    zip_hash,
)
from tests.goproxy_tree import Member, deflate, raw_zip

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
M, V = "example.com/m", "v1.0.0"
P = f"{M}@{V}/"
U32 = st.sampled_from([0, 1, 7, 0xFFFF, 0xFFFFFFFF]) | st.integers(0, 0xFFFFFFFF)

names = st.text(st.sampled_from("abAB._-/é\n\\ K"), min_size=1, max_size=12).map(lambda n: P + n)
members = st.builds(
    Member,
    name=names | st.binary(max_size=20),
    data=st.binary(max_size=300),
    method=st.sampled_from([0, 8, 8, 12]),
    crc=st.none() | U32,
    compressed_size=st.none() | U32,
    uncompressed_size=st.none() | U32,
    flags=st.sampled_from([0, 1, 8]),
    descriptor=st.booleans(),
)
zips = st.builds(
    raw_zip,
    st.lists(members, max_size=5),
    prefix=st.binary(max_size=8),
    comment=st.binary(max_size=8),
)


def judged(data: bytes) -> str | None:
    """zip_hash's verdict; any exception but ZipProblem fails the test."""
    try:
        h1 = zip_hash(io.BytesIO(data), M, V)
    except ZipProblem:
        return None
    assert h1.startswith("h1:") and len(h1) == 47
    return h1


@FUZZ
@given(st.binary(max_size=2000))
@example(b"PK\x05\x06" + bytes(18))  # an empty zip
@example(b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0))
def test_zip_hash_of_any_bytes_is_a_hash_or_a_zip_problem(data: bytes) -> None:
    """Random bytes, including directory ends that claim zip64, never crash zip_hash."""
    judged(data)


@FUZZ
@given(zips)
def test_zip_hash_of_hostile_fields_is_a_hash_or_a_zip_problem(data: bytes) -> None:
    """Zips whose CRCs, sizes, methods, flags and names are arbitrary: no crash."""
    judged(data)


@FUZZ
@given(zips, st.data())
def test_zip_hash_of_damaged_zips_is_a_hash_or_a_zip_problem(
    data: bytes, draw: st.DataObject
) -> None:
    """Flipped bytes (in deflate streams, headers, the directory), cuts and splices."""
    damaged = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        if damaged:
            at = draw.draw(st.integers(0, len(damaged) - 1))
            damaged[at] ^= draw.draw(st.integers(1, 255))
    cut = draw.draw(st.integers(0, len(damaged)))
    judged(bytes(damaged[:cut]) if draw.draw(st.booleans()) else bytes(damaged))


def zip64_end(records: int, size: int, offset: int, locator_at: int) -> bytes:
    end64 = b"PK\x06\x06" + struct.pack(
        "<QHHIIQQQQ", 44, 45, 45, 0, 0, records, records, size, offset
    )
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, locator_at, 1)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return end64 + locator + end


@FUZZ
@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1) | st.integers(0, 200),
)
def test_zip_hash_of_hostile_zip64_ends_is_a_zip_problem(
    records: int, size: int, offset: int, locator_at: int
) -> None:
    """zip64 directory ends claiming 2**64 records, sizes and offsets: bounded, no crash."""
    assert judged(bytes(100) + zip64_end(records, size, offset, locator_at)) is None


def test_zip_hash_needs_no_reading_for_claimed_sizes() -> None:
    """Headers claiming 4 GiB members and 2**64 entries are refused without reading them."""
    claims = [Member(P + "a.go", b"x", uncompressed_size=0xFFFFFFFE)] * 3
    assert judged(raw_zip(claims)) is None


@FUZZ
@given(
    st.lists(
        st.tuples(names.filter(lambda n: "\n" not in n), st.binary(max_size=200)),
        max_size=6,
        unique_by=lambda t: t[0],
    )
)
def test_compression_and_order_do_not_change_the_h1(files: list[tuple[str, bytes]]) -> None:
    """dirhash: the h1: is of names and contents only, stored or deflated, in any order."""
    deflated = judged(raw_zip([Member(n, d) for n, d in files]))
    stored = judged(raw_zip([Member(n, d, method=0) for n, d in reversed(files)]))
    assert deflated == stored


def test_every_bit_flip_of_a_deflate_stream_is_a_hash_or_a_zip_problem() -> None:
    """Exhaustively, each of the 8 x N one-bit flips of a member's deflate stream (bug 1:
    "invalid distance too far back" and every other zlib error) is judged, never raised."""
    text = b"package m\n\n" + b"// the quick brown fox jumps over the lazy dog\n" * 40
    packed = deflate(text)
    refused = 0
    for at in range(len(packed)):
        for bit in range(8):
            flipped = bytearray(packed)
            flipped[at] ^= 1 << bit
            member = Member(P + "m.go", text, raw=bytes(flipped))
            refused += judged(raw_zip([Member(P + "go.mod", b"module m\n"), member])) is None
    assert refused > len(packed) * 4  # most flips break the stream or its CRC


def test_the_entry_and_directory_bounds_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """cdnprobe's own caps on a central directory's entries and name bytes are ZipProblems."""
    many = raw_zip([Member(P + f"f{i}.go", b"") for i in range(11)])
    assert judged(many) is not None
    monkeypatch.setattr(goproxy, "MAX_ENTRIES", 10)
    with pytest.raises(ZipProblem, match="more than 10 entries"):
        zip_hash(io.BytesIO(many), M, V)
    monkeypatch.setattr(goproxy, "MAX_DIRECTORY_BYTES", 100)
    with pytest.raises(ZipProblem, match="central directory above 100 bytes"):
        zip_hash(io.BytesIO(raw_zip([Member(P + "a" * 101, b"")])), M, V)


def test_bytes_read_are_capped_where_checkzip_does_not_count_them() -> None:
    """A directory entry carrying 600 MiB: checkZip never counts it (Go 1.19 would hash it
    all and accept the zip; later Go refuses it); cdnprobe stops at MaxZipFile bytes read."""
    dir_bomb = Member(P + "d/", raw=bomb(600 << 20), uncompressed_size=600 << 20, crc=0)
    with pytest.raises(ZipProblem, match="total uncompressed size"):
        zip_hash(io.BytesIO(raw_zip([Member(P + "go.mod", b"module m\n"), dir_bomb])), M, V)


def bomb(size: int) -> bytes:
    """`size` zero bytes deflated (about 1/1000 of it), streamed: no big buffer here either."""
    packer, parts, block = zlib.compressobj(1, zlib.DEFLATED, -15), [], bytes(1 << 20)
    for _ in range(size >> 20):
        parts.append(packer.compress(block))
    return b"".join([*parts, packer.flush()])


@pytest.mark.parametrize(
    ("actual", "declared", "problem"),
    [
        (64 << 20, 1000, "zip: not a valid zip file"),  # more than declared: ErrFormat
        (600 << 20, 600 << 20, "total uncompressed size of module contents too large"),
    ],
)
def test_a_zip_bomb_is_refused_in_bounded_memory(actual: int, declared: int, problem: str) -> None:
    """A deflate bomb (600 MiB from 2.7 MB on the wire), declared small or declared honestly
    above MaxZipFile: refused, with the Python heap peak under 4 MiB while zip_hash runs."""
    data = raw_zip(
        [
            Member(P + "go.mod", b"module m\n"),
            Member(P + "bomb.go", raw=bomb(actual), uncompressed_size=declared, crc=0),
        ]
    )
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(ZipProblem, match=problem):
            zip_hash(io.BytesIO(data), M, V)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


# ---- the small go documents and checksum manifests ----------------------------------------

json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["Version", "Time", "sha256", "filename", "size", "name", "x"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
).map(lambda doc: json.dumps(doc).encode())
DEEP = [b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"[" * 5000 + b"]" * 5000]
HOSTILE = [b"\xff\xfe{", b'{"Version": "v1", "Time": 1}', b"1" * 5000, b'"\xed\xa0\x80"', b"\x00"]


@FUZZ
@given(json_docs | st.binary(max_size=300))
@example(DEEP[0])
@example(DEEP[1])
@example(DEEP[2])
@example(HOSTILE[0])
@example(HOSTILE[2])
@example(HOSTILE[3])
def test_parse_info_raises_only_value_error(data: bytes) -> None:
    """A .info that is not a RevInfo is a ValueError (deep nesting included), never a crash."""
    try:
        info = parse_info(data)
    except ValueError:
        return
    assert isinstance(info.version, str) and (info.time is None or isinstance(info.time, str))


@FUZZ
@given(st.binary(max_size=500))
@example(b"v1.0.0\r\nv1.1.0 2026-01-01\n\xff\xfe\n\n")
def test_parse_list_never_raises(data: bytes) -> None:
    """@v/list is any bytes: a sorted list of distinct non-empty lines."""
    versions = parse_list(data)
    assert versions == sorted(set(versions)) and all(v and v == v.strip() for v in versions)


@FUZZ
@given(st.binary(max_size=500))
def test_gomod_hash_of_any_bytes_is_a_hash(data: bytes) -> None:
    assert gomod_hash(data).startswith("h1:") and gomod_hash(memoryview(data)) == gomod_hash(data)


sums_lines = st.lists(
    st.tuples(
        st.text("0123456789abcdefABCDEF", min_size=60, max_size=66),
        st.sampled_from(["  ", " *", " ", "\t"]),
        st.text(max_size=12),
    ),
    max_size=5,
).map(lambda rows: "\n".join(d + s + n for d, s, n in rows).encode())


@FUZZ
@given(sums_lines | json_docs | st.binary(max_size=300))
@example(DEEP[0])
@example(DEEP[1])
@example(b'{"sha256": "' + b"a" * 64 + b'", "filename": "x", "size": true}')
@example(b"[\xff]")
@example("\ufeff".encode() + b"a" * 64 + b"  x\n")
def test_parse_manifest_raises_only_manifest_error(data: bytes) -> None:
    """Any manifest bytes: entries with 64-hex digests and int sizes, or ManifestError."""
    try:
        entries = parse_manifest(data)
    except ManifestError:
        return
    for name, entry in entries.items():
        assert entry.name == name and len(entry.sha256) == 64
        assert entry.size is None or (type(entry.size) is int and entry.size >= 0)


def test_a_json_size_true_is_no_size() -> None:
    """JSON's true is a bool, not a size (Python's bool is an int)."""
    doc = parse_manifest(b'{"sha256": "' + b"a" * 64 + b'", "filename": "x", "size": true}')
    assert doc["x"].size is None


def test_a_manifest_of_invalid_utf8_json_is_refused() -> None:
    with pytest.raises(ManifestError, match="not JSON"):
        parse_manifest(b'{"sha256": "\xff", "filename": "x"}')


def test_a_bom_does_not_hide_the_first_line() -> None:
    entries = parse_manifest("\ufeff".encode() + b"a" * 64 + b"  x\n")
    assert list(entries) == ["x"]


# ---- prober/validators/apt.py (read-only here: its owner fixes what these find) ------------


def compressed(suffix: str, data: bytes) -> bytes:
    if suffix == ".gz":
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)
        return packer.compress(data) + packer.flush()
    if suffix == ".xz":
        return lzma.compress(data)
    if suffix == ".bz2":
        return bz2.compress(data)
    return data


stanzas = st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=5).map(
    lambda rows: "".join(f"Package: {p}\nVersion: {v}\n\n" for p, v in rows).encode()
)


@FUZZ
@given(
    st.sampled_from([".gz", ".xz", ".bz2", "", ".zst"]),
    stanzas | st.binary(max_size=300),
    st.data(),
)
def test_package_counter_never_raises(suffix: str, text: bytes, draw: st.DataObject) -> None:
    """Any index bytes, compressed then damaged and cut into chunks: feed/finish never raise."""
    data = bytearray(compressed(suffix, text))
    if data and draw.draw(st.booleans()):
        data[draw.draw(st.integers(0, len(data) - 1))] ^= draw.draw(st.integers(1, 255))
    data = data[: draw.draw(st.integers(0, len(data)))]
    counter = PackageCounter(suffix, frozenset(["a"]))
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=4)))
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        counter.feed(memoryview(bytes(data[start:end])))
    counter.finish()
    assert counter.count >= 0


def test_package_counter_memory_is_bounded_on_a_gz_bomb() -> None:
    """50 KB of gzip that inflates to 48 MiB of one line: the heap stays under 16 MiB."""
    gz = compressed(".gz", bytes(48 << 20))
    tracemalloc.start()
    try:
        counter = PackageCounter(".gz")
        for at in range(0, len(gz), 1 << 16):
            counter.feed(memoryview(gz[at : at + (1 << 16)]))
        counter.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


release_text = st.lists(
    st.sampled_from(
        [
            "Date: Tue, 02 Jun 2025 10:00:00 UTC",
            "Valid-Until: x",
            "SHA256:",
            " ",
            " abc 12 main/binary-amd64/Packages",
            " abc x y",
            "Acquire-By-Hash: yes",
            "no colon",
            "",
            "-----BEGIN PGP SIGNED MESSAGE-----",
            "- - dash",
        ]
    )
    | st.text(max_size=20),
    max_size=8,
).map("\n".join)


@FUZZ
@given(release_text | st.text(max_size=200), st.booleans())
def test_parse_release_raises_only_value_errors(text: str, signed: bool) -> None:
    """Any Release text: a Release or a ValueError (a ReleaseError, never a bare ValueError)."""
    with contextlib.suppress(ValueError):
        parse_release(text, signed)


@FUZZ
@given(
    st.binary(max_size=400)
    | release_text.map(
        lambda t: ("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + t).encode()
    )
)
def test_unwrap_inrelease_raises_only_release_error(data: bytes) -> None:
    try:
        text, _signed = unwrap_inrelease(data)
    except ReleaseError:
        return
    assert isinstance(text, str)


def test_parse_release_raises_release_error_on_a_superscript_size() -> None:
    with contextlib.suppress(ReleaseError):
        parse_release("Date: Tue, 02 Jun 2025 10:00:00 UTC\nSHA256:\n abc ² main/Packages\n")
