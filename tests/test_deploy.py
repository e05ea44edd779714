"""Alert rules (real promtool), dashboard structure, Dockerfile, compose and Kubernetes files."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from prober.compare import compare_object
from prober.daemon.metrics import DaemonCollector
from prober.daemon.snapshot import Histogram, TargetSnapshot
from prober.model import (
    AptEdgeResult,
    AptProblem,
    CheckProblem,
    DnsAnswer,
    Edge,
    EdgeCheck,
    IndexFile,
    Kind,
    Observation,
    Problem,
    Release,
    TargetReport,
)
from tests.conftest import ROOT, cdnprobe
from tests.daemon import parse
from tests.reference_metrics import SnapshotCollector

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "cdnprobe.json"
CONTRACT_METRICS = {
    "cdnprobe_edge_up", "cdnprobe_edge_object_match", "cdnprobe_edge_object_stale",
    "cdnprobe_edge_object_size_bytes", "cdnprobe_edge_object_lag_seconds",
    "cdnprobe_edge_http_status", "cdnprobe_object_variants", "cdnprobe_object_edges_divergent",
    "cdnprobe_edge_object_info", "cdnprobe_dns_addresses", "cdnprobe_probe_errors_total",
    "cdnprobe_request_duration_seconds", "cdnprobe_cycle_last_timestamp_seconds",
    "cdnprobe_apt_index_match", "cdnprobe_apt_edge_would_fail", "cdnprobe_apt_release_timestamp_seconds",
    "cdnprobe_apt_release_valid_until_seconds", "cdnprobe_apt_packages",
    "cdnprobe_goproxy_module_match", "cdnprobe_artifact_checksum_match",
}  # fmt: skip


def promtool(*args: str, cwd: Path = DEPLOY / "prometheus") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_rules_pass_promtool_check() -> None:
    proc = promtool("check", "rules", "rules.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 12 rules found" in proc.stdout


def test_rule_unit_tests_pass_promtool() -> None:
    """deploy/prometheus/tests.yml: each alert fires when it must, and a brief rollout does not."""
    proc = promtool("test", "rules", "tests.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_prometheus_config_passes_promtool() -> None:
    proc = promtool("check", "config", "prometheus.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def alerts() -> list[dict[str, Any]]:
    return [
        r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r
    ]


def test_every_alert_has_severity_summary_description_runbook() -> None:
    names = {a["alert"] for a in alerts()}
    assert {"CdnprobeEdgeStale", "CdnprobeEdgeDivergent", "CdnprobeEdgeDown", "CdnprobeObjectVariants",
            "CdnprobeNoAddresses", "CdnprobeCyclesStopped", "CdnprobeDown"} <= names  # fmt: skip
    for alert in alerts():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert {"summary", "description", "runbook"} <= set(alert["annotations"])


def test_stale_alert_waits_ten_minutes_and_names_the_edge() -> None:
    stale = next(a for a in alerts() if a["alert"] == "CdnprobeEdgeStale")
    assert stale["for"] == "10m"
    for word in ("$labels.target", "$labels.path", "$labels.address"):
        assert word in stale["annotations"]["description"]
    assert "urge" in stale["annotations"]["runbook"] and "pin" in stale["annotations"]["runbook"]


def test_prometheus_rule_resource_matches_rules_file() -> None:
    """The Operator's PrometheusRule carries exactly the groups of rules.yml."""
    resource = yaml.safe_load((DEPLOY / "kubernetes" / "prometheusrule.yaml").read_text())
    assert resource["kind"] == "PrometheusRule"
    assert resource["spec"] == yaml.safe_load(RULES.read_text())


def exported_metric_names() -> set[str]:
    """Every sample name the daemon exports, from a snapshot that has every kind of series."""
    now = datetime(2026, 11, 23, tzinfo=UTC)
    edge = Edge("192.0.2.1", 4)
    obs = Observation(status=200, size=1, bytes_read=1, sha256="ab" * 32, etag='"e"')
    obj = compare_object("https://h/p", "h", "/p", [(edge, obs)])
    index = IndexFile("main/binary-amd64/Packages", 1, "ab" * 32)
    release = Release(now, "x", now, "x", False, ("main",), ("amd64",), {index.path: index}, True)
    problem = AptProblem(index.path, Problem.HASH_MISMATCH)
    apt = AptEdgeResult(
        release, (problem,), True, {"main/binary-amd64/Packages": 3}, {index.path: True}
    )
    apt_obj = replace(
        obj, path="/dists/s/InRelease", suite="s", apt=(("192.0.2.1", apt),), kind=Kind.APT
    )
    go_obj = replace(
        obj,
        kind=Kind.GOPROXY,
        name="m.org/x@v1.0.0",
        checks=(EdgeCheck("192.0.2.1", "h1", "h1:a", "h1:a", "go.sum"),),
    )
    mismatch = CheckProblem.CHECKSUM_MISMATCH
    sums_obj = replace(
        obj, kind=Kind.CHECKSUMS, name="a.tgz",
        checks=(EdgeCheck("192.0.2.1", "sha256", "aa", "bb", "manifest", mismatch),),
    )  # fmt: skip
    objects = (obj, apt_obj, go_obj, sums_obj)
    report = TargetReport("t", "h", DnsAnswer("h", (edge,), "test"), objects, now, now)
    snap = TargetSnapshot(
        "t", "h", ("/p",), 30, report, {("192.0.2.1", "timeout"): 1}, Histogram().observe([1]), 1, 1
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: [snap]))
    registry.register(DaemonCollector(lambda: (True, now)))
    scrape = parse(generate_latest(registry).decode())
    return set(scrape.samples) | set(scrape.types)


def test_every_contract_metric_is_exported() -> None:
    names = exported_metric_names()
    for metric in CONTRACT_METRICS:
        assert metric in names or metric.removesuffix("_total") in names, metric


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    return exprs + [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]


def test_dashboard_structure() -> None:
    """Unique panel ids, a target variable, every datasource by the datasource variable."""
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["target"]["type"] == "query"
    for panel in dash["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert "$target" in target["expr"]
    kinds = {p["type"] for p in dash["panels"]}
    assert {"state-timeline", "heatmap", "timeseries"} <= kinds


def test_dashboard_queries_use_only_exported_metrics() -> None:
    names = exported_metric_names()
    used = {m for expr in dashboard_exprs() for m in re.findall(r"\bcdnprobe_[a-z_]+", expr)}
    assert used and used <= names, used - names
    rules_used = {m for a in alerts() for m in re.findall(r"\bcdnprobe_[a-z_]+", a["expr"])}
    assert rules_used <= names, rules_used - names


def test_dockerfile_has_the_parts() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM python:3\.\d+-slim", text, re.M)) == 2  # multi-stage, slim
    assert (
        "pip wheel" in text and "--no-index --find-links /wheels" in text
    )  # installed from the wheel
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^EXPOSE 9813$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*", text, re.M) and "/healthz" in text
    assert 'ENTRYPOINT ["cdnprobe"]' in text
    assert 'CMD ["run", "--config", "/etc/cdnprobe/config.yaml"]' in text
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / copied).exists(), copied


def test_compose_wires_the_four_services_to_existing_files() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"cdnprobe", "prometheus", "alertmanager", "grafana"}
    assert services["cdnprobe"]["read_only"] is True
    for service in services.values():
        for volume in service.get("volumes", []):
            assert (DEPLOY / volume.split(":")[0]).exists(), volume


def k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def test_kubernetes_workloads_are_non_root_probed_and_bounded() -> None:
    kinds = {d["kind"] for d in k8s_docs()}
    assert {
        "Deployment",
        "ConfigMap",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
        "StatefulSet",
    } <= kinds
    for doc in k8s_docs():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["resources"]["requests"]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz"


def test_kubernetes_and_compose_configs_are_valid(tmp_path: Path) -> None:
    configmap = next(d for d in k8s_docs() if d["kind"] == "ConfigMap")
    path = tmp_path / "k8s.yaml"
    path.write_text(configmap["data"]["config.yaml"])
    for config in (path, DEPLOY / "cdnprobe.yaml"):
        proc = cdnprobe("validate-config", str(config))
        assert proc.returncode == 0, proc.stderr


def test_sharded_statefulset_passes_its_ordinal() -> None:
    sts = next(d for d in k8s_docs() if d["kind"] == "StatefulSet")
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    replicas = sts["spec"]["replicas"]
    assert args[args.index("--shard") + 1] == f"$(SHARD_INDEX)/{replicas}"


@pytest.mark.parametrize("name", ["rules.yml", "tests.yml", "prometheus.yml"])
def test_prometheus_files_are_yaml(name: str) -> None:
    assert yaml.safe_load((DEPLOY / "prometheus" / name).read_text())
