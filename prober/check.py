"""The one-shot check: every target of a config probed once, at the same time → a Report.

`cdnprobe check` turns its arguments into the same validated Config the daemon loads (see
cli.py), so a check and a daemon cycle go through the same kinds and cannot disagree.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import Sequence
from dataclasses import replace

from prober.config import Config
from prober.errors import UsageError
from prober.fetch import Fetcher, make_ssl_context
from prober.kinds import kind_of
from prober.kinds.base import ProbeContext, tools_for, utc_now
from prober.model import Report, TargetReport


def ssl_context_for(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    """The TLS context, or UsageError naming the CA file that cannot be used."""
    if ca_file is not None and not os.path.isfile(ca_file):
        raise UsageError(f"--ca-file {ca_file}: no such file")
    try:
        return make_ssl_context(ca_file, insecure)
    except OSError as exc:  # ssl.SSLError is an OSError: a file that is not PEM
        raise UsageError(f"--ca-file {ca_file}: not a usable CA bundle ({exc})") from None


async def run_check(config: Config, names: Sequence[str] = ()) -> Report:
    """One probe of every target at once, under the config's one bound on requests in
    flight. `names` replaces the targets' names in the report (the CLI shows what was typed)."""
    slots = asyncio.Semaphore(config.concurrency)
    fetchers: list[Fetcher] = []
    probes = []
    for target in config.targets:
        row = kind_of(target)
        discoverer, fetcher = tools_for(target, slots=slots, concurrency_total=config.concurrency)
        fetchers.append(fetcher)
        probes.append(row.probe(row.spec(target), ProbeContext(discoverer, fetcher)))
    checked_at = utc_now()
    try:
        targets: list[TargetReport] = list(await asyncio.gather(*probes))
    finally:
        await asyncio.gather(*(f.close() for f in fetchers))
    if names:
        targets = [replace(t, name=n) for t, n in zip(targets, names, strict=True)]
    return Report(checked_at, tuple(targets))
