"""Module zips judged as the real `go` judges them: every case is a zip built in tmp_path,
served by a file:// GOPROXY, downloaded by `go mod download -json` (the oracle) without a
go.sum and with a go.sum holding the reference h1:, and checked by zip_hash. Cases come from
golang.org/x/mod's zip/testdata/check_zip and zip/testdata/unzip, from archive/zip's reader
(Go 1.19) and from issue 14's two bugs."""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prober.validators.goproxy import ZipProblem, zip_hash
from tests.goproxy_tree import Member, deflate, go_download, raw_zip, serve_zip
from tests.test_decoders_fuzz import members, zips

M, V = "example.com/m", "v1.0.0"
P = f"{M}@{V}/"
GOMOD = b"module example.com/m\n"
CODE = b"package m\n"
REFERENCE = [Member(P + "go.mod", GOMOD), Member(P + "m.go", CODE)]
# x/mod zip/testdata/unzip/simple.txt, byte for byte, and the hash that test expects.
SIMPLE = {
    "go.mod": b"module example.com/m\n\ngo 1.13\n",
    "m.go": b"package m\n\nfunc Foo() int { return 42 }\n",
    "cmd/hello/hello.go": b'package main\n\nimport (\n  "fmt"\n  "example.com/m"\n)\n\n'
    b"func main() {\n  fmt.Println(m.Foo())\n}\n",
}
SIMPLE_H1 = "h1:tpqYOOmuilagXzyqoJ3roUjp8gneQeTv5YVpL6BG7/k="
EMPTY_H1 = "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # x/mod unzip/empty.txt
GO_MOD_DIR_H1 = "h1:Mun5l9cBlDnnV6JasTpio2aZJSbFj++h+814mnKC/OM="  # unzip/go_mod_dir.txt


def files(*names: str, data: bytes = CODE) -> list[Member]:
    return [Member(P + "go.mod", GOMOD), *(Member(P + n, data) for n in names)]


def too_far_back() -> bytes:
    """A deflate stream with one bit flipped so that zlib finds a distance before the start
    of the output: the edge bytes that crashed `cdnprobe check --goproxy` (bug 1)."""
    text = b"package m\n\n" + b"// the quick brown fox jumps over the lazy dog\n" * 40
    packed = deflate(text)
    for i in range(len(packed)):
        for bit in range(8):
            flipped = bytearray(packed)
            flipped[i] ^= 1 << bit
            try:
                zlib.decompressobj(-15).decompress(bytes(flipped))
            except zlib.error as exc:
                if "too far back" in str(exc):
                    return raw_zip([*files(), Member(P + "m.go", text, raw=bytes(flipped))])
    raise AssertionError("no flip gives 'invalid distance too far back'")


def with_python_dirs() -> bytes:
    """The reference files rezipped by Python's zipfile with directory entries (bug 2)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(P, b"")
        archive.writestr(P + "sub/", b"")
        for m in REFERENCE:
            archive.writestr(str(m.name), m.data)
    return out.getvalue()


def stored_reordered() -> bytes:
    """The reference files stored, not deflated, in the other order: other bytes, same h1."""
    return raw_zip([Member(m.name, m.data, method=0) for m in reversed(REFERENCE)])


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[], bytes]
    problem: str | None = None  # a part of zip_hash's ZipProblem; None: go accepts the zip
    go_says: str | None = None  # a part of go's own message, where the words are the same
    h1: str | None = None  # the hash x/mod's own test expects
    module: str = M
    stops_early: bool = False  # cdnprobe stops reading where go reads on, then refuses anyway


def real_600_mib_raw() -> bytes:
    """600 MiB of zeros deflated (2.7 MB), built block by block."""
    packer, block = zlib.compressobj(1, zlib.DEFLATED, -15), bytes(1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(600)), packer.flush()])


def real_600_mib() -> bytes:
    """600 MiB of real content: go hashes it all, then Unzip refuses it (checkZip's total)."""
    crc = 0
    for _ in range(600):
        crc = zlib.crc32(bytes(1 << 20), crc)
    big = Member(P + "big.go", raw=real_600_mib_raw(), crc=crc, uncompressed_size=600 << 20)
    return raw_zip([*files(), big])


def z(*members: Member, prefix: bytes = b"") -> Callable[[], bytes]:
    return lambda: raw_zip(list(members), prefix=prefix)


BOMB = b"\0" * (8 << 20)
# fmt: off
CASES = [
    # x/mod zip/testdata/unzip
    Case("simple", z(*(Member(P + n, d) for n, d in SIMPLE.items())), h1=SIMPLE_H1),
    Case("empty", z(), h1=EMPTY_H1, module="example.com/empty"),
    Case("go_mod_dir", z(Member(P + "go.mod/a.go", b"package a\n")), h1=GO_MOD_DIR_H1),
    Case("bad_file_path", z(*files("bad.go'")), "invalid char '\\''", "invalid char '\\''"),
    Case("bad_gomod_case", z(Member(P + "GO.MOD", GOMOD)), "go.mod files must have lowercase"),
    Case("bad_submodule", z(*files("sub/go.mod")), "go.mod file not in module root directory"),
    Case("cap_go_mod_not_submodule", z(*files("a.go", "b/GO.MOD", "b/b.go")), "not in module root"),
    Case("dup_file", z(*files("dup.go", "dup.go")), 'multiple entries for file "dup.go"',
         'multiple entries for file \\"dup.go\\"'),
    Case("dup_file_and_dir", z(*files("a.go", "a.go/b.go")), "is both a file and a directory"),
    Case("file_case_conflict", z(*files("m.go", "M.GO")), "case-insensitive file name collision"),
    Case("prefix_only", z(Member(P[:-1], b""), *files()), "has unexpected file",
         f"zip for {M}@{V} has unexpected file {M}@{V}"),
    # x/mod zip/testdata/check_zip/various.txt, one invalid file each
    Case("noprefix", z(*files(), Member("noprefix", b"")), "has unexpected file noprefix"),
    Case("not_clean", z(*files("not/../clean")), "file path is not clean", "not clean"),
    Case("various_valid", z(Member(P + "valid.go", b""))),
    # module.CheckFilePath
    Case("windows_name", z(*files("con.go")), "disallowed as path element component on Windows"),
    Case("windows_name_dir", z(*files("Aux/a.go")), "disallowed as path element"),
    Case("trailing_dot", z(*files("a.")), "trailing dot in path element"),
    Case("dots_only", z(*files("x/../..")), "file path is not clean"),
    Case("space_and_punctuation", z(*files("a b+c=d,[e]{f}~g.go"))),
    Case("unicode_letter", z(*files("é.go"))),
    Case("not_a_letter", z(*files("✓.go")), "invalid char"),
    Case("invalid_utf8", z(Member(P.encode() + b"\xff.go", CODE), *files()), "invalid UTF-8"),
    Case("kelvin_sign_collision", z(*files("k.go", "\u212a.go")), "case-insensitive"),
    Case("vendor_kept", z(*files("vendor/x/y.go", "sub/vendor/z.go"))),
    # dirhash.Hash1
    Case("newline_in_name", z(*files("a\nb.go")), "filenames with newlines are not supported",
         "filenames with newlines are not supported"),
    # bug 2: directory entries are hashed
    Case("dir_entries", with_python_dirs),
    Case("root_dir_entry", z(Member(P, b"", method=0), *files())),
    Case("stored_reordered", stored_reordered),
    Case("dir_entry_bytes_hashed", z(*files(), Member(P + "d/", b"Go 1.19 hashes these"))),
    Case("dir_entry_crc_checked", z(*files(), Member(P + "d/", b"", method=0, crc=5)), "zip: checksum error", "zip: checksum error"),
    # archive/zip (Go 1.19 reader.go)
    Case("bug1_deflate_too_far_back", too_far_back, "flate: corrupt input", "flate: corrupt"),
    Case("crc_mismatch", z(*files(), Member(P + "a.go", CODE, crc=1)), "zip: checksum error",
         "zip: checksum error"),
    Case("crc_zero_unchecked", z(Member(P + "go.mod", GOMOD, crc=0), Member(P + "m.go", CODE))),
    Case("descriptor", z(Member(P + "go.mod", GOMOD, descriptor=True), REFERENCE[1])),
    Case("descriptor_bad_crc", z(*files(), Member(P + "a.go", CODE, descriptor=True, crc=7)),
         "zip: checksum error"),
    Case("method_bzip2", z(*files(), Member(P + "a.go", CODE, method=12)),
         "zip: unsupported compression algorithm", "unsupported compression algorithm"),
    Case("encrypted_flag_ignored", z(Member(P + "go.mod", GOMOD, flags=1), REFERENCE[1])),
    Case("symlink_mode_ignored", z(REFERENCE[0], Member(P + "m.go", CODE,
         external_attrs=0o120777 << 16))),
    Case("prepended_bytes", z(*REFERENCE, prefix=b"#!/bin/sh\nexit 0\n")),
    Case("declared_size_short", z(*files(), Member(P + "a.go", CODE, uncompressed_size=3)),
         "zip: not a valid zip file", "not a valid zip file"),
    Case("declared_size_long", z(*files(), Member(P + "a.go", CODE, uncompressed_size=99)),
         "unexpected EOF", "unexpected EOF"),
    Case("deflate_bomb", z(*files(), Member(P + "a.go", BOMB, uncompressed_size=1000)),
         "zip: not a valid zip file"),
    Case("claims_600_mib", z(*files(), Member(P + "a.go", CODE, uncompressed_size=600 << 20)),
         "unexpected EOF", "unexpected EOF"),
    Case("deflate_cut", z(*files(), Member(P + "a.go", CODE, raw=deflate(CODE * 50)[:9],
         uncompressed_size=500)), "unexpected EOF"),
    Case("truncated", lambda: raw_zip(REFERENCE)[:-30], "zip: not a valid zip file",
         "not a valid zip file"),
    Case("not_a_zip", lambda: b"<html>503 Service Unavailable</html>", "not a valid zip file"),
    # zip.checkZip sizes
    Case("gomod_too_large", z(Member(P + "go.mod", GOMOD + b" " * (16 << 20))),
         "go.mod file too large", "go.mod file too large"),
    Case("license_at_limit", z(*files(), Member(P + "LICENSE", b" " * (16 << 20)))),
    Case("real_600_mib", real_600_mib, "too large", "total uncompressed size of module contents too large", stops_early=True),
    # Unzip on Linux: NAME_MAX
    Case("name_too_long", z(*files("a" * 256 + ".go")), "file name too long", "too long"),
]
# fmt: on


def judge(data: bytes, module: str) -> tuple[str | None, ZipProblem | None]:
    try:
        return zip_hash(io.BytesIO(data), module, V), None
    except ZipProblem as exc:
        return None, exc


@pytest.fixture(scope="module")
def reference_h1(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The go.sum line every pinned run gets: go's own hash of the reference zip."""
    root = tmp_path_factory.mktemp("reference")
    data = raw_zip(REFERENCE)
    serve_zip(root, M, V, data)
    run = go_download(root / "work", root, M, V, None)
    assert run.ok, run.output
    assert json.loads(run.output)["Sum"] == zip_hash(io.BytesIO(data), M, V)
    return str(json.loads(run.output)["Sum"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_zip_hash_agrees_with_go(case: Case, tmp_path: Path, reference_h1: str) -> None:
    """zip_hash accepts exactly what go accepts, with go's h1:, and refuses for go's reason;
    with a go.sum, go fails exactly when the h1: differs, and says "checksum mismatch"
    exactly when zip_hash hashed the zip (ZipProblem.h1 included) to another value."""
    data = case.build()
    h1, problem = judge(data, case.module)
    if case.problem is None:
        assert problem is None, problem
    else:
        assert problem is not None and case.problem in str(problem), (problem, h1)
    if case.h1 is not None:
        assert h1 == case.h1
    root = tmp_path / "proxy"
    serve_zip(root, case.module, V, data)
    plain = go_download(tmp_path / "plain", root, case.module, V, None)
    assert plain.ok == (problem is None), (plain.output, problem)
    if plain.ok:
        assert json.loads(plain.output)["Sum"] == h1
    if case.go_says is not None:
        assert case.go_says in plain.output
    if case.module != M:
        return
    pinned = go_download(tmp_path / "pinned", root, M, V, reference_h1)
    assert pinned.ok == (h1 == reference_h1), (pinned.output, h1)
    if case.stops_early:  # go's first words are "checksum mismatch", cdnprobe's the size
        return
    hashed = h1 if problem is None else problem.h1
    mismatch = hashed is not None and hashed != reference_h1
    assert ("checksum mismatch" in pinned.output) == mismatch, (pinned.output, hashed)


def test_directory_entries_change_the_h1() -> None:
    """Bug 2: a rezip with directory entries is another h1: (go refuses it against go.sum)."""
    rezipped, _ = judge(with_python_dirs(), M)
    plain, _ = judge(raw_zip(REFERENCE), M)
    assert rezipped is not None and plain is not None and rezipped != plain


def test_corrupt_deflate_is_a_zip_problem_not_a_crash() -> None:
    """Bug 1: zlib's "invalid distance too far back" becomes a ZipProblem."""
    with pytest.raises(ZipProblem, match="too far back"):
        zip_hash(io.BytesIO(too_far_back()), M, V)


def test_unzip_rules_come_after_the_hash() -> None:
    """A zip go hashes and then refuses in Unzip carries its h1:, as go compares it with
    go.sum first; one go refuses while reading carries none."""
    _, dup = judge(raw_zip(files("dup.go", "dup.go")), M)
    _, crc = judge(raw_zip([*files(), Member(P + "a.go", CODE, crc=1)]), M)
    assert dup is not None and dup.h1 is not None and dup.h1.startswith("h1:")
    assert crc is not None and crc.h1 is None


def test_a_directory_entry_above_max_zip_file_is_where_cdnprobe_stops_before_go(
    tmp_path: Path,
) -> None:
    """The one known disagreement, on purpose: go 1.19 hashes a directory entry's 600 MiB and
    accepts the zip (checkZip never counts directory entries; later Go refuses such an entry
    with ErrFormat); cdnprobe stops reading at MaxZipFile bytes and refuses it."""
    dir_bomb = Member(P + "d/", raw=real_600_mib_raw(), crc=0, uncompressed_size=600 << 20)
    data = raw_zip([*files(), dir_bomb])
    _, problem = judge(data, M)
    assert problem is not None and "too large" in str(problem)
    serve_zip(tmp_path / "proxy", M, V, data)
    run = go_download(tmp_path / "plain", tmp_path / "proxy", M, V, None)
    assert run.ok, run.output


valid_members = st.builds(
    Member,
    name=st.text(st.sampled_from("abAB._-/é K"), min_size=1, max_size=8).map(lambda n: P + n),
    data=st.binary(max_size=50),
    method=st.sampled_from([0, 8]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(valid_members | members, max_size=4).map(raw_zip) | zips, st.data())
def test_random_hostile_zips_get_go_s_verdict(data: bytes, draw: st.DataObject) -> None:
    """Differential: random zips (plausible names, hostile fields, a flipped byte) are
    accepted by zip_hash, with go's h1:, exactly when `go mod download` accepts them."""
    if data and draw.draw(st.booleans()):
        damaged = bytearray(data)
        damaged[draw.draw(st.integers(0, len(data) - 1))] ^= draw.draw(st.integers(1, 255))
        data = bytes(damaged)
    h1, problem = judge(data, M)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        serve_zip(root / "proxy", M, V, data)
        run = go_download(root / "work", root / "proxy", M, V, None)
    assert run.ok == (problem is None), (run.output, problem)
    if run.ok:
        assert json.loads(run.output)["Sum"] == h1
