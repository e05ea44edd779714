from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.aptrepo import Published, publish_two_versions, serve
from tests.faults import FaultEdge
from tests.knot import KnotLab
from tests.lab import LOOPBACK_EDGES, EdgeSpec, Lab, free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def lab(tmp_path: Path, ca: trustme.CA) -> Iterator[Lab]:
    """Four nginx TLS edges (three IPv4, one ::1) named repo.test by dnsmasq."""
    lab = Lab(tmp_path / "lab", ca, [EdgeSpec(a) for a in LOOPBACK_EDGES])
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


# the publish gate's edges: plain HTTP on one port, each with its own publish
APT_EDGES = ("127.0.0.2", "127.0.0.3", "127.0.0.4")


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The aptly repository in two publishes (v2 adds world-cdn 1.0)."""
    return publish_two_versions(tmp_path_factory.mktemp("aptly-two"))


@pytest.fixture
def apt_lab(tmp_path: Path, ca: trustme.CA, published: Published) -> Iterator[Lab]:
    """APT_EDGES serving the first publish over plain HTTP (lab.http_port)."""
    lab = Lab(tmp_path / "lab", ca, [EdgeSpec(a) for a in APT_EDGES])
    lab.http_port = free_port(["127.0.0.2"])
    lab.start()
    try:
        for address in APT_EDGES:
            serve(lab, address, published.v1)
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def knot(tmp_path: Path) -> Iterator[KnotLab]:
    """Knot DNS answering repo.test by the client subnet a query carries (tests/knot.py)."""
    server = KnotLab(tmp_path / "knot").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_edge(lab: Lab, ca: trustme.CA) -> Iterator[FaultEdgeFactory]:
    started: list[FaultEdge] = []

    def start(address: str, mode: str, cert: trustme.LeafCert | None = None) -> FaultEdge:
        edge = FaultEdge([address], lab.port, mode, ca, cert).start()
        started.append(edge)
        return edge

    yield start
    for edge in started:
        edge.stop()


class FaultEdgeFactory:  # for type hints in tests only
    def __call__(
        self, address: str, mode: str, cert: trustme.LeafCert | None = None
    ) -> FaultEdge: ...


def cdnprobe(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs the real CLI in a subprocess, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "prober", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
