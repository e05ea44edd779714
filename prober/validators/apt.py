"""APT repositories: a Release file and the index files it lists, checked the way apt does.

For one edge: parse its InRelease (or Release), pick the index files it lists for the
selected components and architectures, and compare each file that edge served with the size
and SHA-256 its own Release promises. apt's acquire rules (apt 2.6, the oracle of
tests/test_apt_conditions.py) decide `would_fail`:

- per index, apt tries candidates in order: for each compression the Release lists, in
  Acquire::CompressionTypes order (xz, bz2, lzma, gz, lz4, zst, then uncompressed), first the
  by-hash name (when by-hash is on), then the canonical name (`candidates`);
- an answer either ends the index (ok, or a failure of the whole update) or moves apt to the
  next candidate (`decide`, walked by `walk`);
- Release-level rules: which InRelease failures fall back to Release + Release.gpg
  (`inrelease_fallback`), signatures (`signature_problem`), Date and Valid-Until
  (`release_problems`).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from prober.compare import parse_http_date
from prober.errors import ErrorReason
from prober.model import AptEdgeResult, AptProblem, IndexFile, Problem, Release

# apt-pkg/aptconfiguration.cc getCompressionTypes: without Acquire::CompressionTypes::Order,
# the order of the Acquire::CompressionTypes tree apt 2.6 sets up (`apt-config dump` with an
# empty APT_CONFIG: xz bz2 lzma gz lz4 zst); debmetaindex.cc appends "uncompressed" last.
COMPRESSION_ORDER = (".xz", ".bz2", ".lzma", ".gz", ".lz4", ".zst", "")
INDEX_KINDS = ("Packages", "Sources")
RELEASE_MAX_BYTES = 16 << 20
INFLATE_STEP = 1 << 20  # PackageCounter: decompressed bytes per step
LINE_MAX = 64 << 10  # PackageCounter: the longest line start kept
STRONG_HASHES = ("sha256", "sha512")  # apt-pkg/contrib/hashes.cc HashString::usable
WEAK_HASHES = ("md5sum", "sha1")
MAX_REDIRECTS = 10  # methods/basehttp.cc: apt's redirect loop guard stops far earlier in practice
# apt-pkg/acquire-worker.cc RunMessages (400 URI Failure): these FailReasons are "transient"
TRANSIENT_ERRORS = frozenset({ErrorReason.TIMEOUT, ErrorReason.CONNECT})
# methods/basehttp.cc HttpMethod::Loop (ERROR_WITH_CONTENT_PAGE): Fail(true), transient
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 599})


class ReleaseError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class AptOptions:
    """The per-target apt options that change apt's verdict, with apt's defaults."""

    keyring: bool = False  # a keyring was given (signed-by): signatures are verified
    trusted: bool = False  # [trusted=yes]
    languages: tuple[str, ...] = ("en",)  # Acquire::Languages; () is "none"
    by_hash: str | None = None  # Acquire::By-Hash yes/no/force; None: apt's default, yes
    check_valid_until: bool = True  # Acquire::Check-Valid-Until
    max_future_seconds: float = 10.0  # Acquire::Max-FutureTime


@dataclass(frozen=True, slots=True)
class Answer:
    """What one edge answered for one candidate URL (the part apt's rules look at)."""

    status: int | None
    bytes_read: int
    sha256: str | None
    error: ErrorReason | None = None
    size: int | None = None  # Content-Length as announced
    location: str | None = None


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
    fields, files, hashes = _deb822(text)
    if "date" not in fields and not files and not hashes:
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
        files=tuple(files.values()),
        signed=signed,
    )


def release_hash_kinds(text: str) -> frozenset[str]:
    """The checksum fields a Release has (md5sum, sha1, sha256, sha512)."""
    return frozenset(_deb822(text)[2])


def release_sha512(text: str) -> dict[str, str]:
    """path → SHA512 for the files a Release lists with one (by-hash uses the strongest)."""
    found: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        if line[:1] not in (" ", "\t"):
            current = line.partition(":")[0].strip().lower() if line.strip() else current
            if not line.strip() and found:
                break
            continue
        entry = line.split()
        if current == "sha512" and len(entry) == 3 and len(entry[0]) == 128:
            found[entry[2]] = entry[0].lower()
    return found


def _deb822(text: str) -> tuple[dict[str, str], dict[str, IndexFile], set[str]]:
    fields: dict[str, str] = {}
    files: dict[str, IndexFile] = {}
    hashes: set[str] = set()
    current = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # a Release is one paragraph
            continue
        if line[0] in " \t":
            entry = line.split()
            if current in STRONG_HASHES + WEAK_HASHES and len(entry) == 3:
                hashes.add(current)
            if (
                current == "sha256"
                and len(entry) == 3
                and entry[1].isascii()
                and entry[1].isdigit()
            ):
                files[entry[2]] = IndexFile(entry[2], int(entry[1]), entry[0].lower())
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ReleaseError(f"not a Release field: {line[:60]!r}")
        current = name.strip().lower()
        fields[current] = value.strip()
    return fields, files, hashes


# ---- which index files, and apt's candidates for each ------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    """One URL apt may try for an index: a compression, by its hash or its canonical name."""

    path: str  # relative to dists/SUITE
    file: IndexFile  # what the Release promises for it
    by_hash: bool


@dataclass(frozen=True, slots=True)
class IndexFamily:
    """One index (e.g. main/binary-amd64/Packages) in all the compressions the Release lists."""

    name: str
    variants: tuple[IndexFile, ...]
    apt_fetches: IndexFile | None  # apt's first choice (the one it reads when all is well)
    candidates: tuple[Candidate, ...] = ()
    queued: bool = True  # apt queues it at all (see queued())

    @property
    def counted(self) -> IndexFile | None:
        """The variant whose packages are counted: the one apt reads."""
        if not self.queued or not self.name.endswith("Packages"):
            return None
        return self.apt_fetches


def queued(release: Release, name: str) -> bool:
    """Whether apt fetches the index `name` at all. apt-pkg/acquire-item.cc
    pkgAcqMetaBase::QueueIndexes: only when the Release lists the *uncompressed* name
    (metaIndex::Exists(Target.MetaKey), the exact key: a Release listing only
    Translation-en.bz2 or only Packages.gz does not); otherwise an optional target
    (Translation-LANG) is skipped silently and a required one with the warning "does not
    seem to provide it", never a failure. An uncompressed entry of size 0 is skipped too
    ("empty files are skipped as acquiring the very small compressed files is a waste")."""
    listed = release.file(name)
    return listed is not None and listed.size > 0


def index_plan(
    release: Release,
    components: Sequence[str] = (),
    architectures: Sequence[str] = (),
    options: AptOptions | None = None,
    sha512: Mapping[str, str] | None = None,
) -> list[IndexFamily]:
    """The index files of the selected components and architectures (default: all listed)."""
    options = options or AptOptions()
    names = INDEX_KINDS + tuple(f"Translation-{lang}" for lang in options.languages)
    wanted_components = set(components or release.components)
    # apt fetches binary-all beside binary-ARCH whenever the Release lists it.
    wanted_archs = set(architectures or release.architectures) | {"all"}
    families: dict[str, list[IndexFile]] = {}
    for file in release.files:
        base, _ = _split_compression(file.path)
        parts = base.split("/")
        if len(parts) != 3 or parts[2] not in names or parts[0] not in wanted_components:
            continue
        kind = parts[1]
        arch = kind.removeprefix("binary-") if kind.startswith("binary-") else kind
        if kind != "i18n" and arch not in wanted_archs:
            continue
        families.setdefault(base, []).append(file)
    use_by_hash = by_hash_enabled(release, options.by_hash)
    return [
        IndexFamily(
            name,
            tuple(sorted(variants, key=lambda f: f.path)),
            _apt_choice(variants),
            candidates(variants, use_by_hash, sha512),
            queued(release, name),
        )
        for name, variants in sorted(families.items())
    ]


def by_hash_enabled(release: Release, option: str | None) -> bool:
    """apt-pkg/acquire-item.cc pkgAcqTransactionItem::AcquireByHash: "force" always; "yes"
    (debmetaindex.cc: Acquire::By-Hash defaults to yes) when the Release says
    Acquire-By-Hash: yes; "no" never."""
    if option == "force":
        return True
    return option in (None, "yes") and release.acquire_by_hash


def candidates(
    variants: Iterable[IndexFile], use_by_hash: bool, sha512: Mapping[str, str] | None = None
) -> tuple[Candidate, ...]:
    """apt's order of URLs for one index. pkgAcqIndex::AutoSelectCompression keeps the
    compressions the Release lists, in COMPRESSION_ORDER; pkgAcqTransactionItem::QueueURI
    pushes the canonical URL first and the by-hash one last ("the last URI added is the
    first one tried"), so by-hash comes first and the canonical name is its fallback. The
    by-hash name is of the strongest hash listed (HashStringList::find(nullptr): SHA512
    before SHA256), as the real apt asks for by-hash/SHA512/… of an aptly publish."""
    sha512 = sha512 or {}
    by_suffix = {_split_compression(v.path)[1]: v for v in variants}
    found: list[Candidate] = []
    for suffix in COMPRESSION_ORDER:
        file = by_suffix.get(suffix)
        if file is None:
            continue
        if use_by_hash:
            found.append(Candidate(by_hash_path(file, sha512.get(file.path)), file, True))
        found.append(Candidate(file.path, file, False))
    return tuple(found)


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


def by_hash_path(file: IndexFile, sha512: str | None = None) -> str:
    directory = file.path.rsplit("/", 1)[0]
    if sha512:
        return f"{directory}/by-hash/SHA512/{sha512}"
    return f"{directory}/by-hash/SHA256/{file.sha256}"


# ---- one answer, as apt judges it ---------------------------------------------------------


class Step(StrEnum):
    """What apt does after one candidate's answer."""

    DONE = "done"  # the index is in
    NEXT = "next"  # try the next candidate (by-hash → canonical, then the next compression)
    FAIL = "fail"  # the update fails: the transaction is aborted (exit 100)
    FOLLOW = "follow"  # a redirect apt follows: the answer is the Location's


@dataclass(frozen=True, slots=True)
class Decision:
    step: Step
    problem: AptProblem | None = None


def redirect_refused(url: str, location: str) -> bool:
    """methods/basehttp.cc ServerState::HeaderLine/Redirect: same-scheme redirects and
    http → https are followed; https → http is "Redirection from https to '…' is
    forbidden"."""
    old, new = urlsplit(url).scheme, urlsplit(location).scheme or urlsplit(url).scheme
    return not (old == new or (old == "http" and new == "https"))


def decide(candidate: Candidate, got: Answer, url: str = "") -> Decision:
    """apt's answer to one candidate (acquire-worker.cc HandleFailure, acquire-item.cc
    pkgAcqIndex::CommonFailed). Transport errors and HTTP errors are plain failures: apt
    moves on (alternative URL, then next compression). A size or hash mismatch is an
    "auth error": RemoveAlternativeSite drops the other URLs of that site, CommonFailed
    tries no other compression, and the transaction is aborted."""
    file = candidate.file
    if got.error is not None:
        detail = str(got.error)
        return Decision(Step.NEXT, _problem(candidate, Problem.FETCH_ERROR, got, detail))
    if got.status is not None and 300 <= got.status < 400 and got.location:
        if url and redirect_refused(url, got.location):
            detail = f"Redirection from https to '{got.location}' is forbidden"
            return Decision(Step.NEXT, _problem(candidate, Problem.REDIRECT_REFUSED, got, detail))
        return Decision(Step.FOLLOW)
    if got.status is None or not 200 <= got.status < 300:
        reason = Problem.BY_HASH_MISSING if candidate.by_hash else Problem.MISSING
        return Decision(Step.NEXT, _problem(candidate, reason, got, f"HTTP {got.status}"))
    # methods/basehttp.cc HttpMethod::Loop: a Content-Length other than the expected size is
    # MaximumSizeExceeded, "File has unexpected size (X != Y). Mirror sync in progress?"
    # (a Content-Length of 0 skips that check: the hash catches it)
    announced = got.size if got.size is not None else 0
    if announced > 0 and announced != file.size:
        message = f"File has unexpected size ({announced} != {file.size})"
        return Decision(Step.FAIL, _problem(candidate, Problem.SIZE_MISMATCH, got, message))
    if got.bytes_read != file.size or got.sha256 != file.sha256:
        return Decision(
            Step.FAIL, _problem(candidate, Problem.HASH_MISMATCH, got, "Hash Sum mismatch")
        )
    return Decision(Step.DONE)


def _problem(candidate: Candidate, reason: Problem, got: Answer, detail: str) -> AptProblem:
    file = candidate.file
    mismatch = reason in (Problem.SIZE_MISMATCH, Problem.HASH_MISMATCH)
    return AptProblem(
        candidate.path, reason, file.size, got.bytes_read if got.status else None,
        file.sha256, got.sha256 if mismatch else None, None if mismatch else detail,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Walk:
    """apt's path through one index's candidates on one edge."""

    ok: bool
    used: Candidate | None  # the candidate apt reads (None: none worked)
    problems: tuple[AptProblem, ...]  # what it met on the way (the last one failed it)


def walk(family: IndexFamily, answers: dict[str, Answer], base_url: str = "") -> Walk:
    """Each candidate in apt's order until one is good or one fails the update; an index
    whose every candidate failed aborts the transaction (pkgAcqIndex::Failed: a listed
    index is never optional)."""
    met: list[AptProblem] = []
    for candidate in family.candidates:
        got = answers.get(candidate.path)
        if got is None:
            continue
        decision = decide(candidate, got, base_url + candidate.path if base_url else "")
        if decision.problem is not None:
            met.append(decision.problem)
        if decision.step in (Step.DONE, Step.FOLLOW):
            # FOLLOW left here: a redirect to another host (kinds/apt.py follows those on
            # the edge's own host), where apt goes and cdnprobe does not: not judged
            return Walk(True, candidate, tuple(met))
        if decision.step is Step.FAIL:
            return Walk(False, None, tuple(met))
    return Walk(not met and not family.candidates, None, tuple(met))


# ---- the Release: which InRelease failures fall back, signatures, dates -----------------


def inrelease_fallback(got: Answer, trusted: bool, clearsigned: bool = True) -> bool:
    """apt-pkg/acquire-item.cc pkgAcqMetaClearSig::Failed: after a failed InRelease apt
    tries Release + Release.gpg, except
    - after a transient error: a timeout, a refused connection, or one of the HTTP codes
      methods/basehttp.cc calls transient (408 429 500 502 503 504 599): the update fails;
    - after another HTTP error than 404 (a portal's answer, LP#346386) or an InRelease that
      is no clearsigned file (NOSPLIT, StatAuthError): only for trusted=yes
      (AllowInsecureRepositories UNSIGNED), else the update fails."""
    if got.error is not None:
        return got.error not in TRANSIENT_ERRORS
    if got.status is not None and 200 <= got.status < 300:
        return trusted and not clearsigned
    if got.status in TRANSIENT_STATUSES:
        return False
    return got.status == 404 or trusted


class Signature(StrEnum):
    VERIFIED = "verified"  # gpgv with the keyring: good signature
    NOT_VERIFIED = "not_verified"  # signed, but no keyring was given to verify it with
    NOT_SIGNED = "not_signed"  # no InRelease signature, no Release.gpg
    BAD = "bad_signature"  # gpgv: BADSIG, or no valid signature data (NODATA)
    NO_PUBKEY = "no_pubkey"  # gpgv: signed by a key the keyring lacks
    ERROR = "error"  # gpgv could not be run


def signature_problem(
    signature: Signature, file: str, trusted: bool, detail: str | None = None
) -> AptProblem | None:
    """apt-pkg/acquire-item.cc pkgAcqMetaClearSig::Failed / pkgAcqMetaSig::Failed with
    methods/gpgv.cc: an unsigned Release is "The repository '…' is not signed." (E:, exit
    100) unless trusted=yes; BADSIG and NO_PUBKEY make gpgv fail, and so the update; a
    clearsigned file without signature data is "Clearsigned file isn't valid, got 'NODATA'
    (does the network require authentication?)". trusted=yes accepts all of these."""
    if trusted or signature in (Signature.VERIFIED, Signature.NOT_VERIFIED):
        return None
    reason = {
        Signature.NOT_SIGNED: Problem.NOT_SIGNED,
        Signature.BAD: Problem.BAD_SIGNATURE,
        Signature.NO_PUBKEY: Problem.NO_PUBKEY,
        Signature.ERROR: Problem.BAD_SIGNATURE,
    }[signature]
    default = "The repository is not signed." if reason is Problem.NOT_SIGNED else None
    return AptProblem(file, reason, detail=detail or default)


NOSPLIT = "Clearsigned file isn't valid, got 'NOSPLIT' (does the network require authentication?)"


def detached_signature_problem(data: bytes) -> str | None:
    """apt-pkg/contrib/gpgv.cc ExecGPGV (detached): Release.gpg must hold only ASCII-armored
    signature blocks; a binary signature ("is in unsupported binary format"), other lines,
    an unclosed block or no block at all is a GPG error (W:), and the Release counts as
    not signed (E: "The repository '…' is not signed.")."""
    found = bad = 0
    open_block = False
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.rstrip()
        if open_block:
            open_block = line != "-----END PGP SIGNATURE-----"
        elif line == "-----BEGIN PGP SIGNATURE-----":
            found, open_block = found + 1, True
        elif line:
            bad += 1
    if found == 0:
        binary = bool(data) and data[0] & 0x80 != 0 and data[0] & 0x40 == 0
        return "Detached signature file is in unsupported binary format" if binary else "NODATA"
    if bad:
        return "Detached signature file contains lines not belonging to a signature"
    if open_block:
        return "Detached signature file contains unclosed signatures"
    return None


def release_problems(
    release: Release,
    options: AptOptions,
    now: datetime,
    hash_kinds: frozenset[str] = frozenset(),
    file: str = "Release",
) -> list[AptProblem]:
    """The Release-level refusals, each fatal. apt-pkg/deb/debmetaindex.cc
    debReleaseIndex::Load computes NotBefore = Date - Acquire::Max-FutureTime (10 s) and
    ValidUntil (only with Check-Valid-Until); pkgAcqMetaBase::VerifyVendor says "Release
    file for … is expired (invalid since …)" / "is not valid yet (invalid for another …)".
    A Release with only MD5Sum/SHA1 ("No Hash entry in Release file … considered strong
    enough", W:) is refused before any index: "The repository '…' provides only weak
    security information." (E:, acquire-item.cc pkgAcqMetaBase::CheckAuthDone)."""
    found: list[AptProblem] = []
    valid_until = release.valid_until if options.check_valid_until else None
    if valid_until is not None and valid_until < now:
        detail = f"Valid-Until {release.valid_until_text}"
        found.append(AptProblem(file, Problem.EXPIRED, detail=detail))
    if release.date is not None:
        not_before = release.date - timedelta(seconds=options.max_future_seconds)
        if not_before > now:
            detail = f"Date {release.date_text} is in the future"
            found.append(AptProblem(file, Problem.NOT_VALID_YET, detail=detail))
    if hash_kinds and not hash_kinds & set(STRONG_HASHES) and not options.trusted:
        detail = "The repository provides only weak security information."
        found.append(AptProblem(file, Problem.WEAK_HASHES, detail=detail))
    return found


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

    def feed(self, chunk: memoryview | bytes) -> None:
        if self.failed:
            return
        if self._decoder is None:
            self._take(bytes(chunk))
            return
        try:
            self._inflate(bytes(chunk))
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
            self.failed = True

    def _inflate(self, data: bytes) -> None:
        """At most INFLATE_STEP bytes out at a time: a small bomb cannot fill the heap."""
        decoder = self._decoder
        for _ in range(1 << 20):  # bounded: every step consumes input or ends the stream
            if isinstance(decoder, lzma.LZMADecompressor | bz2.BZ2Decompressor):
                if decoder.eof:
                    return
                self._take(decoder.decompress(data, INFLATE_STEP))
                data = b""
                if decoder.needs_input:
                    return
            else:  # zlib's decompressobj (its class is private: no isinstance)
                self._take(decoder.decompress(data, INFLATE_STEP))  # type: ignore[attr-defined]  # zlib.Decompress
                data = decoder.unconsumed_tail  # type: ignore[attr-defined]  # zlib.Decompress
                if not data:
                    return

    def _take(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        # only a line's start matters (Package:, Version:): a line without end is cut
        self._partial = lines.pop()[:LINE_MAX]
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


def check_index(file: IndexFile, got: Answer) -> AptProblem | None:
    """The answer for one listed file against its Release entry (for every variant, also
    those apt does not read: a broken one is a problem, not a failure)."""
    decision = decide(Candidate(file.path, file, False), got)
    return decision.problem


def judge_edge(
    release: Release,
    plan: Sequence[IndexFamily],
    fetched: dict[str, Answer],
    counters: dict[str, PackageCounter],
    expect: Sequence[tuple[str, str]],
    now: datetime,
    options: AptOptions | None = None,
    release_level: Sequence[AptProblem] = (),
    hash_kinds: frozenset[str] = frozenset(),
    base_url: str = "",
    release_file: str = "Release",
) -> AptEdgeResult:
    """Problems of one edge against its own Release; would_fail as apt-get update would."""
    options = options or AptOptions()
    problems = list(release_level)
    problems += release_problems(release, options, now, hash_kinds, release_file)
    failing = bool(problems)
    matches: dict[str, bool] = {}
    used: dict[str, Candidate | None] = {}
    for family in plan:
        seen: set[str] = set()
        if family.queued:
            outcome = walk(family, fetched, base_url)
            used[family.name] = outcome.used
            failing = failing or (not outcome.ok and not _never_fatal(family))
            seen = {p.file for p in outcome.problems}
            problems.extend(outcome.problems)
        for variant in family.variants:
            got = fetched.get(variant.path)
            problem = check_index(variant, got) if got else None
            matches[variant.path] = got is not None and problem is None
            if problem is not None and variant.path not in seen:
                problems.append(problem)
    packages = _packages(plan, counters, matches, used)
    versions = seen_versions(plan, counters)
    problems.extend(expectation_problems(versions, expect))
    return AptEdgeResult(
        release,
        tuple(problems),
        failing,
        tuple(packages.items()),
        tuple(matches.items()),
        versions=versions,
    )


def _never_fatal(family: IndexFamily) -> bool:
    """Indexes a `deb` line's update does not depend on: Sources, which apt fetches only for
    `deb-src` lines (debReleaseIndex::GetIndexTargets builds the targets of the source's
    type: a `deb` line has no Sources target). A Translation-LANG apt queues is as fatal as
    Packages: pkgAcqIndex::Failed ignores an optional target's failure only when the Release
    has no hashes for it (GetExpectedHashes().empty()), and a queued one has them."""
    return family.name.rsplit("/", 1)[-1] == "Sources"


def _packages(
    plan: Sequence[IndexFamily],
    counters: dict[str, PackageCounter],
    matches: dict[str, bool],
    used: dict[str, Candidate | None],
) -> dict[str, int]:
    packages = {}
    for family in plan:
        counter, counted = counters.get(family.name), family.counted
        if counter and counted and not counter.failed and matches.get(counted.path):
            packages[family.name] = counter.count
    return packages


def seen_versions(
    plan: Sequence[IndexFamily], counters: dict[str, PackageCounter]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Per watched package name, the versions this edge's indexes list (for the selected
    components and architectures), sorted: what an expectation is judged against."""
    seen: dict[str, set[str]] = {}
    for family in plan:
        counter = counters.get(family.name)
        if counter is not None:
            for name, versions in counter.versions.items():
                seen.setdefault(name, set()).update(versions)
    return tuple((name, tuple(sorted(seen[name]))) for name in sorted(seen))


def expectation_problems(
    versions: Sequence[tuple[str, Sequence[str]]], expect: Iterable[tuple[str, str]]
) -> list[AptProblem]:
    """NAME=VERSION pairs an edge's indexes do not list: it has not got that upload."""
    seen = dict(versions)
    return [
        AptProblem("Packages", Problem.EXPECTED_PACKAGE_MISSING, detail=f"{name}={version}")
        for name, version in expect
        if version not in seen.get(name, ())
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
