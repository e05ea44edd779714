"""Regions compared by a global Prometheus: two regional Prometheus servers (external labels
vantage=eu and vantage=us) scrape a region's cdnprobe exposition each; a global one federates
both and evaluates the shipped rules. CdnprobeRegionsDisagree fires when the regions'
references of one object differ, and resolves when they agree again.

The regional cdnprobe daemons are stood in for by static exposition text served from
127.0.0.1: this test is about the rule and the federation path, not about the daemon.
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon import http as http_get
from tests.daemon import wait_until
from tests.lab import free_port, spawn, stop_process

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "rules.yml"
ALERT = "CdnprobeRegionsDisagree"
TARGET, PATH = "repo", "/dists/stable/InRelease"
OLD, NEW = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
FOR_S = 3  # the test copy's `for:`; the shipped rule waits 10m


def exposition(sha256: str) -> str:
    """What a regional cdnprobe exports for one object: its reference's identity."""
    return (
        "# HELP cdnprobe_object_reference_info Identity of the reference, last probe cycle\n"
        "# TYPE cdnprobe_object_reference_info gauge\n"
        f'cdnprobe_object_reference_info{{target="{TARGET}",path="{PATH}",sha256="{sha256}"}} 1\n'
    )


class Expositions:
    """A tiny HTTP server: GET /REGION is that region's exposition text, changeable at will."""

    def __init__(self) -> None:
        self.text: dict[str, str] = {}
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = owner.text.get(self.path.strip("/"))
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Expositions:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class Prometheus:
    """One Prometheus server in its own directory, 1 s scrapes and evaluations, stopped by PID."""

    def __init__(self, root: Path, config: dict[str, Any], rules: dict[str, Any] | None = None):
        self.root, self.port = root, free_port()
        root.mkdir(parents=True, exist_ok=True)
        fast = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config = config | {"global": fast | config.get("global", {})}
        if rules is not None:
            (root / "rules.yml").write_text(yaml.safe_dump(rules))
            config["rule_files"] = [str(root / "rules.yml")]
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        argv = [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={self.root / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address={self.address}",
            "--log.level=warn",
        ]
        self.proc = spawn(argv, self.root / "prometheus.log")
        wait_until(self.ready, 30, f"Prometheus {self.root.name} /-/ready")
        return self

    def stop(self) -> None:
        stop_process(self.proc)

    def ready(self) -> bool:
        try:
            return http_get(f"http://{self.address}/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"http://{self.address}/api/v1/{path}?{query}", timeout=5)
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", body
        return doc["data"]

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]

    def vantages_seen(self) -> dict[str, str]:
        """vantage → sha256 of each vantage's newest federated reference series (a series a
        region dropped lingers in the global: federated samples get no staleness marker)."""
        query = "topk by (vantage) (1, timestamp(cdnprobe_object_reference_info))"
        result = self.api("query", query=query)["result"]
        return {r["metric"].get("vantage", ""): r["metric"]["sha256"] for r in result}

    def series_count(self) -> int:
        return len(self.api("query", query="cdnprobe_object_reference_info")["result"])


def regional(root: Path, vantage: str, expositions: Expositions) -> Prometheus:
    config = {
        "global": {"external_labels": {"vantage": vantage}},
        "scrape_configs": [
            {
                "job_name": "cdnprobe",
                "metrics_path": f"/{vantage}",
                "static_configs": [{"targets": [f"127.0.0.1:{expositions.port}"]}],
            }
        ],
    }
    return Prometheus(root / vantage, config)


def shipped_rules_with_short_for() -> dict[str, Any]:
    """The shipped rules file, the region alert's `for:` cut to seconds; its expr untouched."""
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    (alert,) = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == ALERT]
    assert alert["for"] == "10m"
    alert["for"] = f"{FOR_S}s"
    return rules


def global_over(root: Path, regions: list[Prometheus]) -> Prometheus:
    config = {
        "scrape_configs": [
            {
                "job_name": "federate",
                "metrics_path": "/federate",
                "honor_labels": True,  # keep each region's job, instance and vantage
                "params": {"match[]": ['{__name__="cdnprobe_object_reference_info"}']},
                "static_configs": [{"targets": [r.address for r in regions]}],
            }
        ],
    }
    return Prometheus(root / "global", config, shipped_rules_with_short_for())


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[tuple[Expositions, Prometheus]]:
    expositions = Expositions().start()
    expositions.text = {"eu": exposition(OLD), "us": exposition(OLD)}
    started: list[Prometheus] = []
    try:
        regions = [regional(tmp_path, v, expositions) for v in ("eu", "us")]
        for server in regions:
            started.append(server.start())
        started.append(global_over(tmp_path, regions).start())
        yield expositions, started[-1]
    finally:
        for server in reversed(started):
            server.stop()
        expositions.stop()


def test_regions_disagree_fires_when_references_differ_and_resolves_when_they_agree(
    federation: tuple[Expositions, Prometheus],
) -> None:
    expositions, global_prometheus = federation
    started = time.monotonic()

    # Both regions federated, agreeing: no alert, not even pending, over more than `for:`.
    wait_until(
        lambda: global_prometheus.vantages_seen() == {"eu": OLD, "us": OLD},
        30,
        "both regions' references federated",
    )
    time.sleep(FOR_S + 2)
    assert global_prometheus.alerts(ALERT) == []

    # us moves to a new reference, eu does not.
    expositions.text["us"] = exposition(NEW)
    wait_until(
        lambda: any(a["state"] == "firing" for a in global_prometheus.alerts(ALERT)),
        30,
        f"{ALERT} firing",
    )
    (alert,) = global_prometheus.alerts(ALERT)
    assert alert["labels"] == {
        "alertname": ALERT,
        "severity": "warning",
        "target": TARGET,
        "path": PATH,
    }
    assert f"(eu={OLD}, us={NEW})" in alert["annotations"]["description"]
    assert alert["annotations"]["summary"] == (
        f"Regions see 2 different references of {PATH} on {TARGET}"
    )

    # eu catches up: the old series goes stale through both hops and the alert resolves.
    expositions.text["eu"] = exposition(NEW)
    wait_until(lambda: global_prometheus.alerts(ALERT) == [], 30, f"{ALERT} resolved")
    assert global_prometheus.vantages_seen() == {"eu": NEW, "us": NEW}
    # the references the regions left are still there, as federation keeps them for 5m: the
    # rule had to look past them to resolve
    assert global_prometheus.series_count() == 4
    assert time.monotonic() - started < 90
