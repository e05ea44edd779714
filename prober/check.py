"""The one-shot check: group URLs by host, run one cycle per host at once, return a Report."""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from prober.discovery import Discoverer
from prober.errors import UsageError
from prober.fetch import Fetcher, make_ssl_context
from prober.kinds.plain import TargetSpec, run_cycle, utc_now
from prober.model import Report

if TYPE_CHECKING:
    from prober.kinds.apt import AptSpec
    from prober.kinds.goproxy import ChecksumSpec, GoSpec


@dataclass(frozen=True, slots=True)
class CheckOptions:
    urls: tuple[str, ...]
    resolvers: tuple[str, ...] = ()
    ca_file: str | None = None
    insecure: bool = False
    timeout_s: float = 10.0
    max_body_bytes: int = 4 << 30
    concurrency: int = 64
    origin: str | None = None
    max_edges: int = 256


def specs_by_host(options: CheckOptions) -> list[TargetSpec]:
    """One target per host name, URLs in the order given."""
    grouped: dict[str, list[str]] = {}
    for url in options.urls:
        grouped.setdefault(urlsplit(url).hostname or "", []).append(url)
    return [
        TargetSpec(host, host, tuple(urls), options.origin, options.max_edges)
        for host, urls in grouped.items()
    ]


def ssl_context_for(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """The TLS context, or UsageError naming the CA file that cannot be used."""
    if ca_file is not None and not os.path.isfile(ca_file):
        raise UsageError(f"--ca-file {ca_file}: no such file")
    try:
        return make_ssl_context(ca_file, insecure)
    except OSError as exc:  # ssl.SSLError is an OSError: a file that is not PEM
        raise UsageError(f"--ca-file {ca_file}: not a usable CA bundle ({exc})") from None


def _tools(options: CheckOptions, context: ssl.SSLContext) -> tuple[Discoverer, Fetcher]:
    discoverer = Discoverer(options.resolvers, timeout_s=min(options.timeout_s, 5.0))
    fetcher = Fetcher(
        ssl_context=context,
        timeout_s=options.timeout_s,
        max_body_bytes=options.max_body_bytes,
        concurrency=asyncio.Semaphore(options.concurrency),
        concurrency_total=options.concurrency,
    )
    return discoverer, fetcher


async def run_apt_check(spec: AptSpec, options: CheckOptions, context: ssl.SSLContext) -> Report:
    from prober.kinds.apt import run_apt_cycle  # only --apt pays for the APT code

    discoverer, fetcher = _tools(options, context)
    try:
        checked_at = utc_now()
        target = await run_apt_cycle(spec, discoverer, fetcher)
    finally:
        await fetcher.close()
    return Report(checked_at, (target,))


async def run_repo_check(
    spec: GoSpec | ChecksumSpec, options: CheckOptions, context: ssl.SSLContext
) -> Report:
    from prober.kinds.goproxy import GoSpec, run_checksum_cycle, run_go_cycle

    discoverer, fetcher = _tools(options, context)
    try:
        checked_at = utc_now()
        if isinstance(spec, GoSpec):
            target = await run_go_cycle(spec, discoverer, fetcher)
        else:
            target = await run_checksum_cycle(spec, discoverer, fetcher)
    finally:
        await fetcher.close()
    return Report(checked_at, (target,))


async def run_check(options: CheckOptions, context: ssl.SSLContext) -> Report:
    discoverer, fetcher = _tools(options, context)
    try:
        specs = specs_by_host(options)
        checked_at = utc_now()
        targets = await asyncio.gather(*(run_cycle(s, discoverer, fetcher) for s in specs))
    finally:
        await fetcher.close()
    return Report(checked_at, tuple(targets))
