"""`type: goproxy`: per module, @v/list and @latest compared across edges, then per version
the .info, .mod and .zip from each edge. Only fetching and assembly: go's rules are in
validators/goproxy.py and validators/checks.py, the verdicts in compare.py."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from prober.compare import compare_object
from prober.config import GoproxyTarget
from prober.fetch import BufferSink, Fetcher
from prober.kinds.base import KindSpec, ProbeContext, resolve_edges
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

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or ""


def spec(target: GoproxyTarget) -> GoSpec:
    modules = tuple((m, (v,) if v else ()) for m, v in target.modules)
    return GoSpec(target.name, target.url, modules, tuple(target.gosum), target.max_edges)


def paths(spec: GoSpec) -> tuple[str, ...]:
    return ()  # module versions are judged by go.sum or by the edges, not by history


async def probe(spec: GoSpec, ctx: ProbeContext) -> TargetReport:
    started = ctx.clock()
    dns = await resolve_edges(Kind.GOPROXY, spec.name, spec.host, spec.max_edges, ctx, started)
    if isinstance(dns, TargetReport):
        return dns
    objects: list[ObjectReport] = []
    for module, versions in spec.modules:
        objects.extend(await _module(spec, module, versions, dns.edges, ctx.fetcher))
    finished = ctx.clock()
    return TargetReport(
        spec.name, spec.host, dns, tuple(objects), started, finished, kind=Kind.GOPROXY
    )


async def _module(
    spec: GoSpec, module: str, versions: tuple[str, ...], edges: Sequence[Edge], fetcher: Fetcher
) -> list[ObjectReport]:
    root = f"{spec.base_url.rstrip('/')}/{escape_path(module)}/"
    base = root + "@v/"
    listed = await asyncio.gather(
        *(fetcher.fetch_into(e, base + "list", BufferSink) for e in edges)
    )
    per_edge = [set(parse_list(data)) if data is not None else set() for data in _bodies(listed)]
    wanted = versions or tuple(sorted(set().union(*per_edge), key=_semver)[-MAX_VERSIONS:])
    latest = await asyncio.gather(*(fetcher.fetch(e, root + "@latest") for e in edges))
    reports = [
        _compared(base + "list", edges, [obs for obs, _ in listed], f"{module} @v/list"),
        _compared(root + "@latest", edges, latest, f"{module} @latest"),
    ]
    for version in wanted:
        reports.append(await _version(spec, module, version, base, edges, fetcher))
    return reports


def _bodies(fetched: Sequence[tuple[Observation, BufferSink | None]]) -> list[bytes | None]:
    """The bodies of complete 200 answers that fit their buffer; None for the rest."""
    return [
        bytes(sink.data)
        if sink is not None and obs.complete and obs.status == 200 and not sink.overflow
        else None
        for obs, sink in fetched
    ]


def _compared(
    url: str, edges: Sequence[Edge], found: Sequence[Observation], name: str
) -> ObjectReport:
    observed = list(zip(edges, found, strict=True))
    host = urlsplit(url).hostname or ""
    return compare_object(url, host, urlsplit(url).path, observed, kind=Kind.GOPROXY, name=name)


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
    mod_hashes = [gomod_hash(data) if data is not None else None for data in _bodies(mods)]
    sums = {(m, v): h for m, v, h in spec.gosum}
    expected = expected_digest(sums.get((module, version)), [h for h, p in hashes if p is None])
    expected_mod, _ = expected_digest(sums.get((module, f"{version}/go.mod")), mod_hashes)
    info_found = [
        info_problem(obs, data, version)
        for (obs, _), data in zip(infos, _bodies(infos), strict=True)
    ]
    checks = [
        module_check(edge.address, h1, problem, mod, expected, expected_mod, info)
        for edge, (h1, problem), mod, info in zip(
            edges, hashes, mod_hashes, info_found, strict=True
        )
    ]
    observed = [(e, obs) for e, (obs, _) in zip(edges, zips, strict=True)]
    return compare_object(
        stem + ".zip", spec.host, urlsplit(stem).path + ".zip", observed,
        kind=Kind.GOPROXY, name=f"{module}@{version}", checks=checks,
    )  # fmt: skip


async def _zip_h1(
    obs: Observation, sink: SpoolSink | None, module: str, version: str
) -> tuple[str | None, Found]:
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
            sink.file.close()


KIND = KindSpec(Kind.GOPROXY, spec, probe, paths)
