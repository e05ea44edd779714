"""Go module proxy: what an edge serves for a module, checked the way the `go` command does.

Per edge and module: `@v/list`, `@latest`, and per version `.info`, `.mod` and `.zip`. The
zip is judged as `go mod download` judges it (cmd/go/internal/modfetch/fetch.go: downloadZip,
then hashZip, then modzip.Unzip), and its `h1:` hash (go.sum's algorithm,
golang.org/x/mod/sumdb/dirhash.HashZip + Hash1) is compared across edges and, when the config
gives one, with the go.sum line. Pure: the zip arrives as a file object the caller spooled.

The reference is the source of the `go` this project tests against, Debian's golang-go 1.19
(archive/zip of Go 1.19, x/mod vendored at v0.6.0-dev.0.20220419223038-86c51ed26bb4), and the
current golang.org/x/mod, whose zip.go checkZip/Unzip and dirhash are unchanged since. Where a
later Go differs, the comment says so. The zip is read by our own reader, written after Go's
archive/zip/reader.go, because Python's zipfile accepts and refuses other zips than Go's does
(it always checks a zero CRC, refuses encrypted members, trusts other offsets).

Every failure is a ZipProblem (a ValueError) whose message is go's where go has one;
ZipProblem.h1 carries the hash when go would have computed it before refusing the zip, so a
caller can report go's first error: a go.sum mismatch comes before any modzip.Unzip rule.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

# golang.org/x/mod/zip/zip.go: MaxZipFile, MaxGoMod, MaxLICENSE.
MAX_ZIP_FILE = 500 << 20
MAX_GO_MOD = 16 << 20
MAX_LICENSE = 16 << 20
# cdnprobe's own bounds, not go's (go has none but the zip's size): memory stays bounded
# whatever the central directory claims. Real module zips stay far below both.
MAX_ENTRIES = 200_000
MAX_DIRECTORY_BYTES = 64 << 20
NAME_MAX = 255  # Linux: Unzip's os.OpenFile/MkdirAll fail on a longer path element
_BLOCK = 1 << 16

ERR_FORMAT = "zip: not a valid zip file"  # archive/zip: ErrFormat
ERR_ALGORITHM = "zip: unsupported compression algorithm"  # archive/zip: ErrAlgorithm
ERR_CHECKSUM = "zip: checksum error"  # archive/zip: ErrChecksum
ERR_UNEXPECTED_EOF = "unexpected EOF"  # io.ErrUnexpectedEOF
ERR_EOF = "EOF"  # io.EOF, where Go returns it as an error (short ReadAt)
_U64 = 1 << 64
TOO_LARGE = (
    f"total uncompressed size of module contents too large (max size is {MAX_ZIP_FILE} bytes)"
)


def escape_path(path: str) -> str:
    """Module or version path as the proxy protocol spells it: upper case becomes !lower."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in path)


def hash1(files: Iterable[tuple[str, bytes]]) -> str:
    """dirhash.Hash1 over (name, sha256 digest) pairs: sha256 of the sorted summary lines."""
    return _hash1((name.encode("utf-8", "surrogateescape"), digest) for name, digest in files)


def _hash1(files: Iterable[tuple[bytes, bytes]]) -> str:
    # sumdb/dirhash/hash.go Hash1: names sorted bytewise (Go's sort.Strings), one line each.
    summary = hashlib.sha256()
    for name, digest in sorted(files):
        summary.update(b"%s  %s\n" % (digest.hex().encode(), name))
    return "h1:" + base64.b64encode(summary.digest()).decode()


def gomod_hash(data: bytes) -> str:
    """The `/go.mod` line of go.sum: Hash1 over one file named go.mod."""
    return hash1([("go.mod", hashlib.sha256(bytes(data)).digest())])


class ZipProblem(ValueError):
    """Why go refuses the zip. `h1` is the zip's hash when go computes it before refusing
    (the modzip.Unzip rules), None when go stops earlier (reading, hashing)."""

    def __init__(self, message: str, h1: str | None = None) -> None:
        super().__init__(message)
        self.h1 = h1


# ---- archive/zip (Go 1.19, src/archive/zip/reader.go), read with bounded memory ------------


@dataclass(frozen=True, slots=True)
class _Entry:
    name: bytes
    flags: int
    method: int
    crc32: int
    compressed_size: int  # uint64, as Go holds it
    uncompressed_size: int
    header_offset: int  # int64, base offset included


def _int64(value: int) -> int:
    """Go's int64 conversion and arithmetic: wraps around."""
    value %= _U64
    return value - _U64 if value >= 1 << 63 else value


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 8], "little")


class _Zip:
    """The file the zip is in: reads at absolute offsets, as Go's io.ReaderAt does."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.start = stream.tell()
        self.size = stream.seek(0, 2) - self.start

    def read(self, offset: int, length: int) -> bytes:
        """Up to length bytes (fewer at the end of the file)."""
        if offset < 0:
            raise ZipProblem("negative offset")  # os.File.ReadAt
        if length <= 0 or offset >= self.size:
            return b""
        self.stream.seek(self.start + offset)
        return self.stream.read(min(length, self.size - offset))

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly length bytes, or Go's ReadAt error (io.EOF on a short read)."""
        data = self.read(offset, length)
        if len(data) < length:
            raise ZipProblem(ERR_EOF)
        return data


def _find_signature(block: bytes) -> int:
    # reader.go findSignatureInBlock: the last "PK\x05\x06" whose comment fits the block.
    i = len(block) - 22
    while i >= 0:
        i = block.rfind(b"PK\x05\x06", 0, i + 4)
        if i < 0:
            break
        if _u16(block, i + 20) + 22 + i <= len(block):
            return i
        i -= 1
    return -1


def _directory_end(z: _Zip) -> tuple[int, int, int]:
    """reader.go readDirectoryEnd → (records, directory offset, base offset)."""
    block, end_offset = b"", -1
    for i, length in enumerate((1024, 65 * 1024)):
        length = min(length, z.size)
        block = z.read(z.size - length, length)
        if (p := _find_signature(block)) >= 0:
            block, end_offset = block[p:], z.size - length + p
            break
        if i == 1 or length == z.size:
            raise ZipProblem(ERR_FORMAT)
    records, dir_size, dir_offset = _u16(block, 10), _u32(block, 12), _u32(block, 16)
    # Go compares the 32-bit directory size with 0xffff here, a quirk kept as is.
    maybe_zip64 = records == 0xFFFF or dir_size == 0xFFFF or dir_offset == 0xFFFFFFFF
    if maybe_zip64 and (p := _directory64_locator(z, end_offset)) >= 0:
        end_offset = p
        end64 = z.read_at(p, 56)  # readDirectory64End
        if _u32(end64, 0) != 0x06064B50:
            raise ZipProblem(ERR_FORMAT)
        records, dir_size, dir_offset = _u64(end64, 32), _u64(end64, 40), _u64(end64, 48)
    base = _int64(end_offset - _int64(dir_size) - _int64(dir_offset))
    if not 0 <= _int64(base + _int64(dir_offset)) < z.size:
        raise ZipProblem(ERR_FORMAT)
    return records, dir_offset, base


def _directory64_locator(z: _Zip, end_offset: int) -> int:
    # reader.go findDirectory64End: -1 when there is no usable zip64 locator.
    if end_offset - 20 < 0:
        return -1
    loc = z.read_at(end_offset - 20, 20)
    if _u32(loc, 0) != 0x07064B50 or _u32(loc, 4) != 0 or _u32(loc, 16) != 1:
        return -1
    return _int64(_u64(loc, 8))


class _EndOfDirectory(Exception):
    """readDirectoryHeader's ErrFormat or ErrUnexpectedEOF: the end of the listing."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Directory:
    """The central directory, read header by header (reader.go init, readDirectoryHeader)."""

    def __init__(self, z: _Zip, offset: int) -> None:
        self.z, self.offset, self.name_bytes = z, offset, 0

    def read_full(self, length: int) -> bytes:
        data = self.z.read(self.offset, length)
        self.offset += len(data)
        if length and not data:
            raise ZipProblem(ERR_EOF)  # io.ReadFull: nothing read is io.EOF, fatal in init
        if len(data) < length:
            raise _EndOfDirectory(ERR_UNEXPECTED_EOF)
        return data

    def header(self, base: int) -> _Entry:
        head = self.read_full(46)
        if _u32(head, 0) != 0x02014B50:
            raise _EndOfDirectory(ERR_FORMAT)
        name_len, extra_len, comment_len = _u16(head, 28), _u16(head, 30), _u16(head, 32)
        self.name_bytes += name_len + extra_len + comment_len
        if self.name_bytes > MAX_DIRECTORY_BYTES:
            raise ZipProblem(f"cdnprobe: central directory above {MAX_DIRECTORY_BYTES} bytes")
        rest = self.read_full(name_len + extra_len + comment_len)
        sizes = _zip64_sizes(
            rest[name_len : name_len + extra_len], _u32(head, 20), _u32(head, 24), _u32(head, 42)
        )
        compressed, uncompressed, offset = sizes
        return _Entry(
            name=rest[:name_len],
            flags=_u16(head, 8),
            method=_u16(head, 10),
            crc32=_u32(head, 16),
            compressed_size=compressed,
            uncompressed_size=uncompressed,
            header_offset=_int64(_int64(offset) + base),
        )


def _zip64_sizes(extra: bytes, compressed: int, uncompressed: int, offset: int) -> tuple[int, ...]:
    # readDirectoryHeader: the zip64 extra (tag 1) replaces only the fields that are maxed out.
    need_u, need_c, need_o = (
        uncompressed == 0xFFFFFFFF,
        compressed == 0xFFFFFFFF,
        (offset == 0xFFFFFFFF),
    )
    while len(extra) >= 4:
        tag, size = _u16(extra, 0), _u16(extra, 2)
        if len(extra) - 4 < size:
            break
        field, extra = extra[4 : 4 + size], extra[4 + size :]
        if tag != 1:
            continue
        values = [uncompressed, compressed, offset]
        for i, needed in enumerate((need_u, need_c, need_o)):
            if needed:
                if len(field) < 8:
                    raise _EndOfDirectory(ERR_FORMAT)
                values[i], field = _u64(field, 0), field[8:]
        uncompressed, compressed, offset = values
        need_u = need_c = need_o = False
    # A maxed-out uncompressed size alone is accepted (42.zip); the other two are not.
    if need_c or need_o:
        raise _EndOfDirectory(ERR_FORMAT)
    return compressed, uncompressed, offset


def _read_entries(z: _Zip) -> list[_Entry]:
    """zip.NewReader (reader.go init): every header until a bad one; the count must agree
    with the directory end's, modulo 65536."""
    records, dir_offset, base = _directory_end(z)
    directory = _Directory(z, _int64(base + _int64(dir_offset)))
    entries: list[_Entry] = []
    while True:
        try:
            entries.append(directory.header(base))
        except _EndOfDirectory as end:
            # A non-zero base offset that finds no header is retried with base 0.
            if end.reason == ERR_FORMAT and base != 0 and not entries:
                base, directory.offset = 0, _int64(dir_offset)
                continue
            if len(entries) % 0x10000 != records % 0x10000:
                raise ZipProblem(end.reason) from None
            return entries
        if len(entries) > MAX_ENTRIES:
            raise ZipProblem(f"cdnprobe: more than {MAX_ENTRIES} entries in the zip")


def _section(z: _Zip, offset: int, length: int) -> Iterator[bytes]:
    """io.NewSectionReader(offset, length) read to its end in blocks (short at end of file)."""
    end = offset + length
    while offset < end:
        block = z.read(offset, min(_BLOCK, end - offset))
        if not block:
            return
        offset += len(block)
        yield block


def _inflate(compressed: Iterator[bytes]) -> Iterator[bytes]:
    """compress/flate's reader in blocks of at most _BLOCK bytes: bytes after the final
    block are ignored; input that ends before it is io.ErrUnexpectedEOF."""
    inflater = zlib.decompressobj(-15)
    try:
        for data in compressed:
            while True:
                block = inflater.decompress(data, _BLOCK)
                if block:
                    yield block
                if inflater.eof:
                    return
                data = inflater.unconsumed_tail
                if not data and len(block) < _BLOCK:
                    break
    except zlib.error as exc:
        raise ZipProblem(f"flate: corrupt input: {exc}") from None
    raise ZipProblem(ERR_UNEXPECTED_EOF)


def _member_sha256(z: _Zip, entry: _Entry, budget: list[int]) -> bytes:
    """File.Open + checksumReader read to EOF (reader.go), hashed as dirhash.Hash1 does;
    budget[0] is what may still be read of all members together."""
    local = z.read_at(entry.header_offset, 30)  # findBodyOffset
    if _u32(local, 0) != 0x04034B50:
        raise ZipProblem(ERR_FORMAT)
    body = entry.header_offset + 30 + _u16(local, 26) + _u16(local, 28)
    if entry.method not in (0, 8):
        raise ZipProblem(ERR_ALGORITHM)
    size = _int64(entry.compressed_size)
    # io.NewSectionReader (Go 1.19) has no overflow guard: a limit past 2**63 wraps, reads nothing.
    empty = size <= 0 or body + size >= 1 << 63
    raw = iter(()) if empty else _section(z, body, size)
    blocks = raw if entry.method == 0 else _inflate(raw)
    digest, crc, nread = hashlib.sha256(), 0, 0
    for block in blocks:
        nread += len(block)
        if nread > entry.uncompressed_size:  # the declared size bounds what is read
            raise ZipProblem(ERR_FORMAT)
        budget[0] -= len(block)
        if budget[0] < 0:
            raise ZipProblem(TOO_LARGE)
        digest.update(block)
        crc = zlib.crc32(block, crc)
    if nread != entry.uncompressed_size:
        raise ZipProblem(ERR_UNEXPECTED_EOF)
    if entry.flags & 0x8:
        _check_data_descriptor(z, body + size, entry)
    # Without a data descriptor, a zero CRC in the directory is not checked (reader.go Read).
    if (entry.flags & 0x8 or entry.crc32 != 0) and crc != entry.crc32:
        raise ZipProblem(ERR_CHECKSUM)
    return digest.digest()


def _check_data_descriptor(z: _Zip, offset: int, entry: _Entry) -> None:
    # reader.go readDataDescriptor: optional signature, then the CRC, which must match.
    data = z.read(offset, 16)
    need = 16 if data[:4] == b"PK\x07\x08" else 12
    if len(data) < need:
        raise ZipProblem(ERR_UNEXPECTED_EOF)
    if _u32(data, need - 12) != entry.crc32:
        raise ZipProblem(ERR_CHECKSUM)


# ---- golang.org/x/mod: module.CheckFilePath and zip.checkZip -----------------------------

_FILE_PUNCTUATION = frozenset("!#$%&()+,-.=@[]^_{}~ ")
# module/module.go badWindowsNames, compared with strings.EqualFold: kept folded.
_WINDOWS_NAMES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"{p}{d}" for p in ("com", "lpt") for d in "123456789"]
)


def _goquote(text: str) -> str:
    """Go's %q, near enough for messages."""
    return json.dumps(text, ensure_ascii=False)


def _gorune(char: str) -> str:
    """Go's %q of a rune."""
    if char in "'\\":
        return f"'\\{char}'"
    if char.isprintable():
        return f"'{char}'"
    return f"'\\x{ord(char):02x}'" if ord(char) < 0x80 else f"'\\u{ord(char):04x}'"


def _file_name_ok(char: str) -> bool:
    # module/module.go fileNameOK: ASCII letters, digits and some punctuation; any letter.
    if char < "\x80":
        return (char.isascii() and char.isalnum()) or char in _FILE_PUNCTUATION
    return char.isalpha()  # unicode.IsLetter (Python's Unicode tables may be newer than Go's)


def _check_elem(elem: str) -> str | None:
    # module/module.go checkElem, kind filePath.
    if elem == "":
        return "empty path element"
    if elem.count(".") == len(elem):
        return f"invalid path element {_goquote(elem)}"
    if elem.endswith("."):
        return "trailing dot in path element"
    for char in elem:
        if not _file_name_ok(char):
            return f"invalid char {_gorune(char)}"
    short = elem.split(".", 1)[0]
    if _fold(short) in _WINDOWS_NAMES:
        return f"{_goquote(short)} disallowed as path element component on Windows"
    return None


def check_file_path(path: str) -> str | None:
    """module.CheckFilePath (module/module.go, checkPath with kind filePath): None if valid."""
    if any("\udc80" <= c <= "\udcff" for c in path):
        problem: str | None = "invalid UTF-8"
    elif path == "":
        problem = "empty string"
    elif "//" in path:
        problem = "double slash"
    elif path.endswith("/"):
        problem = "trailing slash"
    else:
        problem = next((p for e in path.split("/") if (p := _check_elem(e))), None)
    return None if problem is None else f"malformed file path {_goquote(path)}: {problem}"


def _clean(path: str) -> str:
    """Go's path.Clean."""
    rooted, parts = path.startswith("/"), list[str]()
    for elem in path.split("/"):
        if elem in ("", "."):
            continue
        if elem != "..":
            parts.append(elem)
        elif parts and parts[-1] != "..":
            parts.pop()
        elif not rooted:
            parts.append("..")
    cleaned = ("/" if rooted else "") + "/".join(parts)
    return cleaned or "."


def _fold(text: str) -> str:
    """zip.go strToFold: each rune replaced by the smallest rune of its simple case-folding
    orbit (unicode.SimpleFold), A-Z then lowered. Approximated by closing over
    single-rune upper() and lower(), which reaches the same minimum for Unicode's orbits."""
    if text.isascii() and not any("A" <= c <= "Z" for c in text):
        return text
    out = []
    for char in text:
        orbit, todo = {char}, [char]
        while todo:
            current = todo.pop()
            for other in (current.upper(), current.lower()):
                if len(other) == 1 and other not in orbit:
                    orbit.add(other)
                    todo.append(other)
        low = min(orbit)
        out.append(low.lower() if "A" <= low <= "Z" else low)
    return "".join(out)


class _Collisions:
    """zip.go collisionChecker.check."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, bool]] = {}

    def check(self, path: str, is_dir: bool) -> str | None:
        while True:
            fold = _fold(path)
            if (other := self.seen.get(fold)) is None:
                self.seen[fold] = (path, is_dir)
            elif other[0] != path:
                return (
                    f"case-insensitive file name collision: {_goquote(other[0])} and "
                    f"{_goquote(path)}"
                )
            elif other[1] != is_dir:
                return f"entry {_goquote(path)} is both a file and a directory"
            elif not is_dir:
                return f"multiple entries for file {_goquote(path)}"
            parent = path.rpartition("/")[0]
            if not parent:
                return None
            path, is_dir = parent, True


def _check_zip(entries: list[_Entry], prefix: bytes) -> list[str]:
    """zip.go checkZip (called by Unzip) on a zip downloadZip accepted: what Unzip refuses,
    in go's order (the size error first, then every invalid file in directory order)."""
    invalid: list[str] = []
    size_error: str | None = None
    collisions, total = _Collisions(), 0
    for entry in entries:
        # "path does not have prefix" cannot happen here: downloadZip refused the zip first.
        raw = entry.name[len(prefix) :].decode("utf-8", "surrogateescape")
        shown = entry.name.decode("utf-8", "replace")
        if raw == "":
            continue
        is_dir = raw.endswith("/")
        name = raw[:-1] if is_dir else raw
        problem = _name_problem(name, is_dir, collisions)
        if problem is None and not is_dir:
            size = _int64(entry.uncompressed_size)
            if 0 <= size <= MAX_ZIP_FILE - total:
                total += size
            elif size_error is None:
                size_error = TOO_LARGE
            if name == "go.mod" and size > MAX_GO_MOD:
                problem = f"go.mod file too large (max size is {MAX_GO_MOD} bytes)"
            elif name == "LICENSE" and size > MAX_LICENSE:
                problem = f"LICENSE file too large (max size is {MAX_LICENSE} bytes)"
        if problem is not None:
            invalid.append(f"{shown}: {problem}")
    return [size_error] if size_error else invalid


def _name_problem(name: str, is_dir: bool, collisions: _Collisions) -> str | None:
    if _clean(name) != name:
        return "file path is not clean"  # zip.go errPathNotClean
    if (problem := check_file_path(name)) is not None:
        return problem
    if (problem := collisions.check(name, is_dir)) is not None:
        return problem
    if not is_dir and any(
        len(e.encode("utf-8", "surrogateescape")) > NAME_MAX for e in name.split("/")
    ):
        # Not a checkZip rule: Unzip's MkdirAll/OpenFile of a file (directory entries are
        # not created) then fail with ENAMETOOLONG on Linux.
        return "file name too long"
    base = name.rpartition("/")[2]
    if not is_dir and _fold(base) == "go.mod":
        if base != name:
            return "go.mod file not in module root directory"
        if name != "go.mod":
            return "go.mod files must have lowercase names"  # zip.go errGoModCase
    return None


# ---- what `go mod download` does with the zip -------------------------------------------


def _hash_zip(z: _Zip, entries: list[_Entry]) -> str:
    """dirhash.HashZip + Hash1 (sumdb/dirhash/hash.go): every entry's name, directories
    included, in sorted order; a duplicated name is listed twice and both times opens the
    last entry of that name (HashZip's map). Errors in the sorted order, as go meets them."""
    # go reads every byte before checkZip counts the declared sizes (and, in 1.19, a
    # directory entry's bytes, which checkZip never counts). Past MaxZipFile bytes actually
    # read, go refuses the zip in any case (checkZip's total size; a directory entry with
    # data is ErrFormat in later Go): stop there. Only go's message can differ.
    budget = [MAX_ZIP_FILE]
    last = {entry.name: entry for entry in entries}
    digests: dict[bytes, bytes] = {}
    lines = []
    for name in sorted(entry.name for entry in entries):
        if b"\n" in name:
            raise ZipProblem("dirhash: filenames with newlines are not supported")
        if name not in digests:
            # Go 1.19 reads a directory entry like a file (its bytes are hashed, its CRC is
            # checked). Later archive/zip returns no bytes for it without reading the local
            # header, and ErrFormat when its uncompressed size is not zero.
            digests[name] = _member_sha256(z, last[name], budget)
        lines.append((name, digests[name]))
    return _hash1(lines)


def zip_hash(stream: IO[bytes], module: str, version: str) -> str:
    """h1: of a module zip as go computes it; ZipProblem naming go's rule when `go mod
    download` would refuse the zip (with .h1 set when go hashes it before refusing)."""
    try:
        return _judge_zip(_Zip(stream), f"{module}@{version}/".encode())
    except (OSError, ValueError) as exc:  # ZipProblem is a ValueError; OSError: the spool file
        if isinstance(exc, ZipProblem):
            raise
        raise ZipProblem(f"reading the zip: {exc}") from None
    except (EOFError, OverflowError, zlib.error) as exc:  # belt and braces: never escapes
        raise ZipProblem(f"reading the zip: {exc}") from None


def _judge_zip(z: _Zip, prefix: bytes) -> str:
    # modfetch/proxy.go proxyRepo.Zip: a body above MaxZipFile is not even kept.
    if z.size > MAX_ZIP_FILE:
        raise ZipProblem("downloaded zip file too large")
    entries = _read_entries(z)  # fetch.go downloadZip: zip.NewReader
    for entry in entries:  # downloadZip: the prefix check, in directory order
        if not entry.name.startswith(prefix):
            shown = entry.name.decode("utf-8", "replace")
            raise ZipProblem(
                f"zip for {prefix[:-1].decode(errors='replace')} has unexpected file {shown}"
            )
    h1 = _hash_zip(z, entries)  # fetch.go hashZip; checkModSum compares it with go.sum next
    if problems := _check_zip(entries, prefix):  # fetch.go download → modzip.Unzip → checkZip
        raise ZipProblem("; ".join(problems), h1=h1)
    return h1


# ---- the small documents ----------------------------------------------------------------


def parse_list(data: bytes) -> list[str]:
    """@v/list: the distinct non-empty lines."""
    text = bytes(data).decode("utf-8", "replace")
    return sorted({line.strip() for line in text.splitlines() if line.strip()})


@dataclass(frozen=True, slots=True)
class Info:
    version: str
    time: str | None


def parse_info(data: bytes) -> Info:
    """.info (a RevInfo): ValueError when it is not a JSON object with a string Version."""
    try:
        doc = json.loads(bytes(data))
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested arrays
        raise ValueError(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Version"), str):
        raise ValueError("no Version field")
    time = doc.get("Time")
    return Info(doc["Version"], time if isinstance(time, str) else None)


def parse_gosum(lines: Iterable[str]) -> dict[tuple[str, str], str]:
    """go.sum lines → {(module, version or version/go.mod): h1}; ValueError names a bad line."""
    sums = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("h1:"):
            raise ValueError(f"not a go.sum line: {line!r}")
        sums[(parts[0], parts[1])] = parts[2]
    return sums
