"""The status page, for a person woken at night: what is broken first, then everything else.

At the top a summary (targets broken and healthy, edges by verdict) and one line per problem;
below, per target (broken ones first), an edge-by-path matrix whose cells say since when
each verdict holds, how far behind a stale edge is and how much of a truncated body came.
Pure: everything comes from the snapshots and `now`; every value is HTML-escaped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from html import escape

from prober.daemon.history import EdgeState
from prober.daemon.snapshot import TargetSnapshot
from prober.model import EdgeResult, ObjectReport, TargetReport, Verdict
from prober.render import conclusion, iso_utc

MAX_PROBLEM_LINES = 50  # the page stays readable when a whole CDN breaks at once
_WORST_FIRST = (Verdict.ERROR, Verdict.DIVERGENT, Verdict.STALE, Verdict.OK)

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
td small{color:#555;display:block;font-family:monospace}
.ok{background:#e3f6e3}.stale{background:#fff1c2}.divergent{background:#ffd6d6}
.error{background:#f4b3b3}.none{background:#eee}
.summary{border:2px solid #999;padding:.5em 1em;margin:0 0 1em;background:#fafafa}
.summary.broken{border-color:#c00}.summary p{margin:.2em 0;font-size:16px}
.badge{font-size:12px;padding:.1em .5em;border-radius:.6em;vertical-align:middle}
.badge.broken{background:#c00;color:#fff}.badge.healthy{background:#2a2;color:#fff}
.badge.waiting{background:#999;color:#fff}
"""


@dataclass(frozen=True, slots=True)
class _Health:
    """A target's state for sorting and the summary: broken, waiting (no cycle) or healthy."""

    state: str
    problems: tuple[str, ...]


def status_page(snapshots: Iterable[TargetSnapshot], now: datetime) -> str:
    judged = [(snap, _health(snap, now)) for snap in snapshots]
    order = {"broken": 0, "waiting": 1, "healthy": 2}
    judged.sort(key=lambda pair: (order[pair[1].state], pair[0].name))
    sections = "\n".join(_target(snap, health, now) for snap, health in judged)
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="10"><title>cdnprobe</title>'
        f"<style>{_STYLE}</style></head><body><h1>cdnprobe</h1>"
        f"{_summary(judged)}"
        f"<p>Page rendered {escape(iso_utc(now))}. "
        '<a href="/metrics">/metrics</a></p>'
        f"{sections}</body></html>"
    )


# ---- the summary ------------------------------------------------------------------------


def _summary(judged: list[tuple[TargetSnapshot, _Health]]) -> str:
    states = Counter(health.state for _, health in judged)
    shown_states = [s for s in ("broken", "waiting", "healthy") if s != "waiting" or states[s]]
    targets = ", ".join(f"{states[s]} {s}" for s in shown_states)
    verdicts: Counter[Verdict] = Counter()
    for snap, _ in judged:
        if snap.report is not None:
            verdicts.update(_worst_verdict_per_edge(snap.report).values())
    edge_text = ", ".join(f"{verdicts[v]} {v}" for v in _WORST_FIRST if verdicts[v]) or "none yet"
    problems = [line for _, health in judged for line in health.problems]
    items = "".join(f"<li>{escape(line)}</li>" for line in problems[:MAX_PROBLEM_LINES])
    if len(problems) > MAX_PROBLEM_LINES:
        items += f"<li>… and {len(problems) - MAX_PROBLEM_LINES} more, below</li>"
    broken = " broken" if states["broken"] else ""
    return (
        f"<div class='summary{broken}'><p><b>Targets:</b> {escape(targets)}</p>"
        f"<p><b>Edges</b> (each by its worst verdict): {escape(edge_text)}</p>"
        + (f"<ul>{items}</ul>" if items else "<p>No problems.</p>")
        + "</div>"
    )


def _worst_verdict_per_edge(report: TargetReport) -> dict[str, Verdict]:
    worst: dict[str, Verdict] = {}
    for obj in report.objects:
        for result in obj.results:
            old = worst.get(result.edge.address, Verdict.OK)
            worst[result.edge.address] = min(old, result.verdict, key=_WORST_FIRST.index)
    return worst


def _health(snap: TargetSnapshot, now: datetime) -> _Health:
    report = snap.report
    if report is None:
        return _Health("waiting", ())
    if report.dns_error:
        return _Health("broken", (f"{snap.name}: DNS: {report.dns_error}",))
    problems = []
    for obj in report.objects:
        for result in obj.divergent_edges:
            problems.append(_problem_line(snap, obj, result, now))
        if not obj.healthy and not obj.divergent_edges:  # e.g. 404 on every edge, origin down
            problems.append(f"{snap.name}: {conclusion(obj)}")
    return _Health("broken" if problems else "healthy", tuple(problems))


def _problem_line(
    snap: TargetSnapshot, obj: ObjectReport, result: EdgeResult, now: datetime
) -> str:
    address = result.edge.address
    line = f"{snap.name}: {address} {_verdict_words(result)} for {obj.name or obj.path}"
    state = snap.edge_states.get((obj.path, address))
    if state is not None:
        line += f", since {_moment(state.since, now)}"
    return line


# ---- one target -------------------------------------------------------------------------


def _target(snap: TargetSnapshot, health: _Health, now: datetime) -> str:
    badge = f"<span class='badge {health.state}'>{health.state}</span>"
    head = f"<h2 id='{escape(snap.name)}'>{escape(snap.name)} {badge} "
    head += f"<small>{escape(snap.host)}</small></h2>"
    report = snap.report
    if report is None:
        return head + "<p>No cycle finished yet.</p>"
    when = f"<p>Last cycle finished {escape(_moment(report.finished_at, now))}"
    when += f"; cycles {snap.cycles}, skipped {snap.skipped}.</p>"
    if report.dns_error:
        return head + when + f"<p class=error>DNS: {escape(report.dns_error)}</p>"
    return head + when + _matrix(snap, report, now)


def _matrix(snap: TargetSnapshot, report: TargetReport, now: datetime) -> str:
    header = "".join(f"<th>{escape(o.name or o.path)}</th>" for o in report.objects)
    rows = []
    for edge in report.edges:
        cells = []
        for obj in report.objects:
            found = [r for r in obj.results if r.edge == edge]
            state = snap.edge_states.get((obj.path, edge.address))
            cells.append(_cell(found[0], state, now) if found else "<td class=none>-</td>")
        rows.append(
            f"<tr><th>{escape(edge.address)} <small>v{edge.family}</small></th>"
            f"{''.join(cells)}</tr>"
        )
    summary = "".join(f"<li>{escape(conclusion(obj))}</li>" for obj in report.objects)
    return f"<table><tr><th>edge</th>{header}</tr>{''.join(rows)}</table><ul>{summary}</ul>"


def _cell(result: EdgeResult, state: EdgeState | None, now: datetime) -> str:
    obs = result.observation
    verdict = str(result.verdict)
    lines = [_verdict_words(result)]
    if state is not None:
        recovered = state.last_recovered if result.verdict is Verdict.OK else None
        if recovered != state.since:
            lines.append(f"since {_moment(state.since, now)}")
        if recovered is not None:
            lines.append(f"recovered {_moment(recovered, now)}")
    if obs.detail and obs.error:
        lines.append(obs.detail[:200])
    status = obs.status if obs.status is not None else "-"
    lines.append(f"HTTP {status}, {_bytes(obs.bytes_read, obs.size)}")
    if obs.sha256:
        lines.append(f"sha256 {obs.sha256[:12]}")
    if obs.etag:
        lines.append(f"ETag {obs.etag[:64]}")
    # <small> is a block: one line each, no <br> between them
    body = "".join(
        f"<small>{escape(line)}</small>" if i else escape(line) for i, line in enumerate(lines)
    )
    return f"<td class={verdict}>{body}</td>"


def _verdict_words(result: EdgeResult) -> str:
    words = str(result.verdict)
    if result.observation.error:
        words += f": {result.observation.error}"
    if result.lag_s:
        words += f", {human_duration(result.lag_s)} behind"
    return words


def _bytes(read: int, announced: int | None) -> str:
    if announced is not None and announced != read:
        return f"{read} of {announced} bytes"
    return f"{read} bytes"


def _moment(at: datetime, now: datetime) -> str:
    """'13:50:00Z (10m ago)': the time of day when it is today, the whole date otherwise."""
    stamp = iso_utc(at)
    if iso_utc(now)[:10] == stamp[:10]:
        stamp = stamp[11:]
    ago = (now - at).total_seconds()
    return f"{stamp} ({human_duration(ago)} ago)" if ago >= 1 else stamp


def human_duration(seconds: float) -> str:
    """Two units at most, the larger first: '45s', '3m 20s', '2h', '2h 5m', '3d 4h'."""
    total = round(abs(seconds))
    for unit, size, smaller, small_size in (
        ("d", 86400, "h", 3600),
        ("h", 3600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if total >= size:
            big, rest = divmod(total, size)
            rest //= small_size
            return f"{big}{unit} {rest}{smaller}" if rest else f"{big}{unit}"
    return f"{total}s"
