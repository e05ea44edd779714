"""Runs `cdnprobe run` as a real subprocess and scrapes it like Prometheus would."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.lab import Lab, free_port

ROOT = Path(__file__).resolve().parent.parent
Labels = frozenset[tuple[str, str]]


@dataclass
class Scrape:
    """Samples by name → {labels: value}; types by family name."""

    samples: dict[str, dict[Labels, float]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, **labels: str) -> float | None:
        for sample_labels, value in self.samples.get(name, {}).items():
            if all((k, v) in sample_labels for k, v in labels.items()):
                return value
        return None

    def series(self, name: str, **labels: str) -> list[dict[str, str]]:
        return [
            dict(lbls)
            for lbls in self.samples.get(name, {})
            if all((k, v) in lbls for k, v in labels.items())
        ]


def parse(text: str) -> Scrape:
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        scrape.types[family.name] = family.type
        for sample in family.samples:
            scrape.samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = (
                sample.value
            )
    return scrape


def received(scrape: Scrape) -> float:
    """Body bytes the daemon received, over every target and address."""
    return sum(scrape.samples.get("cdnprobe_received_bytes_total", {}).values())


def http(
    url: str, method: str = "GET", timeout: float = 30, context: ssl.SSLContext | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def post_task(
    daemon: RunningDaemon, target: str, body: bytes | dict[str, Any] | None = None
) -> tuple[int, Any]:
    """POST /api/v1/targets/TARGET/checks (a dict is sent as JSON): status and document."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body or b""
    request = urllib.request.Request(
        f"{daemon.base}/api/v1/targets/{target}/checks", data=data, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def task_wait(daemon: RunningDaemon, task_id: str, timeout: float = 60) -> dict[str, Any]:
    """GET /api/v1/checks/ID/wait: the task's document (whatever its state)."""
    status, text = http(f"{daemon.base}/api/v1/checks/{task_id}/wait?timeout={timeout}")
    assert status == 200, text
    doc: dict[str, Any] = json.loads(text)
    return doc


def task_done(
    daemon: RunningDaemon, target: str, body: dict[str, Any], timeout: float = 60
) -> dict[str, Any]:
    """One task from POST to its answer, which must be `done`."""
    _, created = post_task(daemon, target, body)
    doc = task_wait(daemon, created["id"], timeout)
    assert doc["state"] == "done", doc
    return doc


GET_LINE = re.compile(r'"GET (\S+) HTTP/1.1" (\d+) ')


def probe_logged(
    daemon: RunningDaemon, lab: Lab, target: str
) -> tuple[Scrape, list[tuple[str, str, int]]]:
    """One cycle of `target` now (/probe): the exposition after it, and what the edges were
    asked, as (address, path, status) from nginx's log."""
    before = len(lab.access_log())
    status, _ = http(daemon.base + f"/probe?target={target}")
    assert status == 200
    asked = []
    for line in lab.access_log()[before:]:
        found = GET_LINE.search(line)
        if found:
            asked.append((line.split()[0], found[1], int(found[2])))
    return parse(http(daemon.base + "/metrics")[1]), asked


@dataclass
class RunningDaemon:
    config_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, scheme: str = "http", context: ssl.SSLContext | None = None) -> RunningDaemon:
        self.port = self.port or free_port()
        self.log_path = self.log_path or self.config_path.with_suffix(".log")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "prober", "run", "--config", str(self.config_path),
                "--listen", f"127.0.0.1:{self.port}", *self.extra_args]  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_until(lambda: self._healthy(scheme, context), timeout_s=15, what="daemon /healthz")
        return self

    def _healthy(self, scheme: str = "http", context: ssl.SSLContext | None = None) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log()}")
        try:
            url = f"{scheme}://127.0.0.1:{self.port}/healthz"
            return http(url, timeout=2, context=context)[0] == 200
        except OSError:
            return False

    def scrape(self) -> Scrape:
        status, text = http(self.base + "/metrics")
        assert status == 200
        return parse(text)

    def wait_for(
        self, check: Callable[[Scrape], bool], timeout_s: float = 20, what: str = ""
    ) -> Scrape:
        found: list[Scrape] = []

        def probe() -> bool:
            scrape = self.scrape()
            found[:] = [scrape]
            return check(scrape)

        wait_until(probe, timeout_s, what or "metrics condition")
        return found[0]

    def cycles(self, target: str) -> float:
        return self.scrape().get("cdnprobe_cycles_total", target=target) or 0

    def next_cycles(self, target: str, count: int = 1, timeout_s: float = 20) -> Scrape:
        """Waits until `count` more cycles of `target` have finished; returns the scrape."""
        start = self.cycles(target)
        return self.wait_for(
            lambda s: (s.get("cdnprobe_cycles_total", target=target) or 0) >= start + count,
            timeout_s, f"{count} more cycles of {target}",
        )  # fmt: skip

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 10) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""


@contextmanager
def started(config: Path, target: str) -> Iterator[RunningDaemon]:
    """`cdnprobe run --config CONFIG`, once its first cycle of `target` has finished; killed
    when the block ends."""
    daemon = RunningDaemon(config).start()
    try:
        daemon.wait_for(lambda s: (s.get("cdnprobe_cycles_total", target=target) or 0) >= 1)
        yield daemon
    finally:
        daemon.kill()


def one_cycle(config: Path, target: str, timeout_s: float = 30) -> Scrape:
    """Starts `cdnprobe run` on a config, waits for one finished cycle of target, stops it."""
    daemon = RunningDaemon(config).start()
    try:
        return daemon.wait_for(
            lambda s: (s.get("cdnprobe_cycles_total", target=target) or 0) >= 1, timeout_s
        )
    finally:
        daemon.kill()


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
