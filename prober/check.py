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
from prober.fetch import make_ssl_context
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


class CheckSession:
    """The targets of a config with their tools, kept between rounds: `wait` asks again and
    again on the same connections (TLS handshakes are most of a small probe's cost)."""

    def __init__(self, config: Config) -> None:
        slots = asyncio.Semaphore(config.concurrency)
        self._targets = []
        for target in config.targets:
            row = kind_of(target)
            discoverer, fetcher = tools_for(
                target, slots=slots, concurrency_total=config.concurrency
            )
            context = ProbeContext(discoverer, fetcher, max_in_flight=config.concurrency)
            self._targets.append((row, row.spec(target), context))

    async def round(self, names: Sequence[str] = ()) -> Report:
        """One probe of every target at once. `names` replaces the targets' names in the
        report (the CLI shows what was typed)."""
        checked_at = utc_now()
        probes = (row.probe(spec, ctx) for row, spec, ctx in self._targets)
        targets: list[TargetReport] = list(await asyncio.gather(*probes))
        if names:
            targets = [replace(t, name=n) for t, n in zip(targets, names, strict=True)]
        return Report(checked_at, tuple(targets))

    async def close(self) -> None:
        await asyncio.gather(*(ctx.fetcher.close() for _, _, ctx in self._targets))


async def run_check(config: Config, names: Sequence[str] = ()) -> Report:
    """One round of every target of the config, under its one bound on requests in flight."""
    session = CheckSession(config)
    try:
        return await session.round(names)
    finally:
        await session.close()
