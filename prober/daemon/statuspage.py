"""The status page: per target, an edge-by-path matrix of verdicts. Pure; every value escaped."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape

from prober.daemon.snapshot import TargetSnapshot
from prober.model import EdgeResult, TargetReport
from prober.render import conclusion, iso_utc

_STYLE = """
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
td small{color:#555;display:block;font-family:monospace}
.ok{background:#e3f6e3}.stale{background:#fff1c2}.divergent{background:#ffd6d6}
.error{background:#f4b3b3}.none{background:#eee}
"""


def status_page(snapshots: Iterable[TargetSnapshot], now: datetime) -> str:
    sections = "\n".join(_target(s) for s in snapshots)
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta http-equiv="refresh" content="10"><title>cdnprobe</title>'
        f"<style>{_STYLE}</style></head><body><h1>cdnprobe</h1>"
        f"<p>Page rendered {escape(iso_utc(now))}. "
        '<a href="/metrics">/metrics</a></p>'
        f"{sections}</body></html>"
    )


def _target(snap: TargetSnapshot) -> str:
    head = f"<h2>{escape(snap.name)} <small>{escape(snap.host)}</small></h2>"
    report = snap.report
    if report is None:
        return head + "<p>No cycle finished yet.</p>"
    when = f"<p>Last cycle finished {escape(iso_utc(report.finished_at))}"
    when += f"; cycles {snap.cycles}, skipped {snap.skipped}.</p>"
    if report.dns_error:
        return head + when + f"<p class=error>DNS: {escape(report.dns_error)}</p>"
    return head + when + _matrix(report)


def _matrix(report: TargetReport) -> str:
    paths = [o.path for o in report.objects]
    header = "".join(f"<th>{escape(p)}</th>" for p in paths)
    rows = []
    for edge in report.edges:
        cells = []
        for obj in report.objects:
            found = [r for r in obj.results if r.edge == edge]
            cells.append(_cell(found[0]) if found else "<td class=none>-</td>")
        rows.append(
            f"<tr><th>{escape(edge.address)} <small>v{edge.family}</small></th>"
            f"{''.join(cells)}</tr>"
        )
    summary = "".join(f"<li>{escape(conclusion(obj))}</li>" for obj in report.objects)
    return f"<table><tr><th>edge</th>{header}</tr>{''.join(rows)}</table><ul>{summary}</ul>"


def _cell(result: EdgeResult) -> str:
    obs = result.observation
    verdict = str(result.verdict)
    lines = [verdict if not obs.error else f"{verdict}: {obs.error}"]
    lines.append(f"HTTP {obs.status if obs.status is not None else '-'}, {obs.bytes_read} bytes")
    if obs.sha256:
        lines.append(f"sha256 {obs.sha256[:12]}")
    if obs.etag:
        lines.append(f"ETag {obs.etag[:64]}")
    if result.lag_s:
        lines.append(f"lag {result.lag_s:.0f}s")
    # <small> is a block: one line each, no <br> between them
    body = "".join(
        f"<small>{escape(line)}</small>" if i else escape(line) for i, line in enumerate(lines)
    )
    return f"<td class={verdict}>{body}</td>"
