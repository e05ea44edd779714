"""`cdnprobe demo`, the README's first command: it runs whatever holds port 9813, shows an edge
recovering (table, log line, status page) and serves HTTPS with certificates chosen by SNI."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from prober.demo import CDN_DEFAULT_NAME, DEMO_HOST, EDGES, INRELEASE, STALE_EDGE, MiniCdn
from tests.conftest import ROOT, cdnprobe

LISTEN = ("127.0.0.1", 9813)


@contextmanager
def port_9813_taken() -> Iterator[None]:
    """Something else listens on 127.0.0.1:9813 (us, or whoever already does)."""
    with socket.socket() as holder:
        try:
            holder.bind(LISTEN)
            holder.listen()
        except OSError:
            pass  # taken already: the condition under test holds anyway
        yield


def cycles(stdout: str) -> list[str]:
    """The per-cycle blocks of the demo's output, cycle 1 first."""
    return re.split(r"^--- cycle \d+ at [\d:]+ ---$", stdout, flags=re.M)[1:]


def test_demo_runs_on_another_port_when_9813_is_taken() -> None:
    with port_9813_taken():
        proc = cdnprobe("demo", "--cycles", "2", "--interval", "1", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    taken = re.search(
        r"127\.0\.0\.1:9813 is taken: serving on 127\.0\.0\.1:(\d+) instead", proc.stdout
    )
    assert taken, proc.stdout
    port = int(taken.group(1))
    assert port != 9813
    assert f"status page: http://127.0.0.1:{port}/" in proc.stdout
    assert len(cycles(proc.stdout)) == 2


def _lines(pipe: object, into: queue.Queue[str]) -> None:
    for line in pipe:  # type: ignore[attr-defined]  # a text-mode pipe
        into.put(line)


def _until(lines: queue.Queue[str], pattern: str, deadline: float, seen: list[str]) -> str:
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if re.search(pattern, line):
            return line
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")


def test_demo_shows_the_stale_edge_recover_in_table_log_and_status_page() -> None:
    """Cycles 1-3: 127.0.0.4 is stale; then it catches up: later tables show it ok, the daemon
    logs verdict=ok previous=stale, and the status page says when it recovered."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["demo", "--listen", f"127.0.0.1:{_free()}", "--cycles", "6", "--interval", "1"]
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "prober", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:  # fmt: skip
        reader = threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 60
            status = _until(lines, r"status page: http://\S+/", deadline, seen)
            url = re.search(r"status page: (http://\S+/)", status).group(1)  # type: ignore[union-attr]
            _until(lines, r"^--- cycle 5 at", deadline, seen)
            with urllib.request.urlopen(url, timeout=10) as response:
                page = response.read().decode()
            proc.wait(timeout=60)  # the log lines on stderr are far below a pipe's buffer
            reader.join(timeout=10)
            stderr = proc.stderr.read() if proc.stderr else ""
        finally:
            proc.kill()
    while not lines.empty():
        seen.append(lines.get())
    stdout = "".join(seen)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr + stdout
    blocks = cycles(stdout)
    assert len(blocks) == 6
    stale_rows = [
        [ln for ln in b.splitlines() if STALE_EDGE in ln and "stale" in ln] for b in blocks
    ]
    assert all(stale_rows[:3]) and not any(stale_rows[3:]), stdout
    assert f"--- {STALE_EDGE} finished its sync" in blocks[2]
    assert re.search(rf"address={re.escape(STALE_EDGE)} verdict=ok .*previous=stale", stderr)
    cell = re.search(rf"<th>{re.escape(STALE_EDGE)} <small>v4</small></th>(.*?)</tr>", page)
    assert cell and "recovered" in cell.group(1) and "<td class=ok>" in cell.group(1), page
    assert "https://repo.demo:" in stdout  # the demo probes over TLS


def test_demo_banner_names_a_working_ca_and_probes_over_https() -> None:
    proc = cdnprobe("demo", "--cycles", "1", "--interval", "1", "--listen", f"127.0.0.1:{_free()}")
    assert proc.returncode == 0, proc.stderr
    ca = re.search(r"throwaway CA: (\S+)", proc.stdout)
    assert ca and not Path(ca.group(1)).exists()  # removed when the demo ends
    assert "4 edges, 1 variant" in proc.stdout and "https://repo.demo:" in proc.stdout


def test_demo_plain_http_when_asked() -> None:
    proc = cdnprobe(
        "demo",
        "--plain-http",
        "--cycles",
        "1",
        "--interval",
        "1",
        "--listen",
        f"127.0.0.1:{_free()}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "plain HTTP (--plain-http)" in proc.stdout and "http://repo.demo:" in proc.stdout


def _free() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _handshake(cdn: MiniCdn, sni: str, verify_name: bool = True) -> tuple[str, bytes]:
    """TLS to edge 127.0.0.2 with `sni`: the certificate's CN and the InRelease status line."""
    context = ssl.create_default_context(cafile=str(cdn.ca_file))
    context.check_hostname = verify_name
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(EDGES[0], cdn.edge_port, ssl=context, server_hostname=sni), 10
    )
    try:
        cert = writer.get_extra_info("peercert")
        name = dict(pair[0] for pair in cert["subject"])["commonName"]
        writer.write(f"GET {INRELEASE} HTTP/1.1\r\nHost: {DEMO_HOST}\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return name, status


def test_edges_choose_the_certificate_by_sni() -> None:
    """repo.demo by SNI gets a certificate for repo.demo; any other name gets the CDN's own,
    which fails verification for the name asked: SNI matters, as on a real CDN edge."""
    pytest.importorskip("cryptography")

    async def scenario() -> None:
        cdn = MiniCdn(tls=True)
        await cdn.start()
        try:
            name, status = await _handshake(cdn, DEMO_HOST)
            assert (name, status) == (DEMO_HOST, b"HTTP/1.1 200 OK\r\n")
            name, _ = await _handshake(cdn, "other.test", verify_name=False)
            assert name == CDN_DEFAULT_NAME
            with pytest.raises(ssl.SSLCertVerificationError):
                await _handshake(cdn, "other.test")
        finally:
            cdn.close()

    asyncio.run(scenario())


def test_demo_without_cryptography_runs_over_plain_http_and_says_so(tmp_path: Path) -> None:
    """cdnprobe does not depend on `cryptography`: without it the demo still runs, over HTTP."""
    hidden = tmp_path / "cryptography"
    hidden.mkdir()
    (hidden / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    args = ["demo", "--cycles", "1", "--interval", "1", "--listen", f"127.0.0.1:{_free()}"]
    proc = subprocess.run(
        [sys.executable, "-m", "prober", *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "plain HTTP: HTTPS needs the Python package 'cryptography'" in proc.stdout
    assert "http://repo.demo:" in proc.stdout and "Traceback" not in proc.stderr


def test_demo_on_an_address_this_machine_lacks_is_one_line_exit_2() -> None:
    proc = cdnprobe("demo", "--cycles", "1", "--listen", "192.0.2.1:9813")  # TEST-NET-1
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "cdnprobe: cannot listen on 192.0.2.1:9813: Cannot assign requested address"
    ]
