"""APT repositories: a Release file and the index files it lists, checked the way apt does.

For one edge: parse its InRelease (or Release), pick the index files it lists for the
selected components and architectures, and compare each file that edge served with the size
and SHA-256 its own Release promises. A mismatch is exactly what makes `apt-get update`
fail with "File has unexpected size (…). Mirror sync in progress?" or "Hash Sum mismatch".

`would_fail` models apt: per index it fetches only one compression, the first of
Acquire::CompressionTypes::Order (xz, bz2, lzma, gz, lz4, zst, then none) that the Release
lists, plus Translation-en where listed; an expired Valid-Until fails the whole update. A
broken variant apt does not fetch is a problem, but not a failure; so is a missing by-hash
file, as apt then falls back to the plain name (tests/test_apt.py checks both with real apt).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from prober.compare import parse_http_date
from prober.model import (
    AptEdgeResult,
    AptProblem,
    FetchedIndex,
    IndexFile,
    Problem,
    Release,
)

COMPRESSION_ORDER = (".xz", ".bz2", ".lzma", ".gz", ".lz4", ".zst", "")
INDEX_NAMES = ("Packages", "Sources", "Translation-en")
RELEASE_MAX_BYTES = 16 << 20


class ReleaseError(ValueError):
    pass


def unwrap_inrelease(data: bytes) -> tuple[str, bool]:
    """The Release text inside an InRelease, and whether it carried an OpenPGP signature."""
    text = data.decode("utf-8", errors="replace")
    if not text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return text, False
    _armor, sep, rest = text.partition("\n\n")  # armor headers end at the first empty line
    body, sep2, signature = rest.partition("\n-----BEGIN PGP SIGNATURE-----")
    if not sep or not sep2 or "-----END PGP SIGNATURE-----" not in signature:
        raise ReleaseError("InRelease has a broken OpenPGP armor")
    # RFC 4880 §7.1: lines starting with "-" are dash-escaped as "- -".
    lines = [line[2:] if line.startswith("- ") else line for line in body.split("\n")]
    return "\n".join(lines) + "\n", True


def parse_release(text: str, signed: bool = False) -> Release:
    fields, files = _deb822(text)
    if "date" not in fields and not files:
        raise ReleaseError("not a Release file (no Date, no checksums)")
    date_text, valid_text = fields.get("date"), fields.get("valid-until")
    return Release(
        date=parse_http_date(date_text),
        date_text=date_text,
        valid_until=parse_http_date(valid_text),
        valid_until_text=valid_text,
        acquire_by_hash=fields.get("acquire-by-hash", "").strip().lower() == "yes",
        components=tuple(fields.get("components", "").split()),
        architectures=tuple(fields.get("architectures", "").split()),
        files=files,
        signed=signed,
    )


def _deb822(text: str) -> tuple[dict[str, str], dict[str, IndexFile]]:
    fields: dict[str, str] = {}
    files: dict[str, IndexFile] = {}
    current = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # a Release is one paragraph
            continue
        if line[0] in " \t":
            if current == "sha256":
                entry = line.split()
                if len(entry) == 3 and entry[1].isdigit():
                    files[entry[2]] = IndexFile(entry[2], int(entry[1]), entry[0].lower())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ReleaseError(f"not a Release field: {line[:60]!r}")
        current = name.strip().lower()
        fields[current] = value.strip()
    return fields, files


# ---- which index files ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IndexFamily:
    """One index (e.g. main/binary-amd64/Packages) in all the compressions the Release lists."""

    name: str
    variants: tuple[IndexFile, ...]
    apt_fetches: IndexFile | None

    @property
    def counted(self) -> IndexFile | None:
        """The variant whose packages are counted: the one apt reads."""
        return self.apt_fetches if self.name.endswith("Packages") else None


def index_plan(
    release: Release, components: Sequence[str] = (), architectures: Sequence[str] = ()
) -> list[IndexFamily]:
    """The index files of the selected components and architectures (default: all listed)."""
    wanted_components = set(components or release.components)
    # apt fetches binary-all beside binary-ARCH whenever the Release lists it.
    wanted_archs = set(architectures or release.architectures) | {"all"}
    families: dict[str, list[IndexFile]] = {}
    for file in release.files.values():
        base, _ = _split_compression(file.path)
        parts = base.split("/")
        if len(parts) != 3 or parts[2] not in INDEX_NAMES or parts[0] not in wanted_components:
            continue
        kind = parts[1]
        arch = kind.removeprefix("binary-") if kind.startswith("binary-") else kind
        if kind != "i18n" and arch not in wanted_archs:
            continue
        families.setdefault(base, []).append(file)
    return [
        IndexFamily(name, tuple(sorted(variants, key=lambda f: f.path)), _apt_choice(variants))
        for name, variants in sorted(families.items())
    ]


def _split_compression(path: str) -> tuple[str, str]:
    for suffix in COMPRESSION_ORDER[:-1]:
        if path.endswith(suffix):
            return path[: -len(suffix)], suffix
    return path, ""


def _apt_choice(variants: Iterable[IndexFile]) -> IndexFile | None:
    by_suffix = {_split_compression(v.path)[1]: v for v in variants}
    for suffix in COMPRESSION_ORDER:
        if suffix in by_suffix:
            return by_suffix[suffix]
    return None


def by_hash_path(file: IndexFile) -> str:
    directory = file.path.rsplit("/", 1)[0]
    return f"{directory}/by-hash/SHA256/{file.sha256}"


# ---- counting packages while the body streams past ----------------------------------------


@dataclass
class PackageCounter:
    """Decompresses an index as it streams and counts its stanzas, keeping versions of
    the package names asked for. Memory stays bounded: only a partial line is kept."""

    suffix: str
    watch: frozenset[str] = frozenset()
    count: int = 0
    versions: dict[str, set[str]] = field(default_factory=dict)
    failed: bool = False
    _partial: bytes = b""
    _package: str | None = None
    _decoder: object = None

    def __post_init__(self) -> None:
        if self.suffix == ".gz":
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self.suffix == ".xz" or self.suffix == ".lzma":
            self._decoder = lzma.LZMADecompressor()
        elif self.suffix == ".bz2":
            self._decoder = bz2.BZ2Decompressor()
        elif self.suffix:
            self.failed = True  # lz4/zst: not in the standard library; counted elsewhere

    def feed(self, chunk: memoryview) -> None:
        if self.failed:
            return
        try:
            data = self._decoder.decompress(chunk) if self._decoder else bytes(chunk)  # type: ignore[attr-defined]
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
            self.failed = True
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line)

    def finish(self) -> None:
        if self._partial and not self.failed:
            self._line(self._partial)
        self._partial = b""

    def _line(self, line: bytes) -> None:
        if line.startswith(b"Package:"):
            self.count += 1
            name = line[8:].strip().decode("utf-8", errors="replace")
            self._package = name if name in self.watch else None
        elif self._package is not None and line.startswith(b"Version:"):
            version = line[8:].strip().decode("utf-8", errors="replace")
            self.versions.setdefault(self._package, set()).add(version)


# ---- judging one edge ---------------------------------------------------------------------


def _by_hash_problem(variant: IndexFile, got: FetchedIndex) -> AptProblem:
    return AptProblem(
        by_hash_path(variant), Problem.BY_HASH_MISSING, variant.size, got.bytes_read,
        variant.sha256, got.sha256, got.error or (f"HTTP {got.status}" if got.status else None),
    )  # fmt: skip


def check_index(file: IndexFile, got: FetchedIndex) -> AptProblem | None:
    if got.error is not None:
        return AptProblem(
            file.path, Problem.FETCH_ERROR, file.size, got.bytes_read, file.sha256, None, got.error
        )
    if got.status is None or not 200 <= got.status < 300:
        return AptProblem(
            file.path, Problem.MISSING, file.size, None, file.sha256, None, f"HTTP {got.status}"
        )
    if got.bytes_read != file.size:
        return AptProblem(
            file.path, Problem.SIZE_MISMATCH, file.size, got.bytes_read, file.sha256, got.sha256
        )
    if got.sha256 != file.sha256:
        return AptProblem(
            file.path, Problem.HASH_MISMATCH, file.size, got.bytes_read, file.sha256, got.sha256
        )
    return None


def judge_edge(
    release: Release,
    plan: Sequence[IndexFamily],
    fetched: dict[str, FetchedIndex],
    counters: dict[str, PackageCounter],
    expect: Sequence[tuple[str, str]],
    now: datetime,
) -> AptEdgeResult:
    """Problems of one edge against its own Release; would_fail as apt-get update would."""
    problems: list[AptProblem] = []
    matches: dict[str, bool] = {}
    failing = False
    if release.valid_until is not None and release.valid_until < now:
        problems.append(
            AptProblem("Release", Problem.EXPIRED, detail=f"Valid-Until {release.valid_until_text}")
        )
        failing = True
    for family in plan:
        for variant in family.variants:
            got = fetched.get(variant.path)
            problem = check_index(variant, got) if got else None
            matches[variant.path] = got is not None and problem is None
            if problem is not None:
                problems.append(problem)
                failing = failing or variant == family.apt_fetches
            if release.acquire_by_hash:
                by_hash = fetched.get(by_hash_path(variant))
                if by_hash is not None and check_index(variant, by_hash) is not None:
                    problems.append(_by_hash_problem(variant, by_hash))
    packages = {}
    for family in plan:
        counter, counted = counters.get(family.name), family.counted
        if counter and counted and not counter.failed and matches.get(counted.path):
            packages[family.name] = counter.count
    problems.extend(_expectations(plan, counters, expect))
    return AptEdgeResult(release, tuple(problems), failing, packages, matches)


def _expectations(
    plan: Sequence[IndexFamily],
    counters: dict[str, PackageCounter],
    expect: Sequence[tuple[str, str]],
) -> list[AptProblem]:
    seen: dict[str, set[str]] = {}
    for family in plan:
        counter = counters.get(family.name)
        if counter is not None:
            for name, versions in counter.versions.items():
                seen.setdefault(name, set()).update(versions)
    return [
        AptProblem("Packages", Problem.EXPECTED_PACKAGE_MISSING, detail=f"{name}={version}")
        for name, version in expect
        if version not in seen.get(name, set())
    ]


def parse_expect(items: Iterable[str]) -> list[tuple[str, str]]:
    """'name=version' pairs; ValueError names a malformed item."""
    pairs = []
    for item in items:
        name, sep, version = item.partition("=")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"expected name=version, got {item!r}")
        pairs.append((name.strip(), version.strip()))
    return pairs
