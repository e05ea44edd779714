"""Frozen data passed between modules. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from prober.errors import ErrorReason

Family = Literal[4, 6]


class Kind(StrEnum):
    """What a target is, as its config's `type` says; carried by every report downstream."""

    PLAIN = "http"
    APT = "apt"
    GOPROXY = "goproxy"
    CHECKSUMS = "checksums"


@dataclass(frozen=True, slots=True, order=True)
class Edge:
    """One address the target's name resolves to."""

    address: str
    family: Family


@dataclass(frozen=True, slots=True)
class Observation:
    """What one edge answered to one request; error is set when no complete response came."""

    status: int | None = None
    size: int | None = None  # Content-Length as announced
    bytes_read: int = 0
    sha256: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    location: str | None = None
    elapsed_s: float = 0.0
    error: ErrorReason | None = None
    detail: str | None = None  # one line from the transport, for people; never compared
    cache: tuple[tuple[str, str], ...] = ()
    # 0: the body was hashed in this cycle. N > 0: Content-Length, ETag and Last-Modified were
    # unchanged (HEAD) and the hash is the one taken N cycles ago (opt-in: rehash_every).
    hash_age_cycles: int = 0
    http_version: str = "1.1"  # what the exchange spoke: "1.1" or "2"
    # True: asked with this edge's own last validators, the edge answered 304, and the hash
    # is that edge's last full one, hash_age_cycles old (opt-in: revalidate)
    revalidated: bool = False

    @property
    def complete(self) -> bool:
        return self.error is None and self.status is not None


class Verdict(StrEnum):
    OK = "ok"
    STALE = "stale"
    DIVERGENT = "divergent"
    ERROR = "error"


@dataclass(frozen=True, slots=True, order=True)
class VariantKey:
    """What makes two answers the same version: body hash, status (+Location), or error."""

    kind: Literal["body", "status", "error"]
    value: str

    @property
    def label(self) -> str:
        if self.kind == "body":
            return self.value[:12]
        return self.value


@dataclass(frozen=True, slots=True)
class Variant:
    key: VariantKey
    edges: tuple[Edge, ...]
    status: int | None
    bytes_read: int
    sha256: str | None
    etag: str | None
    last_modified: datetime | None  # newest Last-Modified among its edges


@dataclass(frozen=True, slots=True)
class EdgeResult:
    edge: Edge
    observation: Observation
    verdict: Verdict
    variant: VariantKey
    lag_s: float | None  # reference Last-Modified minus the edge's; 0 when it matches
    versions_behind: int | None = None  # how many references ago this body was current


class ReferenceSource(StrEnum):
    ORIGIN = "origin"
    NEWEST = "newest_last_modified"
    MAJORITY = "most_edges"
    NONE = "none"


# ---- APT (validators/apt.py fills these) -------------------------------------------------


class Problem(StrEnum):
    SIZE_MISMATCH = "size_mismatch"
    HASH_MISMATCH = "hash_mismatch"
    MISSING = "missing"
    FETCH_ERROR = "fetch_error"
    EXPIRED = "expired"
    BY_HASH_MISSING = "by_hash_missing"
    EXPECTED_PACKAGE_MISSING = "expected_package_missing"
    BAD_RELEASE = "bad_release"
    # apt's own refusals (the contract's "Clients' own rules"); each names the file
    NOT_SIGNED = "not_signed"  # no signature where apt requires one (no trusted=yes)
    BAD_SIGNATURE = "bad_signature"  # gpgv rejects it, or it is no valid clearsigned file
    NO_PUBKEY = "no_pubkey"  # signed, but by a key the keyring does not hold
    NOT_VALID_YET = "not_valid_yet"  # Date beyond now + Acquire::Max-FutureTime
    WEAK_HASHES = "weak_hashes"  # no SHA256/SHA512 for a file apt wants
    REDIRECT_REFUSED = "redirect_refused"  # https → http, or a redirect loop


@dataclass(frozen=True, slots=True)
class IndexFile:
    path: str  # relative to dists/SUITE, e.g. main/binary-amd64/Packages.gz
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Release:
    date: datetime | None
    date_text: str | None
    valid_until: datetime | None
    valid_until_text: str | None
    acquire_by_hash: bool
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    files: tuple[IndexFile, ...]  # the SHA256 section, in the Release's order
    signed: bool

    def file(self, path: str) -> IndexFile | None:
        return next((f for f in self.files if f.path == path), None)


@dataclass(frozen=True, slots=True)
class FetchedIndex:
    """What one edge served for one index path: status, bytes, hash, or the error word."""

    status: int | None
    bytes_read: int
    sha256: str | None
    error: ErrorReason | None


@dataclass(frozen=True, slots=True)
class AptProblem:
    file: str
    reason: Problem
    expected_size: int | None = None
    size: int | None = None
    expected_sha256: str | None = None
    sha256: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class AptEdgeResult:
    release: Release | None
    problems: tuple[AptProblem, ...]
    would_fail: bool
    packages: tuple[tuple[str, int], ...]  # (index apt reads, packages in it)
    index_match: tuple[tuple[str, bool], ...]  # (index path, matches this edge's Release)
    # verified, not_verified (signed, no keyring given), not_signed, bad_signature, no_pubkey,
    # error; None when no Release was read
    signature: str | None = None
    # (package name, versions the indexes list) for the names watched: the target's
    # `expect` and those of the tasks waiting on this cycle
    versions: tuple[tuple[str, tuple[str, ...]], ...] = ()


class CheckProblem(StrEnum):
    """Why an edge's copy fails its repository check (Go module, checksum manifest). The
    value is the start of the JSON `problem` text; a detail may follow in parentheses."""

    FETCH_ERROR = "fetch_error"
    MISSING = "missing"
    UNREADABLE_ZIP = "unreadable zip"
    ZIP_MISMATCH = "checksum mismatch (zip)"
    GOMOD_MISMATCH = "checksum mismatch (go.mod)"
    GOMOD_MISSING = "go.mod missing"
    BAD_INFO = "bad .info"
    NO_MANIFEST = "no readable manifest"
    NOT_LISTED = "not in the manifest"
    SIZE_MISMATCH = "size mismatch"
    CHECKSUM_MISMATCH = "checksum mismatch"

    @property
    def is_mismatch(self) -> bool:
        """A digest or size that differs from the expected one (both are worth showing)."""
        return self in _MISMATCHES


_MISMATCHES = frozenset(
    {
        CheckProblem.ZIP_MISMATCH,
        CheckProblem.GOMOD_MISMATCH,
        CheckProblem.SIZE_MISMATCH,
        CheckProblem.CHECKSUM_MISMATCH,
    }
)


@dataclass(frozen=True, slots=True)
class EdgeCheck:
    """A repository-aware check of one edge's object: the digest it should have, the one it
    has, and where the expectation came from (a checksum manifest, go.sum, most edges)."""

    address: str
    kind: Literal["sha256", "h1"]
    expected: str | None
    actual: str | None
    source: str
    problem: CheckProblem | None = None  # None when it matches
    detail: str | None = None  # e.g. "HTTP 404", "timeout", "1000 != 2000"

    @property
    def problem_text(self) -> str | None:
        if self.problem is None:
            return None
        return f"{self.problem} ({self.detail})" if self.detail else str(self.problem)


@dataclass(frozen=True, slots=True)
class ObjectReport:
    """One object (URL) compared across every edge."""

    url: str
    host: str
    path: str
    results: tuple[EdgeResult, ...]
    variants: tuple[Variant, ...]
    reference: Variant | None
    reference_source: ReferenceSource
    kind: Kind = Kind.PLAIN
    origin: Observation | None = None
    notes: tuple[str, ...] = ()
    suite: str | None = None  # APT: the suite whose InRelease this object is
    apt: tuple[tuple[str, AptEdgeResult], ...] = ()  # APT: (address, result) per edge
    name: str | None = None  # goproxy: module@version; checksums: the artifact's name
    checks: tuple[EdgeCheck, ...] = ()  # goproxy and checksums: one per edge
    origin_error: str | None = None  # the origin was asked for and gave no answer: why

    @property
    def reference_served(self) -> bool:
        """The reference is an answer, not an error status: an object every edge answers 404
        (or 503) for is consistent, and still served nowhere. A redirect every edge gives the
        same way is an answer (it is compared, never followed)."""
        ref = self.reference
        return ref is not None and ref.status is not None and 200 <= ref.status < 400

    def check_for(self, address: str) -> EdgeCheck | None:
        return next((c for c in self.checks if c.address == address), None)

    def apt_result(self, address: str) -> AptEdgeResult | None:
        return next((r for a, r in self.apt if a == address), None)

    @property
    def consistent(self) -> bool:
        return bool(self.results) and all(r.verdict is Verdict.OK for r in self.results)

    @property
    def healthy(self) -> bool:
        """What `check` exits 0 on: consistent, the origin answered if one was asked for, and
        (for plain paths) the reference is a body, not an error page every edge agrees on."""
        if not self.consistent or self.origin_error is not None:
            return False
        return self.kind is not Kind.PLAIN or self.reference_served

    @property
    def divergent_edges(self) -> tuple[EdgeResult, ...]:
        return tuple(r for r in self.results if r.verdict is not Verdict.OK)


@dataclass(frozen=True, slots=True)
class VantageAnswer:
    """What one vantage (or, without vantages, one resolver) was told: its edges, or why none.

    `ecs` is the client subnet sent as EDNS Client Subnet (None: the resolver was asked
    plainly); `error` is a DNS failure word (NXDOMAIN, SERVFAIL, REFUSED, timeout, unreachable,
    no A or AAAA records) when this vantage got no address; `ttl_s` is the shortest TTL along
    the answer's CNAME chain."""

    name: str = ""
    resolver: str = ""
    ecs: str | None = None
    addresses: tuple[Edge, ...] = ()
    error: str | None = None
    problems: tuple[str, ...] = ()  # per family, e.g. "AAAA: no records"
    ttl_s: float | None = None


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """Every address a name resolved to (the union over every vantage or resolver asked), and
    what went wrong per family, if anything."""

    name: str
    edges: tuple[Edge, ...]
    resolver: str
    problems: tuple[str, ...] = ()  # e.g. "AAAA: SERVFAIL", or "eu: timeout" with vantages
    dropped: tuple[Edge, ...] = ()  # resolved, but over the target's max_edges: not probed
    # one answer per vantage asked; without configured vantages, one per resolver (named by
    # its address) and by_vantage is False
    vantages: tuple[VantageAnswer, ...] = ()
    by_vantage: bool = False
    # every resolved edge (probed or dropped), with the names of the vantages (or resolver
    # addresses) that were sent to it, in the order they were asked
    seen_by: tuple[tuple[Edge, tuple[str, ...]], ...] = ()

    @property
    def resolved(self) -> tuple[Edge, ...]:
        return self.edges + self.dropped

    def seen_by_edge(self, edge: Edge) -> tuple[str, ...]:
        """The vantages (or resolver addresses) that named this edge; () for an unknown one."""
        return next((names for e, names in self.seen_by if e == edge), ())


@dataclass(frozen=True, slots=True)
class TargetReport:
    """One cycle of one target: what DNS said and how every object compared."""

    name: str
    host: str
    dns: DnsAnswer | None
    objects: tuple[ObjectReport, ...]
    started_at: datetime
    finished_at: datetime
    dns_error: str | None = None  # set when the name resolved to no address
    dns_rcode: str | None = None
    kind: Kind = Kind.PLAIN
    origins: tuple[str, ...] = ()  # addresses asked besides the edges: the origin's

    @property
    def edges(self) -> tuple[Edge, ...]:
        return self.dns.edges if self.dns else ()


@dataclass(frozen=True, slots=True)
class Report:
    checked_at: datetime
    targets: tuple[TargetReport, ...] = field(default=())
