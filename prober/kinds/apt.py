"""`type: apt`: for every edge, its InRelease (or Release) and every index it lists for the
selected components and architectures, fetched from that same edge. Only fetching and
assembly: apt's rules are in validators/apt.py, the verdicts in compare.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urljoin, urlsplit

from prober import gpgv
from prober.compare import compare_object
from prober.config import AptTarget
from prober.fetch import BufferSink, Fetcher, S
from prober.kinds.base import WATCH, Clock, KindSpec, ProbeContext, resolve_edges
from prober.kinds.revalidation import Revalidation, confirms, revalidation_for
from prober.model import (
    AptEdgeResult,
    AptProblem,
    Edge,
    Kind,
    ObjectReport,
    Observation,
    Problem,
    Release,
    TargetReport,
)
from prober.validators.apt import (
    MAX_REDIRECTS,
    NOSPLIT,
    RELEASE_MAX_BYTES,
    Answer,
    AptOptions,
    IndexFamily,
    PackageCounter,
    ReleaseError,
    Signature,
    detached_signature_problem,
    expectation_problems,
    index_plan,
    inrelease_fallback,
    judge_edge,
    parse_release,
    redirect_refused,
    release_hash_kinds,
    release_sha512,
    signature_problem,
    unwrap_inrelease,
)


@dataclass(frozen=True, slots=True)
class AptSpec:
    name: str
    base_url: str  # the repository root: the folder holding dists/
    suites: tuple[str, ...]
    components: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    expect: tuple[tuple[str, str], ...] = ()
    max_edges: int = 256
    # apt's options, with apt's defaults (the contract's "Clients' own rules")
    keyring: str | None = None
    trusted: bool = False
    languages: tuple[str, ...] = ("en",)
    by_hash: str | None = None  # yes, no, force; None: what the Release says
    check_valid_until: bool = True
    max_future_seconds: float = 10.0
    full_every: int | None = None  # revalidate: a full pass every N cycles; None: every cycle

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    def suite_url(self, suite: str) -> str:
        return f"{self.base_url.rstrip('/')}/dists/{suite.removeprefix('dists/').strip('/')}/"


@dataclass(slots=True)
class _EdgeRelease:
    observation: Observation  # the InRelease's (or, after apt's fallback, the Release's)
    release: Release | None
    problem: AptProblem | None = None  # why there is no usable Release
    refusals: tuple[AptProblem, ...] = ()  # signature refusals: fatal, Release still parsed
    hash_kinds: frozenset[str] = frozenset()
    file: str = "InRelease"  # which of the two the Release came from
    sha512: dict[str, str] = field(default_factory=dict)  # for apt's by-hash names
    signature: Signature | None = None


def spec(target: AptTarget) -> AptSpec:
    return AptSpec(
        name=target.name,
        base_url=target.url,
        suites=tuple(target.suites),
        components=tuple(target.components),
        architectures=tuple(target.architectures),
        expect=tuple(target.expect),
        max_edges=target.max_edges,
        keyring=target.keyring,
        trusted=target.trusted,
        languages=tuple(target.languages),
        by_hash=target.by_hash,
        check_valid_until=target.check_valid_until,
        max_future_seconds=target.max_future_seconds,
        full_every=target.revalidate.full_every if target.revalidate else None,
    )


def paths(spec: AptSpec) -> tuple[str, ...]:
    """Per suite, the InRelease: the object whose history the daemon keeps."""
    return tuple(urlsplit(spec.suite_url(s)).path + "InRelease" for s in spec.suites)


async def probe(spec: AptSpec, ctx: ProbeContext) -> TargetReport:
    started = ctx.clock()
    dns = await resolve_edges(Kind.APT, spec.name, spec.host, spec.max_edges, ctx, started)
    if isinstance(dns, TargetReport):
        return dns
    watch = frozenset(name for name, _ in spec.expect) | ctx.memory.get(WATCH, frozenset())
    reval = revalidation_for(spec.full_every, ctx.memory, AptRevalidation)
    if reval is not None:
        reval.start_cycle({e.address for e in dns.edges})
    tools = _Tools(ctx.fetcher, ctx.clock, watch, reval)
    objects = await asyncio.gather(*(_suite(spec, s, dns.edges, tools) for s in spec.suites))
    if reval is not None:
        reval.end_cycle(objects)
    finished = ctx.clock()
    return TargetReport(spec.name, spec.host, dns, tuple(objects), started, finished, kind=Kind.APT)


@dataclass(frozen=True, slots=True)
class _Tools:
    """What one cycle's edges share: the fetcher, the clock, the package names to read and
    (opt-in) the revalidation state."""

    fetcher: Fetcher
    clock: Clock
    watch: frozenset[str]
    reval: AptRevalidation | None


async def _suite(spec: AptSpec, suite: str, edges: Sequence[Edge], tools: _Tools) -> ObjectReport:
    base = spec.suite_url(suite)
    checked = await asyncio.gather(*(_edge(spec, base, edge, tools) for edge in edges))
    releases = [(edge, er.observation) for edge, (er, _) in zip(edges, checked, strict=True)]
    results = [(edge.address, result) for edge, (_, result) in zip(edges, checked, strict=True)]
    path = urlsplit(base).path + "InRelease"
    notes = (
        tools.reval.note(releases, "InRelease is unchanged, and their index readings")
        if tools.reval
        else ()
    )
    return compare_object(
        base + "InRelease", spec.host, path, releases, kind=Kind.APT, suite=suite, apt=results,
        notes=notes,
    )  # fmt: skip


def with_expect(report: TargetReport, expect: Sequence[tuple[str, str]]) -> TargetReport:
    """The report judged again with more NAME=VERSION expectations (a task's): an edge whose
    indexes do not list one has not converged. The edges' answers are the cycle's own; only
    the expectation problems are added, and compare_object makes the verdicts as ever."""
    if not expect:
        return report
    objects = []
    for obj in report.objects:
        if obj.kind is not Kind.APT or not obj.apt:
            objects.append(obj)
            continue
        apt = []
        for address, result in obj.apt:
            known = {(p.reason, p.detail) for p in result.problems}
            extra = [
                p
                for p in expectation_problems(result.versions, expect)
                if (p.reason, p.detail) not in known
            ]
            apt.append((address, replace(result, problems=result.problems + tuple(extra))))
        observed = [(r.edge, r.observation) for r in obj.results]
        judged = compare_object(
            obj.url, obj.host, obj.path, observed, kind=Kind.APT, suite=obj.suite, apt=apt
        )
        added = tuple(n for n in judged.notes if n not in obj.notes)
        objects.append(replace(judged, notes=obj.notes + added))  # the cycle's notes kept
    return replace(report, objects=tuple(objects))


def options(spec: AptSpec) -> AptOptions:
    return AptOptions(
        keyring=spec.keyring is not None,
        trusted=spec.trusted,
        languages=spec.languages,
        by_hash=spec.by_hash,
        check_valid_until=spec.check_valid_until,
        max_future_seconds=spec.max_future_seconds,
    )


async def _edge(
    spec: AptSpec, base: str, edge: Edge, tools: _Tools
) -> tuple[_EdgeRelease, AptEdgeResult]:
    got = await _release(spec, base, edge, tools.fetcher)
    # revalidation: only an edge whose InRelease is byte-identical to its last one is asked
    # for its indexes with its own validators (a new publish is fetched in full at once)
    same = tools.reval is not None and tools.reval.same_release(edge, base, got.observation)
    if got.release is None:
        assert got.problem is not None
        return got, AptEdgeResult(None, (got.problem,), True, (), ())
    opts = options(spec)
    plan = index_plan(got.release, spec.components, spec.architectures, opts, got.sha512)
    fetched, counters, age = await _indexes(base, edge, tools, plan, same)
    if age is not None:
        got.observation = replace(got.observation, revalidated=True, hash_age_cycles=age)
    result = judge_edge(
        got.release, plan, fetched, counters, spec.expect, tools.clock(), opts,
        got.refusals, got.hash_kinds, base, got.file,
    )  # fmt: skip
    signature = str(got.signature) if got.signature is not None else None
    return got, replace(result, signature=signature)


def _answer(obs: Observation) -> Answer:
    return Answer(obs.status, obs.bytes_read, obs.sha256, obs.error, obs.size, obs.location)


def _failed_problem(file: str, obs: Observation) -> AptProblem:
    """A Release (or InRelease) apt could not get: apt's "Failed to fetch …" (E:)."""
    if obs.error is not None:
        return AptProblem(file, Problem.FETCH_ERROR, detail=f"{obs.error}")
    if obs.status is not None and 300 <= obs.status < 400 and obs.location:
        return AptProblem(file, Problem.REDIRECT_REFUSED, detail=f"redirect to {obs.location}")
    return AptProblem(file, Problem.MISSING, detail=f"HTTP {obs.status}")


def _release_sink() -> BufferSink:
    return BufferSink(RELEASE_MAX_BYTES)


async def _follow(
    fetcher: Fetcher, edge: Edge, url: str, make_sink: Callable[[], S] | None
) -> tuple[Observation, S | None]:
    """A redirect apt follows (same scheme, or http → https) that stays on the edge's own
    scheme, host and port is fetched from the same edge; one elsewhere is left as it is
    (apt would go there, cdnprobe does not). Bounded like apt's redirect loop guard."""
    obs, sink = await fetcher.fetch_into(edge, url, make_sink)
    for _ in range(MAX_REDIRECTS):
        if obs.status is None or not 300 <= obs.status < 400 or not obs.location:
            break
        target = urljoin(url, obs.location)
        if redirect_refused(url, target) or not _same_origin(url, target):
            break
        url = target
        obs, sink = await fetcher.fetch_into(edge, url, make_sink)
    return obs, sink


def _same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.hostname, x.port) == (y.scheme, y.hostname, y.port)


def _ok(obs: Observation) -> bool:
    return obs.complete and obs.status is not None and 200 <= obs.status < 300


async def _release(spec: AptSpec, base: str, edge: Edge, fetcher: Fetcher) -> _EdgeRelease:
    """InRelease, or Release + Release.gpg on the failures after which apt falls back
    (validators/apt.py inrelease_fallback); the signature verified with the keyring."""
    obs, sink = await _follow(fetcher, edge, base + "InRelease", _release_sink)
    clearsigned = sink is not None and _clearsigned(bytes(sink.data))
    if _ok(obs) and sink is not None and (clearsigned or not spec.trusted):
        return await _inrelease(spec, obs, sink)
    if not inrelease_fallback(_answer(obs), spec.trusted, clearsigned):
        return _EdgeRelease(obs, None, _failed_problem("InRelease", obs))
    release_obs, release_sink = await _follow(fetcher, edge, base + "Release", _release_sink)
    if not _ok(release_obs) or release_sink is None:
        return _EdgeRelease(release_obs, None, _failed_problem("Release", release_obs))
    gpg, gpg_sink = await _follow(fetcher, edge, base + "Release.gpg", _release_sink)
    data = bytes(release_sink.data)
    detached = bytes(gpg_sink.data) if _ok(gpg) and gpg_sink is not None else None
    signature, reason = await _detached(spec, data, detached)
    signed = signature is not Signature.NOT_SIGNED
    refusal = signature_problem(signature, "Release", spec.trusted, reason)
    parsed = _parsed("Release", release_obs, release_sink, data, signed, refusal)
    parsed.signature = signature
    return parsed


async def _detached(
    spec: AptSpec, data: bytes, signature: bytes | None
) -> tuple[Signature, str | None]:
    """Release.gpg as apt reads it: absent or unusable (not armored) is "not signed"."""
    unusable = detached_signature_problem(signature) if signature is not None else None
    if signature is None or unusable is not None:
        return Signature.NOT_SIGNED, unusable
    if spec.keyring is None:
        return Signature.NOT_VERIFIED, None
    checked = await gpgv.verify_detached(spec.keyring, data, signature)
    return checked.signature, checked.reason


def _clearsigned(data: bytes) -> bool:
    try:
        return unwrap_inrelease(data)[1]
    except ReleaseError:
        return False


async def _inrelease(spec: AptSpec, obs: Observation, sink: BufferSink) -> _EdgeRelease:
    data = bytes(sink.data)
    signed = _clearsigned(data)
    if not signed:
        # apt-pkg/acquire-item.cc RenameOnError(NotClearsigned): a file that is no
        # clearsigned message (a portal page, a plain Release served as InRelease) is
        # NOSPLIT, StatAuthError: no fallback to Release (pkgAcqMetaClearSig::Failed);
        # trusted=yes falls back (see _release).
        signature, reason = Signature.BAD, NOSPLIT
    elif spec.keyring is None:
        signature, reason = Signature.NOT_VERIFIED, None
    else:
        checked = await gpgv.verify_clearsigned(spec.keyring, data)
        signature, reason = checked.signature, checked.reason
    refusal = signature_problem(signature, "InRelease", spec.trusted, reason)
    parsed = _parsed("InRelease", obs, sink, data, signed, refusal)
    parsed.signature = signature
    return parsed


def _parsed(
    file: str,
    obs: Observation,
    sink: BufferSink,
    data: bytes,
    signed: bool,
    refusal: AptProblem | None,
) -> _EdgeRelease:
    refusals = (refusal,) if refusal is not None else ()
    if sink.overflow:
        detail = f"Release larger than {RELEASE_MAX_BYTES >> 20} MiB"
        return _EdgeRelease(obs, None, AptProblem(file, Problem.BAD_RELEASE, detail=detail))
    try:
        text, _ = unwrap_inrelease(data)
        release = parse_release(text, signed)
    except ReleaseError as exc:
        problem = refusal or AptProblem(file, Problem.BAD_RELEASE, detail=str(exc))
        return _EdgeRelease(obs, None, problem)
    kinds, sha512 = release_hash_kinds(text), release_sha512(text)
    return _EdgeRelease(obs, release, None, refusals, kinds, file, sha512)


async def _indexes(
    base: str, edge: Edge, tools: _Tools, plan: Sequence[IndexFamily], same: bool
) -> tuple[dict[str, Answer], dict[str, PackageCounter], int | None]:
    """Every index the plan names, from this edge. With `same` (revalidation, the edge's
    InRelease unchanged), each is asked with the edge's own last validators and a 304 reuses
    what its last full answer said; the third value is then the oldest reused answer's age
    in cycles (None: everything was fetched and read in full)."""
    fetcher, watch, reval = tools.fetcher, tools.watch, tools.reval
    counted = {f.counted.path: f.name for f in plan if f.counted is not None}
    # every listed variant (the contract reports each one) and apt's by-hash candidates;
    # validators/apt.py walk then goes through them in apt's order and stops where apt stops
    paths = list(dict.fromkeys([v.path for f in plan for v in f.variants] + [
        c.path for f in plan for c in f.candidates if c.by_hash
    ]))  # fmt: skip

    ages: list[int] = []

    async def one(path: str) -> tuple[str, Answer, PackageCounter | None]:
        url, family = base + path, counted.get(path)
        make = (lambda: PackageCounter(_suffix(path), watch)) if family else None
        kept = reval.kept_for(edge, url, watch) if reval is not None and same else None
        validators = (kept.etag, kept.last_modified) if kept is not None else None
        obs, counter = await fetcher.fetch_into(edge, url, make, validators)
        if kept is not None and obs.status == 304 and obs.error is None:
            if confirms(kept.etag, kept.last_modified, obs):
                ages.append(reval.cycle - kept.cycle if reval is not None else 0)
                return path, kept.answer, kept.counter
            obs, counter = await fetcher.fetch_into(edge, url, make)  # prove it in full
        redirected = obs.status is not None and 300 <= obs.status < 400 and bool(obs.location)
        if redirected:
            obs, counter = await _follow(fetcher, edge, url, make)  # never kept: not this URL's
        if counter is not None:
            counter.finish()
        answer = _answer(obs)
        if reval is not None:
            reval.keep(edge, url, obs, answer, counter, watch, redirected=redirected)
        return path, answer, counter

    found = await asyncio.gather(*(one(p) for p in paths))
    fetched = {path: got for path, got, _ in found}
    counters = {counted[path]: c for path, _, c in found if c is not None and path in counted}
    return fetched, counters, max(ages) if ages else None


@dataclass(frozen=True, slots=True)
class _Kept:
    """An index as this edge last served it in full, and what reading it found."""

    answer: Answer
    etag: str | None
    last_modified: str | None
    counter: PackageCounter | None  # finished; read for these names:
    watch: frozenset[str]
    cycle: int


@dataclass(slots=True)
class AptRevalidation(Revalidation):
    """Bytes only when they changed, for APT (opt-in: `revalidate`): the shared cycle rules
    (a full pass every `full_every` cycles and after a suite's reference changed), gated by
    each edge's InRelease. Every cycle fetches each edge's InRelease in full; an edge whose
    InRelease is byte-identical to its last one is asked for each index with its *own* last
    validators, and a 304 reuses its last full answer (hash, size, package count and
    versions). A 304 cannot prove the bytes: an edge that corrupts an index in place without
    changing its validators is seen at the next full pass."""

    releases: dict[tuple[str, str], str | None] = field(default_factory=dict)
    kept: dict[tuple[str, str], _Kept] = field(default_factory=dict)

    def start_cycle(self, addresses: set[str]) -> None:
        for key in [k for k in self.releases if k[0] not in addresses]:
            del self.releases[key]  # an edge that left DNS
        self.prune(self.kept, addresses)  # ... or an index no longer asked for
        Revalidation.start_cycle(self, addresses)

    def same_release(self, edge: Edge, base: str, obs: Observation) -> bool:
        key = (edge.address, base)
        last, self.releases[key] = self.releases.get(key), obs.sha256 if _ok(obs) else None
        return not self.full and obs.sha256 is not None and last == obs.sha256 and _ok(obs)

    def kept_for(self, edge: Edge, url: str, watch: frozenset[str]) -> _Kept | None:
        self.touched.add((edge.address, url))
        kept = self.kept.get((edge.address, url))
        # a name a task asks for that the kept reading did not look for: read it again
        return kept if kept is not None and watch <= kept.watch else None

    def keep(
        self,
        edge: Edge,
        url: str,
        obs: Observation,
        answer: Answer,
        counter: PackageCounter | None,
        watch: frozenset[str],
        *,
        redirected: bool = False,
    ) -> None:
        key = (edge.address, url)
        self.touched.add(key)
        if not redirected and _ok(obs) and (obs.etag or obs.last_modified):
            self.kept[key] = _Kept(answer, obs.etag, obs.last_modified, counter, watch, self.cycle)
        else:
            self.kept.pop(key, None)  # nothing to revalidate with: a full fetch next time


def _suffix(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[1] if "." in name else ""


KIND = KindSpec(Kind.APT, spec, probe, paths)
