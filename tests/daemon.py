"""Runs `cdnprobe run` as a real subprocess and scrapes it like Prometheus would."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.lab import free_port

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


def http(
    url: str, method: str = "GET", timeout: float = 30, context: ssl.SSLContext | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


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
