"""`cdnprobe run` end to end: a real subprocess probing the nginx + dnsmasq lab, scraped over HTTP."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import FaultEdgeFactory
from tests.daemon import RunningDaemon, Scrape, http
from tests.lab import HOST, Lab

INRELEASE = "/dists/stable/InRelease"
PACKAGES = "/dists/stable/main/binary-amd64/Packages.gz"
NEW, OLD = 1_790_000_000, 1_789_996_400
EDGES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "::1")

StartDaemon = Callable[..., RunningDaemon]


def config_text(lab: Lab, paths: tuple[str, ...] = (INRELEASE, PACKAGES), **extra: str) -> str:
    fields = {"interval": "1s", "timeout": "5s", **extra}
    lines = [
        "dns_min_interval: 0s",
        "targets:",
        "  - name: repo",
        f"    url: https://{HOST}:{lab.port}",
        f"    paths: [{', '.join(paths)}]",
        f'    resolvers: ["{lab.resolver}"]',
        f"    ca_file: {lab.ca_file}",
        *(f"    {k}: {v}" for k, v in fields.items()),
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def start_daemon(lab: Lab, tmp_path: Path) -> Iterator[StartDaemon]:
    started: list[RunningDaemon] = []

    def start(text: str | None = None) -> RunningDaemon:
        path = tmp_path / f"cdnprobe{len(started)}.yaml"
        path.write_text(text or config_text(lab))
        daemon = RunningDaemon(path).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


def publish(lab: Lab, mtime: int = NEW) -> None:
    lab.write(INRELEASE, b"Suite: stable\n" * 40, mtime=mtime)
    lab.write(PACKAGES, b"\x1f\x8bpackages v2" * 300, mtime=mtime)


def has_cycle(s: Scrape) -> bool:
    return (s.get("cdnprobe_cycles_total", target="repo") or 0) >= 1


def test_consistent_lab_exports_every_contract_metric(lab: Lab, start_daemon: StartDaemon) -> None:
    """All edges agree: every contract metric is present with the right labels and values."""
    publish(lab)
    daemon = start_daemon()
    s = daemon.wait_for(has_cycle)
    for address, family in zip(EDGES, ("4", "4", "4", "6"), strict=True):
        assert s.get("cdnprobe_edge_up", target="repo", address=address, family=family) == 1
        for path in (INRELEASE, PACKAGES):
            labels = {"target": "repo", "path": path, "address": address}
            assert s.get("cdnprobe_edge_object_match", **labels) == 1
            assert s.get("cdnprobe_edge_object_stale", **labels) == 0
            assert s.get("cdnprobe_edge_object_lag_seconds", **labels) == 0
            assert s.get("cdnprobe_edge_http_status", **labels) == 200
            info = s.series("cdnprobe_edge_object_info", **labels)
            assert len(info) == 1 and re.fullmatch(r"[0-9a-f]{12}", info[0]["sha256"])
    size = s.get("cdnprobe_edge_object_size_bytes", path=PACKAGES, address="::1")
    assert size == len(b"\x1f\x8bpackages v2" * 300)
    for path in (INRELEASE, PACKAGES):
        assert s.get("cdnprobe_object_variants", target="repo", path=path) == 1
        assert s.get("cdnprobe_object_edges_divergent", target="repo", path=path) == 0
    assert s.get("cdnprobe_dns_addresses", target="repo", family="4") == 3
    assert s.get("cdnprobe_dns_addresses", target="repo", family="6") == 1
    assert s.get("cdnprobe_cycle_last_timestamp_seconds", target="repo") == pytest.approx(
        time.time(), abs=30
    )
    assert (s.get("cdnprobe_request_duration_seconds_count", target="repo") or 0) >= 8
    assert s.types["cdnprobe_request_duration_seconds"] == "histogram"
    assert s.types["cdnprobe_probe_errors"] == "counter"
    assert s.get("cdnprobe_config_last_reload_successful") == 1
    assert s.series("cdnprobe_build_info")
    assert s.get("process_resident_memory_bytes") is not None


def test_every_help_text_says_it_is_from_the_last_cycle(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    publish(lab)
    daemon = start_daemon()
    daemon.wait_for(has_cycle)
    _, text = http(daemon.base + "/metrics")
    helps = [line for line in text.splitlines() if line.startswith("# HELP cdnprobe_edge")]
    assert helps and all("last probe cycle" in line for line in helps)


def test_stale_edge_is_exported_with_lag_and_variants(lab: Lab, start_daemon: StartDaemon) -> None:
    """One edge on the previous Packages.gz: match 0, stale 1, lag, two variants, one divergent."""
    publish(lab)
    lab.write(PACKAGES, b"\x1f\x8bpackages v1" * 290, edges=["127.0.0.3"], mtime=OLD)
    daemon = start_daemon()
    s = daemon.wait_for(has_cycle)
    stale = {"target": "repo", "path": PACKAGES, "address": "127.0.0.3"}
    assert s.get("cdnprobe_edge_object_match", **stale) == 0
    assert s.get("cdnprobe_edge_object_stale", **stale) == 1
    assert s.get("cdnprobe_edge_object_lag_seconds", **stale) == NEW - OLD
    assert s.get("cdnprobe_object_variants", target="repo", path=PACKAGES) == 2
    assert s.get("cdnprobe_object_edges_divergent", target="repo", path=PACKAGES) == 1
    assert s.get("cdnprobe_edge_up", address="127.0.0.3") == 1  # stale is not down
    hashes = {x["sha256"] for x in s.series("cdnprobe_edge_object_info", path=PACKAGES)}
    assert len(hashes) == 2


def test_fixing_the_edge_changes_the_verdict_and_logs_once(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """Publishing the new file to the stale edge turns it ok on the next cycle; one log line each."""
    publish(lab)
    lab.write(PACKAGES, b"\x1f\x8bpackages v1" * 290, edges=["127.0.0.3"], mtime=OLD)
    daemon = start_daemon()
    daemon.wait_for(
        lambda s: s.get("cdnprobe_edge_object_stale", path=PACKAGES, address="127.0.0.3") == 1
    )
    lab.write(PACKAGES, b"\x1f\x8bpackages v2" * 300, edges=["127.0.0.3"], mtime=NEW)
    s = daemon.wait_for(
        lambda s: s.get("cdnprobe_edge_object_match", path=PACKAGES, address="127.0.0.3") == 1
    )
    assert s.get("cdnprobe_object_variants", path=PACKAGES) == 1
    assert s.get(
        "cdnprobe_edge_object_last_recovered_timestamp_seconds", path=PACKAGES, address="127.0.0.3"
    )
    daemon.next_cycles("repo", 2)
    lines = [line for line in daemon.log().splitlines() if "address=127.0.0.3" in line]
    assert len(lines) == 2, lines
    assert "verdict=stale" in lines[0]
    assert "verdict=ok" in lines[1] and "previous=stale" in lines[1]


def test_address_leaving_dns_loses_its_series(lab: Lab, start_daemon: StartDaemon) -> None:
    """An edge dropped from DNS has every series removed, not left at its last value."""
    publish(lab)
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.3", "127.0.0.9"])  # .9 refuses: error counters
    daemon = start_daemon()
    s = daemon.wait_for(
        lambda s: (s.get("cdnprobe_probe_errors_total", address="127.0.0.9") or 0) >= 2
    )
    assert s.get("cdnprobe_edge_up", address="127.0.0.9") == 0
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.3"])
    s = daemon.wait_for(lambda s: s.get("cdnprobe_dns_addresses", family="4") == 2)
    s = daemon.next_cycles("repo")
    for name, samples in s.samples.items():
        for labels in samples:
            assert ("address", "127.0.0.9") not in labels, name
    assert s.get("cdnprobe_edge_up", address="127.0.0.2") == 1


def test_new_address_in_dns_is_probed(lab: Lab, start_daemon: StartDaemon) -> None:
    publish(lab)
    lab.set_dns(HOST, ["127.0.0.2"])
    daemon = start_daemon()
    daemon.wait_for(has_cycle)
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.4"])
    daemon.wait_for(
        lambda s: s.get("cdnprobe_edge_object_match", path=INRELEASE, address="127.0.0.4") == 1
    )


def test_body_that_used_to_be_the_reference_is_stale_without_dates(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """Same Last-Modified everywhere: an edge left on the previous reference is stale, 1 version behind."""
    publish(lab)
    daemon = start_daemon()
    daemon.wait_for(has_cycle)
    lab.write(
        PACKAGES, b"\x1f\x8bpackages v3" * 300, edges=["127.0.0.2", "127.0.0.4", "::1"], mtime=NEW
    )
    left = {"path": PACKAGES, "address": "127.0.0.3"}
    s = daemon.wait_for(lambda s: s.get("cdnprobe_edge_object_stale", **left) == 1)
    assert s.get("cdnprobe_edge_object_versions_behind", **left) == 1
    assert s.get("cdnprobe_edge_object_versions_behind", path=PACKAGES, address="127.0.0.2") == 0
    s = daemon.next_cycles("repo", 2)
    assert (s.get("cdnprobe_edge_object_lag_seconds", **left) or 0) > 0


def test_foreign_body_never_seen_as_reference_is_divergent(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    publish(lab)
    lab.write(PACKAGES, b"\x1f\x8bcorrupt!!!!" * 300, edges=["127.0.0.4"], mtime=NEW)
    daemon = start_daemon()
    s = daemon.next_cycles("repo", 2)
    address = {"path": PACKAGES, "address": "127.0.0.4"}
    assert s.get("cdnprobe_edge_object_state", **address) == 2
    assert s.get("cdnprobe_edge_object_stale", **address) == 0


def test_overlapping_cycle_is_skipped_and_counted(
    lab: Lab, start_daemon: StartDaemon, fault_edge: FaultEdgeFactory
) -> None:
    """A hanging edge keeps a 3 s cycle running past the 1 s interval: ticks are skipped, counted."""
    publish(lab)
    fault_edge("127.0.0.5", "hang")
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5"])
    daemon = start_daemon(config_text(lab, timeout="3s"))
    s = daemon.wait_for(
        lambda s: (
            (s.get("cdnprobe_cycles_skipped_total", target="repo") or 0) >= 2
            and (s.get("cdnprobe_probe_errors_total", address="127.0.0.5", reason="timeout") or 0)
            >= 1
        ),
        30,
    )
    assert (s.get("cdnprobe_cycles_total", target="repo") or 0) >= 1
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_sighup_with_good_config_applies_it(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    publish(lab)
    daemon = start_daemon(config_text(lab, paths=(INRELEASE,)))
    daemon.wait_for(has_cycle)
    daemon.config_path.write_text(config_text(lab, paths=(INRELEASE, PACKAGES)))
    daemon.signal(signal.SIGHUP)
    s = daemon.wait_for(lambda s: s.get("cdnprobe_object_variants", path=PACKAGES) == 1)
    assert s.get("cdnprobe_config_last_reload_successful") == 1


def test_sighup_with_bad_config_keeps_the_old_one(lab: Lab, start_daemon: StartDaemon) -> None:
    """A broken file on reload: metric 0, one log line, the old targets keep being probed."""
    publish(lab)
    daemon = start_daemon()
    daemon.wait_for(has_cycle)
    daemon.config_path.write_text("targets:\n  - name: repo\n    interval: 0s\n")
    daemon.signal(signal.SIGHUP)
    daemon.wait_for(lambda s: s.get("cdnprobe_config_last_reload_successful") == 0)
    daemon.next_cycles("repo", 2)
    failures = [line for line in daemon.log().splitlines() if "reload failed" in line]
    assert len(failures) == 1
    assert "targets[0].url" in failures[0] or "targets[0].interval" in failures[0]
    assert "Traceback" not in daemon.log()


def test_http_reload_endpoint(lab: Lab, start_daemon: StartDaemon) -> None:
    publish(lab)
    daemon = start_daemon()
    daemon.wait_for(has_cycle)
    assert http(daemon.base + "/-/reload", method="POST")[0] == 200
    daemon.config_path.write_text("not: [valid")
    status, body = http(daemon.base + "/-/reload", method="POST")
    assert status == 500 and "old config kept" in body
    assert daemon.scrape().get("cdnprobe_config_last_reload_successful") == 0


def test_sigterm_exits_0_without_traceback(lab: Lab, start_daemon: StartDaemon) -> None:
    publish(lab)
    daemon = start_daemon()
    daemon.wait_for(has_cycle)
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 8
    assert "Traceback" not in daemon.log()


def test_probe_endpoint_runs_a_configured_target_only(lab: Lab, start_daemon: StartDaemon) -> None:
    """/probe?target=NAME returns that target's metrics; anything else is a 404 and fetches nothing."""
    publish(lab)
    daemon = start_daemon(config_text(lab, interval="1h"))
    status, body = http(daemon.base + "/probe?target=repo")
    assert status == 200
    assert (
        'cdnprobe_edge_object_match{address="127.0.0.2",path="/dists/stable/InRelease",target="repo"} 1.0'
        in body
    )
    assert "process_" not in body
    before = len(lab.access_log())
    for bad in ("nope", "https://repo.test/", "127.0.0.2", ""):
        assert http(daemon.base + f"/probe?target={bad}")[0] == 404
    assert len(lab.access_log()) == before


def test_status_page_escapes_edge_values(
    lab: Lab, start_daemon: StartDaemon, fault_edge: FaultEdgeFactory
) -> None:
    """An ETag like "<script>" is shown as text on the status page."""
    publish(lab)
    fault_edge("127.0.0.5", "markup")
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5"])
    daemon = start_daemon()
    daemon.wait_for(has_cycle)
    status, page = http(daemon.base + "/")
    assert status == 200
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "127.0.0.5" in page and "divergent" in page


CONFIGS = Path(__file__).parent / "configs"
BAD_CONFIGS = {
    "empty-targets.yaml": "targets: must not be empty",
    "short-interval.yaml": "targets[0].interval: must be at least 1s",
    "bad-scheme.yaml": "targets[0].url: scheme must be http or https",
    "relative-path.yaml": "targets[0].paths[0]: must start with /",
    "duplicate-name.yaml": "targets[1].name: duplicate target name 'a'",
    "unknown-field.yaml": "targets[0].colour: unknown field",
    "bad-listen.yaml": "listen: Input should be a valid string",
    "broken-yaml.yaml": "line 2: invalid YAML: expected the node content, but found '<stream end>'",
    "bad-duration.yaml": "targets[0].timeout: expected a duration like 30s, 5m or 1h30m, got 'soon'",
    "missing-url.yaml": "targets[0].url: required field is missing",
    "bad-name.yaml": "targets[0].name: must be 1-64 characters of letters, digits, _ . : -",
    "missing-ca-file.yaml": "targets[0].ca_file: no such file: /nonexistent/ca.pem",
    "apt-without-suites.yaml": "targets[0].suites: required for type apt, e.g. [bookworm]",
    "apt-with-paths.yaml": "targets[0].paths: not used by type apt: the indexes come from each Release",
    "http-without-paths.yaml": "targets[0].paths: required for type http: the paths to compare",
    "apt-bad-expect.yaml": "targets[0].expect[0]: expected name=version, got 'hello'",
    "goproxy-without-modules.yaml": "targets[0].modules: required for type goproxy, e.g. [golang.org/x/mod@v0.20.0]",
    "goproxy-bad-module.yaml": "targets[0].modules[0]: must be a module path like example.org/mod, optionally @version",
    "checksums-without-manifest.yaml": "targets[0].manifest: required for type checksums, e.g. /dl/SHA256SUMS",
}


@pytest.mark.parametrize(("name", "message"), sorted(BAD_CONFIGS.items()))
def test_bad_config_exits_2_before_binding(name: str, message: str) -> None:
    """Each file in tests/configs: exit 2, exactly 'FILE: field: problem', no port bound."""
    from tests.conftest import cdnprobe
    from tests.lab import free_port

    path = CONFIGS / name
    port = free_port()
    proc = cdnprobe("run", "--config", str(path), "--listen", f"127.0.0.1:{port}", timeout=20)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"cdnprobe: {path}: {message}"]
    validate = cdnprobe("validate-config", str(path))
    assert validate.returncode == 2
    assert validate.stderr == proc.stderr


def test_every_bad_config_file_has_its_message() -> None:
    assert {p.name for p in CONFIGS.glob("*.yaml")} == set(BAD_CONFIGS)


def test_validate_config_accepts_the_example() -> None:
    from tests.conftest import ROOT, cdnprobe

    proc = cdnprobe("validate-config", str(ROOT / "config" / "example.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_config_schema_is_json_schema() -> None:
    import json

    from tests.conftest import cdnprobe

    proc = cdnprobe("config-schema")
    schema = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert "targets" in schema["properties"]
    assert schema["$defs"]["TargetConfig"]["additionalProperties"] is False


def test_demo_catches_the_stale_edge_and_stops_on_sigint(tmp_path: Path) -> None:
    """`cdnprobe demo` prints a table with a stale edge within seconds; SIGINT exits 0."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    from tests.lab import free_port

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [
        sys.executable,
        "-m",
        "prober",
        "demo",
        "--interval",
        "1",
        "--listen",
        f"127.0.0.1:{free_port()}",
    ]
    out_path = tmp_path / "demo.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        from tests.daemon import wait_until

        wait_until(lambda: "stale (60m behind)" in out_path.read_text(), 20, "a stale verdict")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = out_path.read_text()
    assert "1 of 4 edges serves an older Packages.gz (127.0.0.4)" in output
    assert "127.0.0.5 truncated" in output
    assert "Traceback" not in output
