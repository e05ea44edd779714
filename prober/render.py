"""Report → the contract's JSON document, or a table for a person. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prober.errors import one_line
from prober.model import (
    AptEdgeResult,
    AptProblem,
    EdgeCheck,
    EdgeResult,
    Kind,
    ObjectReport,
    Problem,
    Report,
    TargetReport,
    Variant,
    Verdict,
)

JsonObject = dict[str, Any]


def iso_utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def report_json(report: Report) -> JsonObject:
    entries: list[JsonObject] = []
    for target in report.targets:
        entries.extend(target_entries(target))
    return {"checked_at": iso_utc(report.checked_at), "targets": entries}


def dumps(report: Report | JsonObject, *, pretty: bool = False) -> str:
    """The JSON document: indented for a person at a terminal, else compact on one line
    (the compact form goes through json's C encoder, several times cheaper for big reports)."""
    doc = report_json(report) if isinstance(report, Report) else report
    if pretty:
        return json.dumps(doc, indent=2, ensure_ascii=False)
    return json.dumps(doc, ensure_ascii=False)


def wait_json(
    report: Report,
    *,
    converged: bool,
    rounds: int,
    elapsed_s: float,
    since: Mapping[tuple[str, str], datetime | None],
) -> JsonObject:
    """`wait`'s document: the last round as `check` prints it, the wait's outcome, and per
    edge the first round from which it stayed ok (`converged_at`)."""
    entries: list[JsonObject] = []
    for target in report.targets:
        for entry in target_entries(target):
            for edge in entry["edges"]:
                moment = since.get((target.name, edge["address"]))
                edge["converged_at"] = iso_utc(moment) if moment else None
            entries.append(entry)
    wait = {"converged": converged, "rounds": rounds, "elapsed_s": round(elapsed_s, 1)}
    return {"checked_at": iso_utc(report.checked_at), "targets": entries, "wait": wait}


def target_entries(target: TargetReport) -> list[JsonObject]:
    dns = _dns_json(target)
    if target.dns_error is not None:
        return [_unresolved_entry(target, dns)]
    entries = [{**object_json(obj), "dns": dns} for obj in target.objects]
    seen = seen_by(target)
    for entry in entries:
        for edge in entry["edges"]:
            edge["seen_by"] = list(seen.get(edge["address"], ()))
    return entries


def seen_by(target: TargetReport) -> dict[str, tuple[str, ...]]:
    """Per edge address, the vantages (or resolver addresses) that were sent to it."""
    if target.dns is None:
        return {}
    return {edge.address: names for edge, names in target.dns.seen_by}


def _vantages_json(target: TargetReport) -> list[JsonObject]:
    if target.dns is None:
        return []
    return [
        {"name": v.name, "resolver": v.resolver, "ecs": v.ecs,
         "addresses": [e.address for e in v.addresses], "error": v.error}
        for v in target.dns.vantages
    ]  # fmt: skip


def _dns_json(target: TargetReport) -> JsonObject:
    if target.dns is None:
        return {"resolver": None, "addresses": [], "problems": [], "error": target.dns_error}
    return {
        "resolver": target.dns.resolver,
        "addresses": [e.address for e in target.dns.edges],
        "problems": list(target.dns.problems),
        "dropped": [e.address for e in target.dns.dropped],
        "error": target.dns_error,
        "vantages": _vantages_json(target),
    }


def _unresolved_entry(target: TargetReport, dns: JsonObject) -> JsonObject:
    return {
        "url": target.name,
        "host": target.host,
        "consistent": False,
        "variants": 0,
        "reference": None,
        "edges": [],
        "notes": [],
        "dns": dns,
    }


def object_json(obj: ObjectReport) -> JsonObject:
    doc: JsonObject = {
        "url": obj.url,
        "host": obj.host,
        "consistent": obj.consistent,
        "healthy": obj.healthy,
        "variants": len(obj.variants),
        "reference": _reference_json(obj),
        "edges": [edge_json(r) for r in obj.results],
        "notes": list(obj.notes),
    }
    if obj.kind is Kind.APT:
        doc["suite"] = obj.suite
        for edge in doc["edges"]:
            result = obj.apt_result(edge["address"])
            edge["apt"] = apt_json(result) if result else None
    elif obj.kind in (Kind.GOPROXY, Kind.CHECKSUMS):
        doc["name"] = obj.name
        if obj.checks:
            for edge in doc["edges"]:
                check = obj.check_for(edge["address"])
                edge["check"] = check_json(check) if check else None
    return doc


def check_json(check: EdgeCheck) -> JsonObject:
    return {
        "kind": check.kind,
        "expected": check.expected,
        "actual": check.actual,
        "source": check.source,
        "match": check.problem is None,
        "problem": check.problem_text,
    }


def apt_json(result: AptEdgeResult) -> JsonObject:
    release = result.release
    return {
        "release_date": release.date_text if release else None,
        "valid_until": release.valid_until_text if release else None,
        "signed": release.signed if release else None,
        "acquire_by_hash": release.acquire_by_hash if release else None,
        "signature": result.signature,
        "would_fail": result.would_fail,
        "problems": [_problem_json(p) for p in result.problems],
        "packages": dict(result.packages),
    }


def _problem_json(problem: AptProblem) -> JsonObject:
    doc: JsonObject = {"file": problem.file, "reason": str(problem.reason)}
    for key in ("expected_size", "size", "expected_sha256", "sha256", "detail"):
        value = getattr(problem, key)
        if value is not None:
            doc[key] = value
    return doc


def _reference_json(obj: ObjectReport) -> JsonObject | None:
    ref = obj.reference
    if ref is None:
        return None
    return {
        "sha256": ref.sha256,
        "size": ref.bytes_read,
        "etag": ref.etag,
        "last_modified": _http_date(ref),
        "status": ref.status,
        "source": str(obj.reference_source),
        "edges": len(ref.edges),
    }


def _http_date(variant: Variant) -> str | None:
    if variant.last_modified is None:
        return None
    return variant.last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT")


def edge_json(result: EdgeResult) -> JsonObject:
    obs = result.observation
    return {
        "address": result.edge.address,
        "family": result.edge.family,
        "status": obs.status,
        "size": obs.size,
        "bytes_read": obs.bytes_read,
        "etag": obs.etag,
        "last_modified": obs.last_modified,
        "sha256": obs.sha256,
        "elapsed_ms": round(obs.elapsed_s * 1000, 1),
        "error": str(obs.error) if obs.error else None,
        "verdict": str(result.verdict),
        "cache": dict(obs.cache),
        "location": obs.location,
        "lag_seconds": result.lag_s,
        "versions_behind": result.versions_behind,
        "hash_age_cycles": obs.hash_age_cycles,
        "revalidated": obs.revalidated,
        "http_version": obs.http_version,
        "detail": obs.detail,
    }


# ---- table -------------------------------------------------------------------------------

_COLUMNS = ("ADDRESS", "FAM", "STATUS", "SIZE", "READ", "SHA256", "ETAG", "LAST-MODIFIED", "TIME")
_COLOURS = {Verdict.STALE: "33", Verdict.DIVERGENT: "31", Verdict.ERROR: "31;1"}


def table(report: Report, colour: bool = False) -> str:
    blocks = []
    for target in report.targets:
        if target.dns_error is not None:  # the reason is the one line on stderr
            blocks.append(f"{safe(target.name)}\n  no address ({safe(target.dns_rcode or '')})")
        seen = seen_by(target) if target.dns and target.dns.by_vantage else {}
        blocks.extend(object_table(obj, colour, seen) for obj in target.objects)
    return "\n\n".join(blocks) + "\n"


def object_table(
    obj: ObjectReport, colour: bool = False, seen: Mapping[str, tuple[str, ...]] | None = None
) -> str:
    """The object's edges, reference first; with vantages, a SEEN-BY column saying which
    vantages are sent to each edge, and the conclusion per vantage."""
    ordered = _reference_first(obj)
    rows = [[*_COLUMNS, "VERDICT"]] + [_row(r) for r in ordered]
    if seen:
        rows[0].insert(2, "SEEN-BY")
        for row, result in zip(rows[1:], ordered, strict=True):
            row.insert(2, _cut(",".join(seen.get(result.edge.address, ())) or "-", 32))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [safe(obj.url), "  " + _summary(obj)]
    for n, row in enumerate(rows):
        text = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        odd = n > 0 and ordered[n - 1].verdict is not Verdict.OK
        line = ("! " if odd else "  ") + text
        if odd and colour:
            line = f"\x1b[{_COLOURS[ordered[n - 1].verdict]}m{line}\x1b[0m"
        lines.append(line)
    lines.extend(f"  note: {safe(note)}" for note in obj.notes)
    lines.extend(f"  {safe(line)}" for line in failure_lines(obj))
    lines.extend(f"  {safe(line)}" for line in apt_lines(obj))
    lines.extend(f"  {safe(line)}" for line in check_lines(obj))
    lines.append("  => " + conclusion(obj))
    if seen:
        lines.extend(f"  => {safe(line)}" for line in vantage_conclusions(obj, seen))
    return "\n".join(lines)


def vantage_conclusions(obj: ObjectReport, seen: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Per vantage with an odd edge: what its users get, e.g. "us: 2 of 2 edges serve an
    older Packages.gz"."""
    name = obj.path.rsplit("/", 1)[-1] or obj.path
    if obj.kind is Kind.APT:
        name = f"{obj.suite} Release"
    vantages = list(dict.fromkeys(v for names in seen.values() for v in names))
    lines = []
    for vantage in vantages:
        mine = [r for r in obj.results if vantage in seen.get(r.edge.address, ())]
        parts = []
        for verdict, what in (
            (Verdict.STALE, f"serve an older {name}"),
            (Verdict.DIVERGENT, f"serve a different {name}"),
            (Verdict.ERROR, f"serve no complete {name}"),
        ):
            hit = [r for r in mine if r.verdict is verdict]
            if hit:
                count = f"{len(hit)} of {_plural(len(mine), 'edge')}"
                parts.append(f"{count} {_singular(what, len(hit))} ({_addresses(hit)})")
        if parts:
            lines.append(f"{vantage}: " + "; ".join(parts))
    return lines


def _reference_first(obj: ObjectReport) -> list[EdgeResult]:
    ref = obj.reference.key if obj.reference else None
    order = {Verdict.OK: 0, Verdict.STALE: 1, Verdict.DIVERGENT: 2, Verdict.ERROR: 3}
    return sorted(
        obj.results, key=lambda r: (r.variant != ref, order[r.verdict], r.variant, r.edge)
    )


def _summary(obj: ObjectReport) -> str:
    ref = obj.reference
    edges = f"{_plural(len(obj.results), 'edge')}, {_plural(len(obj.variants), 'variant')}"
    failed = sum(1 for v in obj.variants if v.key.kind == "error")
    if failed:  # a failed fetch is a variant too (by its error): say how many are bodies
        served = len(obj.variants) - failed
        edges += f" ({served} served, {failed} failed {'fetch' if failed == 1 else 'fetches'})"
    if ref is None:
        return f"{edges}; no reference (no edge answered)"
    what = (
        f"sha256 {ref.sha256[:12]}, {ref.bytes_read} bytes"
        if ref.sha256
        else f"status {ref.status}"
    )
    return f"{edges}; reference: {obj.reference_source} ({what})"


def _row(result: EdgeResult) -> list[str]:
    obs = result.observation
    return [
        result.edge.address,
        str(result.edge.family),
        _text(obs.status),
        _text(obs.size),
        str(obs.bytes_read),
        (obs.sha256 or "-")[:12],
        _cut(safe(obs.etag or "-"), 24),
        safe(obs.last_modified or "-"),
        f"{obs.elapsed_s * 1000:.1f}ms",
        _verdict_text(result),
    ]


def _verdict_text(result: EdgeResult) -> str:
    if result.verdict is Verdict.ERROR:
        return f"error ({result.observation.error})"
    if result.verdict is Verdict.STALE and result.lag_s is not None:
        return f"stale ({_duration(result.lag_s)} behind)"
    return str(result.verdict)


def apt_lines(obj: ObjectReport) -> list[str]:
    """One line per edge with an APT problem: what apt-get update will say there."""
    lines = []
    for address, result in obj.apt:
        if not result.problems:
            continue
        first = result.problems[0]
        more = f" (+{len(result.problems) - 1} more)" if len(result.problems) > 1 else ""
        outcome = "apt-get update fails" if result.would_fail else "apt-get update passes, but"
        lines.append(f"{address}: {outcome}: {client_message(first)}{more}")
    return lines


def check_lines(obj: ObjectReport) -> list[str]:
    """One line per edge failing its check: what `go` or `sha256sum -c` says there."""
    lines = []
    for check in obj.checks:
        if check.problem is None:
            continue
        problem = check.problem_text
        if obj.kind is Kind.GOPROXY:
            said = f"go: verifying {obj.name}: {problem}"
        else:
            said = f"sha256sum -c: {obj.name}: FAILED ({problem})"
        got = (
            f"; expected {check.expected}, got {check.actual}" if check.problem.is_mismatch else ""
        )
        lines.append(f"{check.address}: {said}{got} [expected from the {check.source}]")
    return lines


def client_message(problem: AptProblem) -> str:
    """The problem in the words a client shows."""
    name = problem.file
    if problem.reason is Problem.SIZE_MISMATCH:
        sizes = f"{problem.size} != {problem.expected_size}"
        return f"{name}: File has unexpected size ({sizes}). Mirror sync in progress?"
    if problem.reason is Problem.HASH_MISMATCH:
        hashes = f"{(problem.sha256 or '')[:12]} != {(problem.expected_sha256 or '')[:12]}"
        return f"{name}: Hash Sum mismatch (sha256 {hashes})"
    if problem.reason in (Problem.MISSING, Problem.FETCH_ERROR):
        return f"{name}: Failed to fetch ({problem.detail})"
    if problem.reason is Problem.EXPIRED:
        return f"Release file is expired ({problem.detail})"
    if problem.reason is Problem.BY_HASH_MISSING:
        return f"{name} is missing or wrong: clients using Acquire-By-Hash cannot fetch it"
    if problem.reason is Problem.EXPECTED_PACKAGE_MISSING:
        return f"package {problem.detail} is not in the index"
    if problem.reason in _APT_REFUSALS:  # the detail is apt's (or gpgv's) own line
        return f"{name}: {problem.detail or _APT_REFUSALS[problem.reason]}"
    return f"{name}: {problem.reason} ({problem.detail})"


_APT_REFUSALS = {
    Problem.NOT_SIGNED: "The repository is not signed",
    Problem.BAD_SIGNATURE: "The following signatures were invalid",
    Problem.NO_PUBKEY: "The public key is not available (NO_PUBKEY)",
    Problem.NOT_VALID_YET: "Release file is not valid yet",
    Problem.WEAK_HASHES: "provides only weak security information",
    Problem.REDIRECT_REFUSED: "Redirection is forbidden",
}


def conclusion(obj: ObjectReport) -> str:
    """One line saying what is wrong with this object, in the user's words."""
    name = obj.path.rsplit("/", 1)[-1] or obj.path
    total = len(obj.results)
    origin = f"; the origin failed ({obj.origin_error}), so the reference is the edges' own"
    origin = origin if obj.origin_error else ""
    if obj.consistent and obj.kind is Kind.PLAIN and not obj.reference_served:
        status = obj.reference.status if obj.reference else None
        every = "the only edge answers" if total == 1 else f"all {total} edges answer"
        return f"{every} {status} for {name}: it is served nowhere (check the path){origin}"
    if obj.consistent:
        every = "the only edge serves" if total == 1 else f"all {total} edges serve"
        return f"{every} the same {name}{origin}"
    if obj.reference is None:
        return f"no edge gave a complete answer for {name}"
    if obj.kind is Kind.APT:
        name = f"{obj.suite} Release"
    parts = []
    for verdict, what in (
        (Verdict.STALE, f"serve an older {name}"),
        (Verdict.DIVERGENT, f"serve a different {name}"),
        (Verdict.ERROR, f"serve no complete {name}"),
    ):
        hit = [r for r in obj.results if r.verdict is verdict]
        if verdict is Verdict.DIVERGENT and obj.kind is Kind.APT:
            failing = [r for r in hit if (a := obj.apt_result(r.edge.address)) and a.would_fail]
            if failing:
                parts.append(
                    f"{_count(failing, total)} fail apt-get update ({_addresses(failing)})"
                )
            hit = [r for r in hit if r not in failing]
        if hit:
            parts.append(f"{_count(hit, total)} {_singular(what, len(hit))} ({_addresses(hit)})")
    return "; ".join(parts) + origin


# What a person can do about a failure, by its error word and the transport's words.
_HINTS = (
    ("tls", "certificate verify failed", "give the CA with --ca-file PEM, or --insecure"),
    ("tls", "", "check the edge's certificate and TLS setup"),
    ("timeout", "", "a larger --timeout SECONDS gives slow edges longer"),
    ("connect", "", "nothing accepts connections there on that port"),
    ("stream_reset", "", "the edge's HTTP/2 path fails; --http 1.1 shows whether HTTP/1.1 works"),
)


def failure_lines(obj: ObjectReport) -> list[str]:
    """One line per distinct failure (error and reason), naming its edges, with a hint."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in obj.results:
        obs = r.observation
        if obs.error is not None:
            why = (obs.detail or "").split(": ", 1)[-1]  # without the exception's class name
            groups.setdefault((str(obs.error), why), []).append(r.edge.address)
    lines = []
    for (error, why), addresses in groups.items():
        line = f"{', '.join(addresses)}: {error}" + (f": {why}" if why else "")
        hint = next((h for e, needle, h in _HINTS if e == error and needle in why), None)
        lines.append(line + (f" (hint: {hint})" if hint else ""))
    return lines


def _count(hit: list[EdgeResult], total: int) -> str:
    return f"{len(hit)} of {_plural(total, 'edge')}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _singular(verb_phrase: str, count: int) -> str:
    return verb_phrase.replace("serve ", "serves ", 1) if count == 1 else verb_phrase


def _addresses(results: Iterable[EdgeResult]) -> str:
    return ", ".join(
        r.edge.address + (f" {r.observation.error}" if r.observation.error else "") for r in results
    )


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# Edge-supplied text for a terminal: control characters shown escaped, never executed.
safe = one_line
