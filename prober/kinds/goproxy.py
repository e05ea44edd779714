"""Cycles for Go module proxies and checksum manifests: every artifact fetched from every
edge, and each edge's copy checked against what it must be (go.sum or most edges for a
module zip's h1:, the manifest for a file's SHA-256). The edge table still compares bytes;
the checks decide the verdicts."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import IO
from urllib.parse import urlsplit

from prober.compare import compare_object
from prober.discovery import CachingDiscoverer, Discoverer
from prober.errors import DiscoveryError
from prober.fetch import BufferSink, Fetcher
from prober.kinds.plain import Clock, cap_edges, utc_now
from prober.model import (
    DnsAnswer,
    Edge,
    EdgeCheck,
    EdgeResult,
    ObjectReport,
    Observation,
    TargetReport,
    Verdict,
)
from prober.validators.checksums import ManifestEntry, ManifestError, parse_manifest
from prober.validators.goproxy import (
    ZipProblem,
    escape_path,
    gomod_hash,
    parse_info,
    parse_list,
    zip_hash,
)

MAX_VERSIONS = 20  # per module, when the config names none: the newest listed


class SpoolSink:
    """A body spooled to memory up to 8 MiB, then to a temporary file: bounded memory."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115

    def feed(self, chunk: memoryview) -> None:
        self.file.write(chunk)


@dataclass(frozen=True, slots=True)
class GoSpec:
    name: str
    base_url: str  # the proxy's root, as in GOPROXY
    modules: tuple[tuple[str, tuple[str, ...]], ...]  # module, versions (empty: the newest listed)
    gosum: tuple[tuple[str, str, str], ...] = ()  # (module, version or version/go.mod, h1)
    max_edges: int = 256


@dataclass(slots=True)
class RehashCache:
    """The documented opt-in for huge artifacts: while Content-Length, ETag and Last-Modified
    stay the same (a HEAD each cycle), reuse the hash of the last full fetch, for at most
    `every` cycles. Reused hashes carry hash_age_cycles > 0, so nothing is passed off as new."""

    every: int
    cycle: int = 0
    last: dict[tuple[str, str], tuple[Observation, int]] = field(default_factory=dict)

    def keep(self, addresses: set[str]) -> None:
        """Forget edges that left DNS."""
        for key in [k for k in self.last if k[0] not in addresses]:
            del self.last[key]

    async def fetch(self, fetcher: Fetcher, edge: Edge, url: str) -> Observation:
        key = (edge.address, url)
        previous = self.last.get(key)
        if previous is not None and self.cycle - previous[1] < self.every:
            head = await fetcher.head(edge, url)
            if _same_version(head, previous[0]):
                age = self.cycle - previous[1]
                return replace(previous[0], elapsed_s=head.elapsed_s, hash_age_cycles=age)
        observation = await fetcher.fetch(edge, url)
        if observation.complete:
            self.last[key] = (observation, self.cycle)
        else:
            self.last.pop(key, None)
        return observation


def _same_version(head: Observation, full: Observation) -> bool:
    if not head.complete or head.status != full.status or head.size != full.size:
        return False
    if head.etag is None and head.last_modified is None:
        return False  # nothing to tell a change by: hash it again
    return (head.etag, head.last_modified) == (full.etag, full.last_modified)


@dataclass(frozen=True, slots=True)
class ChecksumSpec:
    name: str
    manifest_url: str
    artifacts: tuple[str, ...] = ()  # names in the manifest; empty: all of them
    origin: str | None = None  # a base URL to read the manifest from instead of each edge
    max_edges: int = 256
    rehash_every: int = 1  # daemon: full hash every N cycles at least (1: every cycle)


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


Resolver = Discoverer | CachingDiscoverer


async def _resolve(
    name: str, host: str, max_edges: int, discoverer: Resolver, fetcher: Fetcher, keep: bool = False
) -> DnsAnswer | TargetReport:
    """The probed edges, or the report of a name that resolved to nothing."""
    try:
        dns = cap_edges(await discoverer.resolve(host), max_edges)
    except DiscoveryError as exc:
        now = utc_now()
        return TargetReport(name, host, None, (), now, now, str(exc), exc.rcode)
    if not keep:
        await fetcher.forget(set(dns.edges))
    return dns


def _judged(report: ObjectReport, checks: Sequence[EdgeCheck], name: str) -> ObjectReport:
    """The checks decide: a problem makes the edge divergent; transport errors stay errors."""
    by_address = {c.address: c for c in checks}
    results = []
    for result in report.results:
        check = by_address.get(result.edge.address)
        results.append(_verdict(result, check))
    return replace(report, results=tuple(results), checks=tuple(checks), name=name)


def _verdict(result: EdgeResult, check: EdgeCheck | None) -> EdgeResult:
    if result.verdict is Verdict.ERROR or check is None:
        return result
    if check.problem is not None:
        return replace(result, verdict=Verdict.DIVERGENT, lag_s=None)
    return replace(result, verdict=Verdict.OK, lag_s=0.0)


# ---- Go module proxy ----------------------------------------------------------------------


async def run_go_cycle(
    spec: GoSpec, discoverer: Resolver, fetcher: Fetcher, *, clock: Clock = utc_now
) -> TargetReport:
    started, host = clock(), _host(spec.base_url)
    dns = await _resolve(spec.name, host, spec.max_edges, discoverer, fetcher)
    if isinstance(dns, TargetReport):
        return dns
    objects: list[ObjectReport] = []
    for module, versions in spec.modules:
        objects.extend(await _module(spec, module, versions, dns.edges, fetcher))
    return TargetReport(spec.name, host, dns, tuple(objects), started, clock())


async def _module(
    spec: GoSpec, module: str, versions: tuple[str, ...], edges: Sequence[Edge], fetcher: Fetcher
) -> list[ObjectReport]:
    root = f"{spec.base_url.rstrip('/')}/{escape_path(module)}/"
    base = root + "@v/"
    listed = await asyncio.gather(
        *(fetcher.fetch_into(e, base + "list", BufferSink) for e in edges)
    )
    per_edge = [
        set(parse_list(bytes(sink.data))) if obs.complete and obs.status == 200 and sink else set()
        for obs, sink in listed
    ]
    wanted = versions or tuple(sorted(set().union(*per_edge), key=_semver)[-MAX_VERSIONS:])
    latest = await asyncio.gather(*(fetcher.fetch(e, root + "@latest") for e in edges))
    reports = [
        _compared(base + "list", edges, [obs for obs, _ in listed], f"{module} @v/list"),
        _compared(root + "@latest", edges, latest, f"{module} @latest"),
    ]
    for version in wanted:
        reports.append(await _version(spec, module, version, base, edges, fetcher))
    return reports


def _compared(
    url: str, edges: Sequence[Edge], found: Sequence[Observation], name: str
) -> ObjectReport:
    observed = list(zip(edges, found, strict=True))
    return replace(compare_object(url, _host(url), urlsplit(url).path, observed), name=name)


def _semver(version: str) -> tuple[int, ...]:
    core = version.lstrip("v").split("-")[0].split("+")[0]
    return tuple(int(p) if p.isdigit() else 0 for p in core.split("."))


async def _version(
    spec: GoSpec, module: str, version: str, base: str, edges: Sequence[Edge], fetcher: Fetcher
) -> ObjectReport:
    stem = base + escape_path(version)
    zips = await asyncio.gather(*(fetcher.fetch_into(e, stem + ".zip", SpoolSink) for e in edges))
    mods = await asyncio.gather(*(fetcher.fetch_into(e, stem + ".mod", BufferSink) for e in edges))
    infos = await asyncio.gather(
        *(fetcher.fetch_into(e, stem + ".info", BufferSink) for e in edges)
    )
    hashes = await asyncio.gather(*(_zip_h1(obs, sink, module, version) for obs, sink in zips))
    mod_hashes = [
        gomod_hash(bytes(sink.data)) if obs.complete and obs.status == 200 and sink else None
        for obs, sink in mods
    ]
    sums = {(m, v): h for m, v, h in spec.gosum}
    expected, source = _expected(sums.get((module, version)), [h for h, _ in hashes])
    expected_mod, _ = _expected(sums.get((module, f"{version}/go.mod")), mod_hashes)
    checks = []
    for edge, (actual, problem), mod, info in zip(edges, hashes, mod_hashes, infos, strict=True):
        if problem is None and actual != expected:
            problem = "checksum mismatch (zip)"
        if problem is None and mod != expected_mod:
            problem = "checksum mismatch (go.mod)" if mod else "go.mod missing"
        if problem is None:
            problem = _info_problem(*info, version)
        checks.append(EdgeCheck(edge.address, "h1", expected, actual, source, problem))
    observed = [(e, obs) for e, (obs, _) in zip(edges, zips, strict=True)]
    report = compare_object(
        stem + ".zip", _host(spec.base_url), urlsplit(stem).path + ".zip", observed
    )
    return _judged(report, checks, f"{module}@{version}")


def _info_problem(obs: Observation, sink: BufferSink | None, version: str) -> str | None:
    """`go` reads .info for the version's canonical name and time: it must parse and agree."""
    if sink is None or not obs.complete or obs.status != 200:
        return f"bad .info (HTTP {obs.status or obs.error})"
    try:
        info = parse_info(bytes(sink.data))
    except ValueError as exc:
        return f"bad .info ({exc})"
    return None if info.version == version else f"bad .info (Version {info.version})"


async def _zip_h1(
    obs: Observation, sink: SpoolSink | None, module: str, version: str
) -> tuple[str | None, str | None]:
    if sink is None:
        return None, f"fetch_error ({obs.error})" if obs.error else "fetch_error"
    try:
        if not obs.complete:
            return None, f"fetch_error ({obs.error})" if obs.error else "fetch_error"
        if obs.status != 200:
            return None, f"missing (HTTP {obs.status})"
        sink.file.seek(0)
        # Reading every member (CRCs included) is CPU and file work: off the event loop.
        return await asyncio.to_thread(zip_hash, sink.file, module, version), None
    except ZipProblem as exc:
        return None, f"unreadable zip ({exc})"
    finally:
        sink.file.close()


def _expected(given: str | None, found: Sequence[str | None]) -> tuple[str | None, str]:
    if given is not None:
        return given, "go.sum"
    counts = Counter(h for h in found if h is not None)
    if not counts:
        return None, "most edges"
    best = max(counts.values())
    return min(h for h, n in counts.items() if n == best), "most edges"


# ---- checksum manifests -------------------------------------------------------------------


async def run_checksum_cycle(
    spec: ChecksumSpec,
    discoverer: Resolver,
    fetcher: Fetcher,
    *,
    clock: Clock = utc_now,
    rehash: RehashCache | None = None,
) -> TargetReport:
    started, host = clock(), _host(spec.manifest_url)
    if rehash is not None:
        rehash.cycle += 1
    dns = await _resolve(spec.name, host, spec.max_edges, discoverer, fetcher)
    if isinstance(dns, TargetReport):
        return dns
    edges = dns.edges
    if rehash is not None:
        rehash.keep({e.address for e in edges})
    fetched = await asyncio.gather(
        *(fetcher.fetch_into(e, spec.manifest_url, BufferSink) for e in edges)
    )
    manifests = {
        e.address: _manifest(obs, sink) for e, (obs, sink) in zip(edges, fetched, strict=True)
    }
    source = "manifest on the same edge"
    if spec.origin:
        origin_url = spec.origin.rstrip("/") + urlsplit(spec.manifest_url).path
        origin = await _resolve(spec.name, _host(origin_url), 1, discoverer, fetcher, keep=True)
        shared = None
        if isinstance(origin, DnsAnswer):
            shared = _manifest(*await fetcher.fetch_into(origin.edges[0], origin_url, BufferSink))
        manifests = {address: shared for address in manifests}
        source = "manifest on the origin"
    observed = [(e, obs) for e, (obs, _) in zip(edges, fetched, strict=True)]
    manifest_obj = compare_object(
        spec.manifest_url, host, urlsplit(spec.manifest_url).path, observed
    )
    names = spec.artifacts or tuple(sorted({n for m in manifests.values() if m for n in m}))
    directory = spec.manifest_url.rsplit("/", 1)[0] + "/"
    objects = [replace(manifest_obj, name="manifest")]
    for name in names:
        objects.append(
            await _artifact(name, directory + name, edges, manifests, source, fetcher, rehash)
        )
    return TargetReport(spec.name, host, dns, tuple(objects), started, clock())


def _manifest(obs: Observation, sink: BufferSink | None) -> dict[str, ManifestEntry] | None:
    if sink is None or not obs.complete or obs.status != 200 or sink.overflow:
        return None
    try:
        return parse_manifest(bytes(sink.data))
    except ManifestError:
        return None


async def _artifact(
    name: str,
    url: str,
    edges: Sequence[Edge],
    manifests: dict[str, dict[str, ManifestEntry] | None],
    source: str,
    fetcher: Fetcher,
    rehash: RehashCache | None = None,
) -> ObjectReport:
    if rehash is None:
        found = await asyncio.gather(*(fetcher.fetch(e, url) for e in edges))
    else:
        found = await asyncio.gather(*(rehash.fetch(fetcher, e, url) for e in edges))
    checks = []
    for edge, obs in zip(edges, found, strict=True):
        manifest = manifests.get(edge.address)
        entry = manifest.get(name) if manifest else None
        checks.append(_artifact_check(edge, obs, entry, manifest is not None, source))
    report = compare_object(
        url, _host(url), urlsplit(url).path, list(zip(edges, found, strict=True))
    )
    reused = [e.address for e, obs in zip(edges, found, strict=True) if obs.hash_age_cycles]
    if reused:
        note = f"hash reused on {len(reused)} edges: metadata unchanged (HEAD), rehash_every"
        report = replace(report, notes=(*report.notes, note))
    return _judged(report, checks, name)


def _artifact_check(
    edge: Edge, obs: Observation, entry: ManifestEntry | None, have_manifest: bool, source: str
) -> EdgeCheck:
    expected = entry.sha256 if entry else None
    problem = None
    if not have_manifest:
        problem = "no readable manifest"
    elif entry is None:
        problem = "not in the manifest"
    elif obs.status is not None and obs.status != 200 and obs.error is None:
        problem = f"missing (HTTP {obs.status})"
    elif entry.size is not None and obs.error is None and obs.bytes_read != entry.size:
        problem = f"size mismatch ({obs.bytes_read} != {entry.size})"
    elif obs.error is None and obs.sha256 != entry.sha256:
        problem = "checksum mismatch"
    return EdgeCheck(edge.address, "sha256", expected, obs.sha256, source, problem)
