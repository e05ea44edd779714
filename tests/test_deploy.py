"""Alert rules (real promtool), dashboard structure, Dockerfile, compose and Kubernetes files."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
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
    rules = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    assert rules >= 12  # the twelve alerts of the first release, and those added since
    assert f"SUCCESS: {rules} rules found" in proc.stdout


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
    release = Release(now, "x", now, "x", False, ("main",), ("amd64",), (index,), True)
    problem = AptProblem(index.path, Problem.HASH_MISMATCH)
    apt = AptEdgeResult(
        release, (problem,), True, (("main/binary-amd64/Packages", 3),), ((index.path, True),)
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


def dashboard_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel with queries, those inside collapsed rows included; rows themselves not."""
    panels = []
    for panel in dash["panels"]:
        panels.extend(panel["panels"] if panel["type"] == "row" else [panel])
    return panels


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard_panels(dash) for t in p["targets"]]
    return exprs + [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]


def test_dashboard_structure() -> None:
    """Unique panel ids, a target variable, every datasource by the datasource variable."""
    dash = json.loads(DASHBOARD.read_text())
    rows = [p for p in dash["panels"] if p["type"] == "row"]
    ids = [p["id"] for p in rows + dashboard_panels(dash)]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["target"]["type"] == "query"
    for panel in dashboard_panels(dash):
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert "$target" in target["expr"]
    kinds = {p["type"] for p in dashboard_panels(dash)}
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
    assert set(services) == {"cdnprobe", "prometheus", "alertmanager", "grafana", "alert-log"}
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


# ---- issue 15, point 11: deploy as a user finds it --------------------------------------

KIND_METRICS = {"APT": "cdnprobe_apt_", "Go": "cdnprobe_goproxy_", "Checksum": "cdnprobe_artifact_"}


def test_dashboard_states_the_grafana_version_it_needs() -> None:
    dash = json.loads(DASHBOARD.read_text())
    grafana = next(r for r in dash["__requires"] if r["type"] == "grafana")
    assert int(grafana["version"].split(".")[0]) >= 10
    assert "Grafana 10.0 or newer" in dash["description"]
    used = {p["type"] for p in dashboard_panels(dash)}
    assert used <= {r["id"] for r in dash["__requires"] if r["type"] == "panel"}


def test_dashboard_per_kind_panels_are_in_collapsed_rows_of_their_kind() -> None:
    """A target without APT (Go, checksums) sees no empty APT panels: they sit in a collapsed
    row named for the kind, whose queries Grafana runs only when it is opened."""
    dash = json.loads(DASHBOARD.read_text())
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        exprs = " ".join(t["expr"] for t in panel["targets"])
        assert not any(prefix in exprs for prefix in KIND_METRICS.values()), panel["title"]
    rows = {r["title"].split()[0]: r for r in dash["panels"] if r["type"] == "row"}
    assert set(rows) == set(KIND_METRICS)
    for word, prefix in KIND_METRICS.items():
        row = rows[word]
        assert row["collapsed"] is True and row["panels"], word
        for panel in row["panels"]:
            assert all(prefix in t["expr"] for t in panel["targets"]), panel["title"]


def test_dashboard_has_a_vantage_variable_and_a_region_by_edge_table() -> None:
    dash = json.loads(DASHBOARD.read_text())
    vantage = next(v for v in dash["templating"]["list"] if v["name"] == "vantage")
    assert vantage["type"] == "query" and vantage["includeAll"] and vantage["allValue"] == ".*"
    assert vantage["query"]["query"].endswith(", vantage)")
    for panel in dashboard_panels(dash):
        for target in panel["targets"]:
            assert 'vantage=~"$vantage"' in target["expr"], panel["title"]
    (table,) = [
        p for p in dashboard_panels(dash)
        if p["type"] == "table" and "by (vantage, address)" in p["targets"][0]["expr"]
    ]  # fmt: skip
    assert "cdnprobe_edge_object_state" in table["targets"][0]["expr"]
    (matrix,) = [t for t in table["transformations"] if t["id"] == "groupingToMatrix"]
    assert matrix["options"]["columnField"] == "vantage"
    assert matrix["options"]["rowField"] == "address"


def healthcheck_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_follows_listen_and_tls(tmp_path: Path) -> None:
    url = healthcheck_module().healthz_url
    config = tmp_path / "c.yaml"
    config.write_text('listen: "[::]:9999"\ntargets: []\n')
    tls = tmp_path / "web.yml"
    tls.write_text("tls_server_config: {cert_file: a, key_file: b}\n")
    auth_only = tmp_path / "auth.yml"
    auth_only.write_text("basic_auth_users: {a: b}\n")
    run = ["cdnprobe", "run", "--config", str(config)]
    assert url(run, {}) == "http://[::1]:9999/healthz"
    assert url([*run, "--listen", "0.0.0.0:9100"], {}) == "http://127.0.0.1:9100/healthz"
    assert url([*run, "--listen=10.0.0.5:9100"], {}) == "http://10.0.0.5:9100/healthz"
    assert url([*run, "--listen", ":9100"], {"CDNPROBE_LISTEN": "127.0.0.1:1"}) == (
        "http://127.0.0.1:1/healthz"
    )
    assert url([*run, "--web.config.file", str(tls)], {}) == "https://[::1]:9999/healthz"
    assert url([*run, "--web.config.file", str(auth_only)], {}).startswith("http://")
    assert url(["cdnprobe", "run"], {}) == "http://127.0.0.1:9813/healthz"
    docker = (ROOT / "Dockerfile").read_text()
    healthcheck = docker[docker.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "9813" not in healthcheck and "deploy/healthcheck.py" in docker


def test_healthcheck_passes_on_a_tls_daemon_and_fails_once_it_is_gone(
    tmp_path: Path, ca: Any
) -> None:
    """The script, run as the image runs it, against `cdnprobe run --listen … --web.config.file`
    with TLS: exit 0; after the daemon is gone: exit 1."""
    from tests.daemon import RunningDaemon
    from tests.lab import free_port

    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config: {{cert_file: {tmp_path / 'server.crt'}, "
                   f"key_file: {tmp_path / 'server.key'}}}\n")  # fmt: skip
    config = tmp_path / "c.yaml"
    config.write_text(
        "targets:\n  - {name: l, url: 'http://127.0.0.1:9', paths: [/], interval: 1h}\n"
    )
    daemon = RunningDaemon(config, port=free_port(), extra_args=["--web.config.file", str(web)])
    daemon.start("https", ssl.create_default_context(cadata=ca.cert_pem.bytes().decode()))

    def healthcheck() -> subprocess.CompletedProcess[str]:
        assert daemon.proc is not None
        env = {**os.environ, "CDNPROBE_PID": str(daemon.proc.pid)}
        env.pop("CDNPROBE_LISTEN", None)
        return subprocess.run(
            [sys.executable, str(DEPLOY / "healthcheck.py")],
            capture_output=True, text=True, timeout=30, env=env, check=False,
        )  # fmt: skip

    try:
        assert healthcheck().returncode == 0
        daemon.signal(signal.SIGSTOP)  # alive but not answering: unhealthy
        stopped = healthcheck()
        daemon.signal(signal.SIGCONT)
        assert stopped.returncode == 1 and "/healthz" in stopped.stderr
    finally:
        daemon.kill()


def test_kubernetes_monitors_carry_the_kube_prometheus_stack_label() -> None:
    """kube-prometheus-stack selects ServiceMonitors and PrometheusRules by release=…: the
    kustomization adds it to both (one value to change), and builds when kubectl is here."""
    import shutil

    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    (patch,) = [p for p in kustomization["patches"] if "ServiceMonitor" in p["target"]["kind"]]
    assert set(patch["target"]["kind"].split("|")) == {"ServiceMonitor", "PrometheusRule"}
    (op,) = yaml.safe_load(patch["patch"])
    assert op == {"op": "add", "path": "/metadata/labels/release", "value": "kube-prometheus-stack"}
    assert kustomization["images"][0]["name"] == "cdnprobe"
    if shutil.which("kubectl") is None:
        return
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "kubernetes")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        monitor = doc["kind"] in ("ServiceMonitor", "PrometheusRule")
        assert (labels.get("release") == "kube-prometheus-stack") is monitor, doc["kind"]


def test_compose_publishes_nothing_beyond_loopback_and_grafana_needs_a_password() -> None:
    services = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
    assert "GF_AUTH_ANONYMOUS_ORG_ROLE" not in grafana


def test_alertmanager_sends_to_a_receiver_that_prints_alerts() -> None:
    """alertmanager.yml routes to alert-log's webhook; alert-log prints one line per alert of a
    real webhook payload, served here on loopback."""
    import importlib.util
    import threading
    import urllib.request
    from contextlib import redirect_stdout
    from http.server import ThreadingHTTPServer
    from io import StringIO

    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    (receiver,) = [r for r in am["receivers"] if r["name"] == am["route"]["receiver"]]
    assert receiver["webhook_configs"][0]["url"] == "http://alert-log:8080/"
    spec = importlib.util.spec_from_file_location(
        "alert_log", DEPLOY / "alertmanager" / "alert-log.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    payload = {"version": "4", "status": "firing", "alerts": [{
        "status": "firing", "startsAt": "2026-11-23T14:00:00Z",
        "labels": {"alertname": "CdnprobeEdgeStale", "target": "repo", "address": "192.0.2.4"},
        "annotations": {"summary": "Edge 192.0.2.4 of repo serves an old Packages.gz"},
    }]}  # fmt: skip
    server = ThreadingHTTPServer(("127.0.0.1", 0), module.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    out = StringIO()
    with redirect_stdout(out):
        thread.start()
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{server.server_address[1]}/", data=json.dumps(payload).encode()
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
    assert out.getvalue() == (
        "2026-11-23T14:00:00Z firing CdnprobeEdgeStale target=repo address=192.0.2.4: "
        "Edge 192.0.2.4 of repo serves an old Packages.gz\n"
    )


# ---- issue 15, point 9: the example config is safe to run --------------------------------


def test_example_config_is_valid_safe_and_shows_every_target_type() -> None:
    path = ROOT / "config" / "example.yaml"
    proc = cdnprobe("validate-config", str(path))
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    config = yaml.safe_load(text)
    assert config["listen"].startswith("127.0.0.1:")
    urls = [t["url"] for t in config["targets"]] + [
        t["origin"] for t in config["targets"] if "origin" in t
    ]
    urls += re.findall(r"https?://[^\s\"']+", text)
    for url in urls:
        host = re.sub(r"^https?://", "", url).split("/")[0].split(":")[0]
        assert host.endswith((".example", ".invalid", ".test")) or host in (
            "127.0.0.1",
            "localhost",
        ), url
    assert {t.get("type", "http") for t in config["targets"]} == {
        "http",
        "apt",
        "goproxy",
        "checksums",
    }
    for kind in ("type: http", "type: apt", "type: goproxy", "type: checksums"):
        assert f"# {kind}" in text, kind


# ---- issue 15, point 8: the README, for users --------------------------------------------


def test_readme_reads_top_to_bottom_for_a_user() -> None:
    """Install + demo and the CI line first, the quick start before the reference, sections in
    the order a user needs them, nothing outside the repository, performance detail moved."""
    text = (ROOT / "README.md").read_text()
    first_block = text.split("```")[1]
    assert (
        "venv" in first_block and "cdnprobe demo" in first_block and "bash .ci/run" in first_block
    )
    assert "Python >= 3.11" in first_block or "Python 3.11 or newer" in text
    assert "externally-managed" in text and "pipx" in text
    headings = re.findall(r"^## (.+)$", text, re.M)
    order = ["The demo", "Probe your own repository", "`cdnprobe check URL...`", "APT repositories",
             "Go module proxies", "Checksum manifests", "`cdnprobe run --config FILE`",
             "Alerting and dashboards", "Deploy", "Reliability", "Performance", "Architecture",
             "Development"]  # fmt: skip
    found = [next(i for i, h in enumerate(headings) if h.startswith(o)) for o in order]
    assert found == sorted(found), headings
    assert "../" not in text and "/work/" not in text
    assert "docker build -t cdnprobe:0.1.0 ." in text
    for manifest in ("deployment.yaml", "statefulset-sharded.yaml"):
        assert "image: cdnprobe:0.1.0" in (DEPLOY / "kubernetes" / manifest).read_text()
    performance = text[text.index("## Performance") : text.index("## Architecture")]
    assert len(performance.strip().splitlines()) <= 12 and "bench/README.md" in performance
    assert (ROOT / "bench" / "README.md").read_text().count("|") > 100  # the tables moved there
    for linked in re.findall(r"\]\(([^)#]+)\)", text):
        assert (ROOT / linked).exists(), linked
