"""A real Prometheus scrapes `cdnprobe run` against the nginx lab: the stale-edge alert fires
with the right labels, resolves once the edge is fixed, and every dashboard query evaluates."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.daemon import RunningDaemon, http, wait_until
from tests.lab import Lab, free_port, spawn, stop_process
from tests.test_daemon_lab import PACKAGES, config_text, publish
from tests.test_deploy import DASHBOARD, RULES, dashboard_panels

OLD = 1_789_996_400


class Prometheus:
    def __init__(self, root: Path, scrape_port: int) -> None:
        self.root, self.port = root, free_port()
        root.mkdir(parents=True, exist_ok=True)
        rules = yaml.safe_load(RULES.read_text())
        for group in rules["groups"]:
            for rule in group["rules"]:
                rule["for"] = "2s"  # the test copy: same expressions, short waits
        (root / "rules.yml").write_text(yaml.safe_dump(rules))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [
                {
                    "job_name": "cdnprobe",
                    "static_configs": [{"targets": [f"127.0.0.1:{scrape_port}"]}],
                }
            ],
        }
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        argv = [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.proc: subprocess.Popen[bytes] = spawn(argv, root / "prometheus.log")
        wait_until(self.ready, 30, "Prometheus /-/ready")

    def ready(self) -> bool:
        try:
            return http(f"http://127.0.0.1:{self.port}/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http(f"http://127.0.0.1:{self.port}/api/v1/{path}?{query}")
        doc = json.loads(body)
        assert status == 200 and doc["status"] == "success", body
        return doc["data"]

    def firing(self, name: str) -> list[dict[str, str]]:
        alerts = self.api("alerts")["alerts"]
        return [
            a["labels"]
            for a in alerts
            if a["labels"]["alertname"] == name and a["state"] == "firing"
        ]


@pytest.fixture
def prometheus_and_daemon(lab: Lab, tmp_path: Path) -> Iterator[tuple[Prometheus, RunningDaemon]]:
    path = tmp_path / "cdnprobe.yaml"
    path.write_text(config_text(lab))
    daemon = RunningDaemon(path).start()
    prometheus = Prometheus(tmp_path / "prometheus", daemon.port)
    try:
        yield prometheus, daemon
    finally:
        stop_process(prometheus.proc)
        daemon.kill()


def test_stale_edge_alert_fires_then_resolves(
    lab: Lab, prometheus_and_daemon: tuple[Prometheus, RunningDaemon]
) -> None:
    prometheus, _ = prometheus_and_daemon
    publish(lab)
    lab.write(PACKAGES, b"\x1f\x8bpackages v1" * 290, edges=["127.0.0.3"], mtime=OLD)
    wait_until(lambda: bool(prometheus.firing("CdnprobeEdgeStale")), 60, "CdnprobeEdgeStale firing")
    (labels,) = prometheus.firing("CdnprobeEdgeStale")
    assert (labels["target"], labels["path"], labels["address"]) == ("repo", PACKAGES, "127.0.0.3")
    assert labels["severity"] == "warning"
    assert not prometheus.firing("CdnprobeEdgeDown")
    publish(lab)  # the edge catches up
    wait_until(lambda: not prometheus.firing("CdnprobeEdgeStale"), 60, "CdnprobeEdgeStale resolved")


def test_every_dashboard_query_evaluates(
    lab: Lab, prometheus_and_daemon: tuple[Prometheus, RunningDaemon]
) -> None:
    """Each PromQL expression of the Grafana dashboard runs without error and finds series."""
    prometheus, _ = prometheus_and_daemon
    publish(lab)
    wait_until(
        lambda: bool(prometheus.api("query", query="cdnprobe_edge_up")["result"]),
        60,
        "first scrape",
    )
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard_panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"].replace("$target", ".*").replace("$__rate_interval", "1m")
            expr = expr.replace("$vantage", ".*")
            data = prometheus.api("query", query=expr)
            assert data["resultType"] == "vector", (panel["title"], expr)
    found = prometheus.api("query", query='cdnprobe_edge_object_state{target=~".*"}')["result"]
    assert len(found) == 8  # 4 edges x 2 paths
