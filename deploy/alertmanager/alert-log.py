"""A webhook receiver for Alertmanager that prints one line per alert: the compose demo's pager.

Alertmanager POSTs its webhook JSON (version 4) here; each alert becomes
`2026-11-23T14:00:00Z firing CdnprobeEdgeStale target=repo address=192.0.2.4: summary`.
Standard library only; listens on :8080 inside the compose network.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


def lines(payload: dict[str, object]) -> list[str]:
    """One printable line per alert of an Alertmanager webhook payload."""
    out = []
    alerts = payload.get("alerts")
    for alert in alerts if isinstance(alerts, list) else []:
        labels = alert.get("labels", {})
        keys = ("target", "path", "address", "vantage")
        where = " ".join(f"{k}={labels[k]}" for k in keys if k in labels)
        summary = alert.get("annotations", {}).get("summary", "")
        moment = alert.get("endsAt") if alert.get("status") == "resolved" else alert.get("startsAt")
        out.append(f"{moment} {alert.get('status')} {labels.get('alertname')} {where}: {summary}")
    return out


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        for line in lines(payload if isinstance(payload, dict) else {}):
            print(line, flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per alert is the output; no access log


if __name__ == "__main__":
    print("alert-log: waiting for Alertmanager notifications on :8080", flush=True)
    ThreadingHTTPServer(("", 8080), Handler).serve_forever()
