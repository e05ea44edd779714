"""Signals and reloads while a cycle is running: the daemon neither dies nor tracebacks."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.conftest import FaultEdgeFactory
from tests.daemon import RunningDaemon, wait_until
from tests.lab import HOST, Lab

PATH = "/dists/stable/InRelease"


def two_targets(lab: Lab, with_slow: bool = True) -> str:
    slow = (
        f"  - name: slow\n    url: https://{HOST}:{lab.port}\n    paths: [{PATH}]\n"
        f'    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n    interval: 1s\n    timeout: 8s\n'
    )
    fine = (
        f"  - name: fine\n    url: https://127.0.0.2:{lab.port}\n    paths: [{PATH}]\n"
        f"    insecure: true\n    interval: 1s\n"
    )
    return "dns_min_interval: 0s\ntargets:\n" + (slow if with_slow else "") + fine


def start(lab: Lab, fault_edge: FaultEdgeFactory, tmp_path: Path) -> tuple[RunningDaemon, object]:
    """A daemon whose target `slow` has one drip edge (a cycle lasting ~8 s) and `fine` none."""
    lab.write(PATH, b"x" * 100, mtime=1_790_000_000)
    drip = fault_edge("127.0.0.5", "drip")
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5"])
    config = tmp_path / "c.yaml"
    config.write_text(two_targets(lab))
    daemon = RunningDaemon(config).start()
    wait_until(lambda: drip.requests >= 1, 15, "the slow cycle to reach the drip edge")
    return daemon, drip


def test_sighup_storm_during_a_cycle(
    lab: Lab, fault_edge: FaultEdgeFactory, tmp_path: Path
) -> None:
    daemon, _ = start(lab, fault_edge, tmp_path)
    try:
        configs = [
            two_targets(lab),
            two_targets(lab).replace("true\n    interval: 1s", "true\n    interval: 2s"),
        ]
        for i in range(30):  # `fine` changes on every other reload, `slow` never does
            daemon.config_path.write_text(configs[i % 2])
            daemon.signal(signal.SIGHUP)
            time.sleep(0.02)
        daemon.config_path.write_text(configs[0])
        daemon.signal(signal.SIGHUP)
        s = daemon.next_cycles("fine", 3)
        assert s.get("cdnprobe_config_last_reload_successful") == 1
        assert s.get("cdnprobe_cycles_total", target="slow") is not None  # still there
        s = daemon.wait_for(lambda s: (s.get("cdnprobe_cycles_total", target="slow") or 0) >= 1, 30)
        assert (
            s.get(
                "cdnprobe_probe_errors_total", target="slow", address="127.0.0.5", reason="timeout"
            )
            == 1
        )
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert "Traceback" not in daemon.log()
        assert daemon.log().count("config reloaded") >= 1
    finally:
        daemon.kill()


def test_sigterm_during_a_cycle_drains_and_exits_0(
    lab: Lab, fault_edge: FaultEdgeFactory, tmp_path: Path
) -> None:
    daemon, _ = start(lab, fault_edge, tmp_path)
    started = time.monotonic()
    assert daemon.stop(timeout_s=15) == 0
    assert time.monotonic() - started < 8  # the 3 s drain, not the 8 s cycle timeout
    log = daemon.log()
    assert "Traceback" not in log
    assert "stopping: draining running cycles" in log


def test_target_removed_while_its_cycle_runs(
    lab: Lab, fault_edge: FaultEdgeFactory, tmp_path: Path
) -> None:
    """The removed target's cycle is cancelled and its series vanish; the other goes on."""
    daemon, _ = start(lab, fault_edge, tmp_path)
    try:
        daemon.config_path.write_text(two_targets(lab, with_slow=False))
        daemon.signal(signal.SIGHUP)
        s = daemon.wait_for(
            lambda s: s.get("cdnprobe_target_interval_seconds", target="slow") is None, 10
        )
        assert not any(
            ("target", "slow") in labels for samples in s.samples.values() for labels in samples
        )
        daemon.next_cycles("fine", 2)
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert "Traceback" not in daemon.log()
    finally:
        daemon.kill()
