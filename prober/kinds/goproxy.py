"""`type: goproxy`: per module, @v/list and @latest compared across edges, then per version
the .info, .mod and .zip from each edge. Only fetching and assembly: go's rules are in
validators/goproxy.py and validators/checks.py, the verdicts in compare.py."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, TypeVar
from urllib.parse import urlsplit

from prober.compare import compare_object
from prober.config import GoproxyTarget
from prober.fetch import BufferSink, Fetcher, S
from prober.kinds.base import KindSpec, ProbeContext, resolve_edges
from prober.kinds.revalidation import (
    NO_SINK,
    Read,
    Revalidation,
    fetch_read,
    no_reading,
    revalidation_for,
)
from prober.model import CheckProblem, Edge, Kind, ObjectReport, Observation, TargetReport
from prober.validators.checks import (
    Found,
    expected_digest,
    fetch_problem,
    info_problem,
    module_check,
)
from prober.validators.goproxy import ZipProblem, escape_path, gomod_hash, parse_list, zip_hash

MAX_VERSIONS = 20  # per module, when the config names none: the newest listed
T = TypeVar("T")
Answers = list[tuple[Observation, T]]  # per edge, in the edges' order: its answer, as read
ZipH1 = tuple[str | None, Found]  # the zip's h1:, and why go refuses it (None: it does not)


class SpoolSink:
    """A body spooled to memory up to 8 MiB, then to a temporary file: bounded memory. The
    spool is made at the first byte read (or when asked for), so an answer without a body,
    such as a 304 that reuses the last reading, leaves nothing to close."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None

    @property
    def file(self) -> IO[bytes]:
        if self._file is None:
            self._file = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
        return self._file

    def feed(self, chunk: memoryview) -> None:
        self.file.write(chunk)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


@dataclass(frozen=True, slots=True)
class GoSpec:
    name: str
    base_url: str  # the proxy's root, as in GOPROXY
    modules: tuple[tuple[str, tuple[str, ...]], ...]  # module, versions (empty: the newest listed)
    gosum: tuple[tuple[str, str, str], ...] = ()  # (module, version or version/go.mod, h1)
    max_edges: int = 256
    full_every: int | None = None  # revalidate: a full pass every N cycles; None: every cycle

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""


def spec(target: GoproxyTarget) -> GoSpec:
    modules = tuple((m, (v,) if v else ()) for m, v in target.modules)
    full_every = target.revalidate.full_every if target.revalidate else None
    return GoSpec(
        target.name, target.url, modules, tuple(target.gosum), target.max_edges, full_every
    )


def paths(spec: GoSpec) -> tuple[str, ...]:
    return ()  # module versions are judged by go.sum or by the edges, not by history


@dataclass(frozen=True, slots=True)
class _Tools:
    """What one cycle's fetches share: the fetcher and (opt-in) the revalidation state."""

    fetcher: Fetcher
    reval: Revalidation | None

    async def each(
        self, edges: Sequence[Edge], url: str, make_sink: Callable[[], S] | None, read: Read[S, T]
    ) -> Answers[T]:
        """Every edge's answer to `url` and its reading (with revalidation: a 304 to the
        edge's own validators gives its last full answer and reading)."""
        return await asyncio.gather(
            *(fetch_read(self.fetcher, self.reval, e, url, make_sink, read) for e in edges)
        )

    async def afresh(
        self,
        edges: Sequence[Edge],
        which: set[int],
        url: str,
        make_sink: Callable[[], S] | None,
        found: Answers[T],
        read: Read[S, T],
    ) -> Answers[T]:
        """`found`, with the reused answers of the edges numbered in `which` fetched and
        read again in full."""
        again = [i for i in sorted(which) if found[i][0].revalidated]
        if self.reval is None or not again:
            return found
        reval, fetcher = self.reval, self.fetcher
        read_again = await asyncio.gather(
            *(reval.fetch_read(fetcher, edges[i], url, make_sink, read, full=True) for i in again)
        )
        fresh = list(found)
        for i, got in zip(again, read_again, strict=True):
            fresh[i] = got
        return fresh


async def probe(spec: GoSpec, ctx: ProbeContext) -> TargetReport:
    started = ctx.clock()
    dns = await resolve_edges(Kind.GOPROXY, spec.name, spec.host, spec.max_edges, ctx, started)
    if isinstance(dns, TargetReport):
        return dns
    reval = revalidation_for(spec.full_every, ctx.memory)
    if reval is not None:
        reval.start_cycle({e.address for e in dns.edges})
    tools = _Tools(ctx.fetcher, reval)
    objects: list[ObjectReport] = []
    for module, versions in spec.modules:
        objects.extend(await _module(spec, module, versions, dns.edges, tools))
    if reval is not None:
        reval.end_cycle(objects)
    finished = ctx.clock()
    return TargetReport(
        spec.name, spec.host, dns, tuple(objects), started, finished, kind=Kind.GOPROXY
    )


async def _module(
    spec: GoSpec, module: str, versions: tuple[str, ...], edges: Sequence[Edge], tools: _Tools
) -> list[ObjectReport]:
    root = f"{spec.base_url.rstrip('/')}/{escape_path(module)}/"
    base = root + "@v/"
    listed = await tools.each(edges, base + "list", BufferSink, _body)
    per_edge = [set(parse_list(data)) if data is not None else set() for _, data in listed]
    wanted = versions or tuple(sorted(set().union(*per_edge), key=_semver)[-MAX_VERSIONS:])
    latest = await tools.each(edges, root + "@latest", NO_SINK, no_reading)
    reports = [
        _compared(base + "list", edges, listed, f"{module} @v/list", tools),
        _compared(root + "@latest", edges, latest, f"{module} @latest", tools),
    ]
    for version in wanted:
        reports.append(await _version(spec, module, version, base, edges, tools))
    return reports


async def _body(obs: Observation, sink: BufferSink | None) -> bytes | None:
    """The body of a complete 200 answer that fit its buffer; None for the rest."""
    if sink is not None and obs.complete and obs.status == 200 and not sink.overflow:
        return bytes(sink.data)
    return None


def _compared(
    url: str,
    edges: Sequence[Edge],
    found: Sequence[tuple[Observation, object]],
    name: str,
    tools: _Tools,
) -> ObjectReport:
    observed = [(e, obs) for e, (obs, _) in zip(edges, found, strict=True)]
    host = urlsplit(url).hostname or ""
    notes = tools.reval.note(observed, "answers") if tools.reval is not None else ()
    return compare_object(
        url, host, urlsplit(url).path, observed, kind=Kind.GOPROXY, name=name, notes=notes
    )


def _semver(version: str) -> tuple[int, ...]:
    core = version.lstrip("v").split("-")[0].split("+")[0]
    return tuple(int(p) if p.isdigit() else 0 for p in core.split("."))


async def _version(
    spec: GoSpec, module: str, version: str, base: str, edges: Sequence[Edge], tools: _Tools
) -> ObjectReport:
    stem = base + escape_path(version)
    zips, mods, infos = await _version_files(module, version, stem, edges, tools)
    sums = {(m, v): h for m, v, h in spec.gosum}
    zip_h1s = [h for _, (h, problem) in zips if problem is None]
    expected = expected_digest(sums.get((module, version)), zip_h1s)
    expected_mod, _ = expected_digest(sums.get((module, f"{version}/go.mod")), [h for _, h in mods])
    checks = [
        module_check(edge.address, h1, problem, mod, expected, expected_mod, info)
        for edge, (_, (h1, problem)), (_, mod), (_, info) in zip(
            edges, zips, mods, infos, strict=True
        )
    ]
    observed = [(edge, obs) for edge, (obs, _) in zip(edges, zips, strict=True)]
    notes = tools.reval.note(observed, ".zip, .mod and .info checks") if tools.reval else ()
    return compare_object(
        stem + ".zip", spec.host, urlsplit(stem).path + ".zip", observed,
        kind=Kind.GOPROXY, name=f"{module}@{version}", checks=checks, notes=notes,
    )  # fmt: skip


async def _version_files(
    module: str, version: str, stem: str, edges: Sequence[Edge], tools: _Tools
) -> tuple[Answers[ZipH1], Answers[str | None], Answers[Found]]:
    """Every edge's .zip, .mod and .info as read: the zip's h1: (or why go refuses it), the
    go.mod hash, the .info's problem. With revalidation an edge's three are one result,
    reused together (all three 304) or read together: when one of them changed, the others
    are read again too, so a fresh zip is never judged beside a .mod or .info from cycles ago."""
    zip_read, info_read = _zip_reader(module, version), _info_reader(version)
    zips = await tools.each(edges, stem + ".zip", SpoolSink, zip_read)
    mods = await tools.each(edges, stem + ".mod", BufferSink, _mod_h1)
    infos = await tools.each(edges, stem + ".info", BufferSink, info_read)
    found = zip(zips, mods, infos, strict=True)
    mixed = {i for i, files in enumerate(found) if _mixed(obs for obs, _ in files)}
    if mixed:
        zips = await tools.afresh(edges, mixed, stem + ".zip", SpoolSink, zips, zip_read)
        mods = await tools.afresh(edges, mixed, stem + ".mod", BufferSink, mods, _mod_h1)
        infos = await tools.afresh(edges, mixed, stem + ".info", BufferSink, infos, info_read)
    return zips, mods, infos


def _zip_reader(module: str, version: str) -> Read[SpoolSink, ZipH1]:
    async def read(obs: Observation, sink: SpoolSink | None) -> ZipH1:
        return await _zip_h1(obs, sink, module, version)

    return read


def _mixed(answers: Iterable[Observation]) -> bool:
    """Some of an edge's answers reused after a 304, and some not."""
    reused = [obs.revalidated for obs in answers]
    return any(reused) and not all(reused)


async def _mod_h1(obs: Observation, sink: BufferSink | None) -> str | None:
    data = await _body(obs, sink)
    return gomod_hash(data) if data is not None else None


def _info_reader(version: str) -> Read[BufferSink, Found]:
    async def read(obs: Observation, sink: BufferSink | None) -> Found:
        return info_problem(obs, await _body(obs, sink), version)

    return read


async def _zip_h1(obs: Observation, sink: SpoolSink | None, module: str, version: str) -> ZipH1:
    try:
        problem = fetch_problem(obs)
        if sink is None or problem is not None:
            return None, problem or (CheckProblem.FETCH_ERROR, None)
        sink.file.seek(0)
        # Reading every member (CRCs included) is CPU and file work: off the event loop.
        return await asyncio.to_thread(zip_hash, sink.file, module, version), None
    except ZipProblem as exc:  # exc.h1: go hashed it first (its go.sum check comes before)
        return exc.h1, (CheckProblem.UNREADABLE_ZIP, str(exc))
    finally:
        if sink is not None:
            sink.close()


KIND = KindSpec(Kind.GOPROXY, spec, probe, paths)
