"""Variants, the reference and verdicts. Pure: no I/O, no clock ("now" is passed in).

The body hash is the truth. ETag and Last-Modified only order versions (which one is older)
and are reported as notes when identical bytes carry different ones: two servers holding the
same file legitimately stamp it differently.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

from prober.model import (
    AptEdgeResult,
    Edge,
    EdgeCheck,
    EdgeResult,
    Kind,
    ObjectReport,
    Observation,
    Problem,
    ReferenceSource,
    Variant,
    VariantKey,
    Verdict,
)


@dataclass(frozen=True, slots=True)
class PastReference:
    """A body that was the reference in an earlier cycle and has since been replaced."""

    sha256: str
    superseded_at: datetime | None  # None: it was the reference until this very cycle


def parse_http_date(value: str | None) -> datetime | None:
    """RFC 9110 HTTP-date to an aware datetime; None when absent or unparseable."""
    if not value:
        return None
    return _parse_http_date(value)


@lru_cache(maxsize=1024)  # every edge of an object usually sends the same Last-Modified
def _parse_http_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def variant_key(obs: Observation) -> VariantKey:
    if obs.error is not None or obs.status is None:
        return VariantKey("error", str(obs.error or "protocol"))
    if 200 <= obs.status < 300 and obs.sha256 is not None:
        return VariantKey("body", obs.sha256)
    where = f" -> {obs.location}" if obs.location else ""
    return VariantKey("status", f"{obs.status}{where}")


def group_variants(observed: Iterable[tuple[Edge, Observation]]) -> tuple[Variant, ...]:
    observed = list(observed)
    return _variants(_groups(observed, [variant_key(obs) for _, obs in observed]))


def _groups(
    observed: Sequence[tuple[Edge, Observation]], keys: Sequence[VariantKey]
) -> dict[VariantKey, list[tuple[Edge, Observation]]]:
    """The observations by variant key (`keys`: one per observation, in the same order)."""
    groups: dict[VariantKey, list[tuple[Edge, Observation]]] = {}
    for key, member in zip(keys, observed, strict=True):
        groups.setdefault(key, []).append(member)
    return groups


def _variants(groups: dict[VariantKey, list[tuple[Edge, Observation]]]) -> tuple[Variant, ...]:
    return tuple(_variant(key, members) for key, members in sorted(groups.items()))


def _variant(key: VariantKey, members: list[tuple[Edge, Observation]]) -> Variant:
    members.sort(key=lambda m: m[0])
    dates = [d for _, o in members if (d := parse_http_date(o.last_modified))]
    first = members[0][1]
    return Variant(
        key=key,
        edges=tuple(e for e, _ in members),
        status=first.status,
        bytes_read=first.bytes_read,
        sha256=first.sha256,
        etag=first.etag,
        last_modified=max(dates) if dates else None,
    )


def choose_reference(
    variants: Sequence[Variant], origin: Variant | None = None
) -> tuple[Variant | None, ReferenceSource]:
    """The origin's variant; else the newest Last-Modified; else the one most edges serve."""
    if origin is not None and origin.key.kind != "error":
        return origin, ReferenceSource.ORIGIN
    answers = [v for v in variants if v.key.kind != "error"]
    dated = [v for v in answers if v.last_modified is not None]
    if dated:
        return min(dated, key=_newest_first), ReferenceSource.NEWEST
    if answers:
        return min(answers, key=_most_edges_first), ReferenceSource.MAJORITY
    return None, ReferenceSource.NONE


def _newest_first(v: Variant) -> tuple[float, int, bool, VariantKey]:
    assert v.last_modified is not None
    return (-v.last_modified.timestamp(), *_most_edges_first(v))


def _most_edges_first(v: Variant) -> tuple[int, bool, VariantKey]:
    # Ties are broken by content, never by arrival order, so permuting edges changes nothing.
    return (-len(v.edges), v.key.kind != "body", v.key)


def judge_bytes(
    key: VariantKey,
    obs: Observation,
    reference: Variant | None,
    past: Sequence[PastReference] = (),
    now: datetime | None = None,
) -> tuple[Verdict, float | None, int | None]:
    """Verdict, lag in seconds and versions behind for one edge's observation (whose variant
    key is `key`) against the reference."""
    if key.kind == "error":
        return Verdict.ERROR, None, None
    if reference is None:
        return Verdict.DIVERGENT, None, None
    if key == reference.key:
        return Verdict.OK, 0.0, 0
    edge_date = parse_http_date(obs.last_modified)
    lag = _lag(reference.last_modified, edge_date)
    behind = _versions_behind(obs.sha256, reference.sha256, past)
    if behind is not None:
        if lag is None or lag <= 0:
            lag = _since_superseded(obs.sha256, past, now)
        return Verdict.STALE, lag, behind
    if lag is not None and lag > 0:
        return Verdict.STALE, lag, None
    return Verdict.DIVERGENT, lag, None


def _lag(reference: datetime | None, edge: datetime | None) -> float | None:
    if reference is None or edge is None:
        return None
    return (reference - edge).total_seconds()


def _versions_behind(
    sha256: str | None, reference: str | None, past: Sequence[PastReference]
) -> int | None:
    """How many references ago `sha256` was current (newest first), or None if it never was."""
    if sha256 is None:
        return None
    older = [p.sha256 for p in past if p.sha256 != reference]
    return older.index(sha256) + 1 if sha256 in older else None


def _since_superseded(
    sha256: str | None, past: Sequence[PastReference], now: datetime | None
) -> float | None:
    """Now minus the moment this version stopped being the reference (0 if that is now)."""
    for entry in past:
        if entry.sha256 == sha256:
            if entry.superseded_at is None:
                return 0.0
            return (now - entry.superseded_at).total_seconds() if now else None
    return None


def judge_check(verdict: Verdict, lag: float | None, check: EdgeCheck | None) -> Judgement:
    """A repository check decides (Go module, checksum manifest): a problem makes the edge
    divergent, a pass makes it ok whatever its bytes; transport errors stay errors."""
    if verdict is Verdict.ERROR or check is None:
        return verdict, lag
    if check.problem is not None:
        return Verdict.DIVERGENT, None
    return Verdict.OK, 0.0


def judge_apt(
    verdict: Verdict, lag: float | None, apt: AptEdgeResult, newest: datetime | None
) -> Judgement:
    """Edge verdicts with the repository in mind: an edge apt would fail on is divergent; an
    edge on an older (self-consistent) Release is stale, with the lag between the Dates."""
    if verdict is Verdict.ERROR:
        return verdict, lag
    if apt.would_fail:
        return Verdict.DIVERGENT, None
    missing = any(p.reason is Problem.EXPECTED_PACKAGE_MISSING for p in apt.problems)
    date = apt.release.date if apt.release else None
    if date is not None and newest is not None and date < newest:
        return Verdict.STALE, (newest - date).total_seconds()
    if date is not None and date == newest and verdict is Verdict.STALE:
        return Verdict.DIVERGENT, 0.0  # same Date, other bytes
    if missing and verdict is Verdict.OK:
        return Verdict.DIVERGENT, lag  # current, but without the upload
    return verdict, lag


Judgement = tuple[Verdict, float | None]


def newest_release(apt: Iterable[tuple[str, AptEdgeResult]]) -> datetime | None:
    dates = [r.release.date for _, r in apt if r.release and r.release.date]
    return max(dates, default=None)


def compare_object(
    url: str,
    host: str,
    path: str,
    observed: Sequence[tuple[Edge, Observation]],
    origin: Observation | None = None,
    past: Sequence[PastReference] = (),
    now: datetime | None = None,
    *,
    kind: Kind = Kind.PLAIN,
    name: str | None = None,
    checks: Sequence[EdgeCheck] = (),
    suite: str | None = None,
    apt: Sequence[tuple[str, AptEdgeResult]] = (),
    notes: Sequence[str] = (),
    origin_error: str | None = None,
) -> ObjectReport:
    """Group one object's observations into variants, pick the reference, judge each edge:
    by its bytes, then by its repository check (`checks`) or its APT result (`apt`) when the
    kind has them. Every verdict is made here, once."""
    keys = [variant_key(obs) for _, obs in observed]  # each once: they are compared often
    groups = _groups(observed, keys)
    variants = _variants(groups)
    origin_variant = group_variants([(Edge("origin", 4), origin)])[0] if origin else None
    reference, source = choose_reference(variants, origin_variant)
    by_check = {c.address: c for c in checks}
    by_apt = dict(apt)
    newest = newest_release(apt)
    results = []
    for (edge, obs), key in sorted(zip(observed, keys, strict=True), key=lambda m: m[0][0]):
        verdict, lag, behind = judge_bytes(key, obs, reference, past, now)
        if checks:
            verdict, lag = judge_check(verdict, lag, by_check.get(edge.address))
        elif edge.address in by_apt:
            verdict, lag = judge_apt(verdict, lag, by_apt[edge.address], newest)
        results.append(EdgeResult(edge, obs, verdict, key, lag, behind))
    all_notes = (*_notes(groups, origin), *notes)
    if apt and newest is not None and any(r.verdict is not Verdict.OK for r in results):
        all_notes += (f"newest Release Date among the edges: {newest:%a, %d %b %Y %H:%M:%S} UTC",)
    ordered_apt = tuple((r.edge.address, by_apt[r.edge.address]) for r in results if by_apt)
    return ObjectReport(
        url=url,
        host=host,
        path=path,
        results=tuple(results),
        variants=variants,
        reference=reference,
        reference_source=source,
        kind=kind,
        origin=origin,
        notes=all_notes,
        suite=suite,
        apt=ordered_apt,
        name=name,
        checks=tuple(checks),
        origin_error=origin_error or (str(origin.error) if origin and origin.error else None),
    )


def _notes(
    groups: dict[VariantKey, list[tuple[Edge, Observation]]], origin: Observation | None
) -> tuple[str, ...]:
    notes = []
    for key, members in sorted(groups.items()):
        if key.kind != "body" or len(members) < 2:
            continue
        etags = {o.etag for _, o in members}
        dates = {o.last_modified for _, o in members}
        if len(etags) > 1:
            notes.append(f"identical bytes ({key.label}) with {len(etags)} different ETags")
        if len(dates) > 1:
            notes.append(f"identical bytes ({key.label}) with {len(dates)} different Last-Modified")
    if origin is not None and origin.error is not None:
        notes.append(f"origin failed ({origin.error}); reference chosen from the edges")
    return tuple(notes)
