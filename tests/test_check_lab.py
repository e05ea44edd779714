"""`cdnprobe check` end to end: the real CLI against real nginx edges and dnsmasq on loopback."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import ROOT, FaultEdgeFactory, cdnprobe
from tests.lab import HOST, Lab

INRELEASE = "/dists/stable/InRelease"
PACKAGES = "/dists/stable/main/binary-amd64/Packages.gz"
NEW, OLD = 1_790_000_000, 1_789_990_000  # Last-Modified of the current and the previous publish


def check(lab: Lab, *paths: str, extra: tuple[str, ...] = ()) -> tuple[int, dict[str, Any], str]:
    urls = [lab.url(p) for p in paths]
    proc = cdnprobe(
        "check", *urls, "--resolver", lab.resolver, "--ca-file", lab.ca_file, "--json", *extra
    )
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, doc, proc.stderr


def edges_by_address(target: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["address"]: e for e in target["edges"]}


def publish(lab: Lab) -> None:
    lab.write(INRELEASE, b"Suite: stable\nDate: new\n" * 20, mtime=NEW)
    lab.write(PACKAGES, b"\x1f\x8bnew packages index" * 100, mtime=NEW)


def test_consistent_edges_exit_0_with_the_contract_document(lab: Lab) -> None:
    """Every edge serving the same bytes: exit 0 and every contract field present."""
    publish(lab)
    code, doc, _ = check(lab, INRELEASE, PACKAGES)
    assert code == 0
    assert doc["checked_at"].endswith("Z")
    assert [t["url"] for t in doc["targets"]] == [lab.url(INRELEASE), lab.url(PACKAGES)]
    target = doc["targets"][0]
    assert target["host"] == HOST
    assert target["consistent"] is True
    assert target["variants"] == 1
    body = b"Suite: stable\nDate: new\n" * 20
    assert target["reference"]["size"] == len(body)
    assert set(target["reference"]) >= {"sha256", "size", "etag", "last_modified"}
    edges = edges_by_address(target)
    assert set(edges) == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"}
    contract_fields = {
        "address", "family", "status", "size", "bytes_read", "etag", "last_modified",
        "sha256", "elapsed_ms", "error", "verdict", "cache",
    }  # fmt: skip
    for edge in edges.values():
        assert contract_fields <= set(edge)
        assert edge["status"] == 200
        assert edge["size"] == edge["bytes_read"] == len(body)
        assert edge["verdict"] == "ok"
        assert edge["error"] is None
        assert edge["sha256"] == target["reference"]["sha256"]
        assert edge["elapsed_ms"] > 0


def test_ipv6_edge_is_reported_with_family_6(lab: Lab) -> None:
    """The AAAA record ::1 is an edge of its own, family 6; the A records are family 4."""
    publish(lab)
    _, doc, _ = check(lab, INRELEASE)
    families = {e["address"]: e["family"] for e in doc["targets"][0]["edges"]}
    assert families == {"127.0.0.2": 4, "127.0.0.3": 4, "127.0.0.4": 4, "::1": 6}


def test_every_edge_gets_host_sni_and_identity(lab: Lab) -> None:
    """Every edge address got Host and SNI repo.test and Accept-Encoding identity (nginx log)."""
    publish(lab)
    check(lab, INRELEASE)
    lines = [line for line in lab.access_log() if INRELEASE in line]
    served_by = {line.split()[0] for line in lines}
    assert served_by == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"}
    for line in lines:
        _address, host, sni, *_ = line.split()
        assert (host, sni) == (HOST, HOST)
        assert '"identity"' in line


def test_older_packages_on_one_edge_is_stale_exit_1(lab: Lab) -> None:
    """An edge still serving the previous Packages.gz is stale, with the Last-Modified lag."""
    publish(lab)
    lab.write(PACKAGES, b"\x1f\x8bold packages" * 90, edges=["127.0.0.3"], mtime=OLD)
    code, doc, _ = check(lab, INRELEASE, PACKAGES)
    assert code == 1
    inrelease, packages = doc["targets"]
    assert inrelease["consistent"] is True
    assert packages["consistent"] is False
    assert packages["variants"] == 2
    edges = edges_by_address(packages)
    assert edges["127.0.0.3"]["verdict"] == "stale"
    assert edges["127.0.0.3"]["lag_seconds"] == NEW - OLD
    assert {a for a, e in edges.items() if e["verdict"] == "ok"} == {
        "127.0.0.2",
        "127.0.0.4",
        "::1",
    }


def test_table_puts_the_reference_first_and_concludes_in_one_line(lab: Lab) -> None:
    """The table lists reference edges first, marks the odd edge, and says what is wrong."""
    publish(lab)
    lab.write(PACKAGES, b"\x1f\x8bold packages" * 90, edges=["127.0.0.3"], mtime=OLD)
    proc = cdnprobe(
        "check", lab.url(PACKAGES), "--resolver", lab.resolver, "--ca-file", lab.ca_file
    )
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    rows = [line for line in lines if line[2:].startswith(("127.0.0.", "::1"))]
    assert rows[-1].startswith("! 127.0.0.3")
    assert "stale" in rows[-1]
    assert all(not r.startswith("!") for r in rows[:-1])
    assert "=> 1 of 4 edges serves an older Packages.gz (127.0.0.3)" in proc.stdout


def test_same_size_different_bytes_is_divergent(lab: Lab) -> None:
    """A corrupt copy of the same size and date is divergent, not stale."""
    publish(lab)
    good = b"\x1f\x8bnew packages index" * 100
    bad = bytearray(good)
    bad[500] ^= 0xFF
    lab.write(PACKAGES, bytes(bad), edges=["127.0.0.4"], mtime=NEW)
    code, doc, _ = check(lab, PACKAGES)
    assert code == 1
    edges = edges_by_address(doc["targets"][0])
    assert edges["127.0.0.4"]["verdict"] == "divergent"
    assert edges["127.0.0.4"]["size"] == len(good)
    assert edges["127.0.0.2"]["verdict"] == "ok"


def test_identical_bytes_with_different_etags_are_ok(lab: Lab) -> None:
    """Same bytes, other mtime (so other ETag and Last-Modified): consistent, with a note."""
    publish(lab)
    lab.write(INRELEASE, b"Suite: stable\nDate: new\n" * 20, edges=["::1"], mtime=NEW - 500)
    code, doc, _ = check(lab, INRELEASE)
    target = doc["targets"][0]
    etags = {e["etag"] for e in target["edges"]}
    assert len(etags) == 2
    assert code == 0
    assert target["consistent"] is True
    assert any("different ETags" in note for note in target["notes"])


def test_404_on_one_edge_is_divergent(lab: Lab) -> None:
    """An edge missing the file answers 404: a variant of its own, divergent."""
    publish(lab)
    lab.remove(INRELEASE, ["127.0.0.2"])
    code, doc, _ = check(lab, INRELEASE)
    assert code == 1
    target = doc["targets"][0]
    assert target["variants"] == 2
    edge = edges_by_address(target)["127.0.0.2"]
    assert (edge["status"], edge["verdict"], edge["error"]) == (404, "divergent", None)


def test_edge_that_gzips_on_the_fly_is_not_divergent(tmp_path: Any, ca: Any) -> None:
    """An edge with gzip on for every type still sends identity bytes to an identity request."""
    from tests.lab import EdgeSpec

    lab = Lab(tmp_path / "gz", ca, [EdgeSpec("127.0.0.2"), EdgeSpec("127.0.0.3", gzip=True)])
    lab.start()
    try:
        lab.write(INRELEASE, b"Suite: stable\n" * 200, mtime=NEW)
        code, doc, _ = check(lab, INRELEASE)
    finally:
        lab.stop()
    assert code == 0
    assert {e["verdict"] for e in doc["targets"][0]["edges"]} == {"ok"}


def test_redirect_is_compared_not_followed(lab: Lab) -> None:
    """A 301 is a result with its Location; the Location is never requested."""
    code, doc, _ = check(lab, "/moved")
    edge = doc["targets"][0]["edges"][0]
    assert (edge["status"], edge["location"]) == (301, "https://elsewhere.test/")
    assert not any("elsewhere" in line for line in lab.access_log())
    assert code == 0  # every edge redirects the same way


def test_truncated_body_is_an_error(lab: Lab, fault_edge: FaultEdgeFactory) -> None:
    """A body that ends before its Content-Length is error truncated, with what arrived."""
    publish(lab)
    fault_edge("127.0.0.5", "truncate")
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5"])
    code, doc, _ = check(lab, INRELEASE)
    assert code == 1
    edge = edges_by_address(doc["targets"][0])["127.0.0.5"]
    assert (edge["error"], edge["verdict"]) == ("truncated", "error")
    assert (edge["size"], edge["bytes_read"]) == (1000, 500)
    assert edge["sha256"] is None


def test_chunked_body_cut_before_last_chunk_is_truncated(
    lab: Lab, fault_edge: FaultEdgeFactory
) -> None:
    """A chunked body closed before its last chunk is truncated, never a short success."""
    publish(lab)
    fault_edge("127.0.0.5", "chunked_cut")
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5"])
    _, doc, _ = check(lab, INRELEASE)
    edge = edges_by_address(doc["targets"][0])["127.0.0.5"]
    assert (edge["error"], edge["size"]) == ("truncated", None)


def test_reset_mid_body_is_truncated(lab: Lab, fault_edge: FaultEdgeFactory) -> None:
    """A connection reset after the headers is truncated."""
    publish(lab)
    fault_edge("127.0.0.5", "reset")
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5"])
    _, doc, _ = check(lab, INRELEASE)
    edge = edges_by_address(doc["targets"][0])["127.0.0.5"]
    assert edge["error"] == "truncated"
    assert 0 < edge["bytes_read"] < 100_000


def test_hanging_edges_cost_one_timeout_not_one_per_request(
    lab: Lab, fault_edge: FaultEdgeFactory
) -> None:
    """Two edges that never answer, two URLs: timeout errors, and the check ends in ~1 timeout."""
    publish(lab)
    fault_edge("127.0.0.5", "hang")
    fault_edge("127.0.0.6", "hang")
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5", "127.0.0.6"])
    started = time.monotonic()
    code, doc, _ = check(lab, INRELEASE, PACKAGES, extra=("--timeout", "2"))
    wall = time.monotonic() - started
    assert code == 1
    for target in doc["targets"]:
        edges = edges_by_address(target)
        assert edges["127.0.0.5"]["error"] == edges["127.0.0.6"]["error"] == "timeout"
        assert edges["127.0.0.2"]["verdict"] == "ok"
    # Sequential fetching would need 4 x 2 s; concurrent needs one timeout plus start-up.
    assert wall < 6


def test_connection_refused_is_connect_error(lab: Lab) -> None:
    """An address in DNS with nothing listening is error connect."""
    publish(lab)
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.9"])
    code, doc, _ = check(lab, INRELEASE)
    assert code == 1
    edge = edges_by_address(doc["targets"][0])["127.0.0.9"]
    assert (edge["error"], edge["status"], edge["verdict"]) == ("connect", None, "error")


def test_lab_default_server_rejects_a_client_without_sni(lab: Lab) -> None:
    """Without SNI an edge presents another certificate: so the passing checks prove SNI is sent."""
    context = ssl.create_default_context(cafile=lab.ca_file)
    context.check_hostname = False
    with (
        socket.create_connection(("127.0.0.2", lab.port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,  # no server_hostname: no SNI
    ):
        names = [value for _, value in tls.getpeercert()["subjectAltName"]]
    assert names == ["default.invalid"]


def test_untrusted_certificate_is_tls_error(lab: Lab) -> None:
    """Verification is on by default: without the lab's CA every edge is error tls."""
    publish(lab)
    proc = cdnprobe("check", lab.url(INRELEASE), "--resolver", lab.resolver, "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert {e["error"] for e in doc["targets"][0]["edges"]} == {"tls"}


def test_insecure_skips_verification_but_still_sends_sni(lab: Lab) -> None:
    """--insecure gets the repo.test server's 200 (the no-SNI default server answers 421)."""
    publish(lab)
    proc = cdnprobe("check", lab.url(INRELEASE), "--resolver", lab.resolver, "--json", "--insecure")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert {e["status"] for e in doc["targets"][0]["edges"]} == {200}


def test_body_over_the_maximum_is_too_large(lab: Lab) -> None:
    """--max-body-size turns a bigger body into error too_large."""
    publish(lab)
    code, doc, _ = check(lab, PACKAGES, extra=("--max-body-size", "1KiB"))
    assert code == 1
    assert {e["error"] for e in doc["targets"][0]["edges"]} == {"too_large"}


def test_origin_is_the_reference_even_against_the_majority(lab: Lab) -> None:
    """With --origin, edges that all agree on an old copy are all stale against the origin."""
    lab.write(INRELEASE, b"old release\n", mtime=OLD)
    lab.write(INRELEASE, b"new release\n", edges=["127.0.0.2"], mtime=NEW)
    lab.set_dns("origin.test", ["127.0.0.2"])
    origin = f"https://origin.test:{lab.port}"
    code, doc, _ = check(lab, INRELEASE, extra=("--origin", origin))
    target = doc["targets"][0]
    assert code == 1
    assert target["reference"]["source"] == "origin"
    verdicts = {e["address"]: e["verdict"] for e in target["edges"]}
    assert verdicts == {
        "127.0.0.2": "ok",
        "127.0.0.3": "stale",
        "127.0.0.4": "stale",
        "::1": "stale",
    }


def test_cname_chain_is_followed_to_every_address(lab: Lab) -> None:
    """alias.test → cdn.test → repo.test: all four addresses are probed."""
    publish(lab)
    proc = cdnprobe(
        "check", lab.url(INRELEASE, "alias.test"), "--resolver", lab.resolver,
        "--ca-file", lab.ca_file, "--json",
    )  # fmt: skip
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert len(doc["targets"][0]["edges"]) == 4


def test_nxdomain_exits_3_naming_name_resolver_and_rcode(lab: Lab) -> None:
    """A name that does not exist: exit 3, one line naming it, the resolver and NXDOMAIN."""
    proc = cdnprobe("check", lab.url(INRELEASE, "missing.test"), "--resolver", lab.resolver)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"cdnprobe: missing.test: NXDOMAIN from {lab.resolver}"
    ]
    assert "Traceback" not in proc.stdout + proc.stderr


def test_name_without_addresses_exits_3(lab: Lab) -> None:
    """A name that exists with no A or AAAA record (only under the CNAME target) exits 3."""
    lab.set_dns(HOST, [])
    proc = cdnprobe("check", lab.url(INRELEASE), "--resolver", lab.resolver, "--json")
    assert proc.returncode == 3
    assert "repo.test" in proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["targets"][0]["dns"]["error"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["check", "not-a-url"], "scheme must be http or https"),
        (["check", "https://"], "no host name"),
        (["check", "https://repo.test:99999/x"], "bad URL"),
        (["check", "--frobnicate", "https://repo.test/"], "unrecognized arguments: --frobnicate"),
        (["check", "https://repo.test/", "--timeout", "soon"], "--timeout"),
        (["check", "https://repo.test/", "--resolver", "dns.example"], "bad resolver"),
        (["check", "https://repo.test/", "--ca-file", "/nonexistent.pem"], "no such file"),
        (["check"], "give URLs to check, or one of --apt, --goproxy, --checksums"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv: list[str], needle: str) -> None:
    """Bad input: exit 2, exactly one line on stderr naming the problem, no traceback."""
    proc = cdnprobe(*argv)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert proc.stdout == ""


def test_help_documents_every_option() -> None:
    """check --help names every option of the contract."""
    proc = cdnprobe("check", "--help")
    assert proc.returncode == 0
    for option in ("--resolver", "--ca-file", "--timeout", "--json", "--insecure", "--origin"):
        assert option in proc.stdout


def test_the_command_flushes_its_output_and_runs_exit_handlers(tmp_path: Any) -> None:
    """The `cdnprobe` entry point skips the heap's teardown (os._exit), so it must flush the
    output and run the exit handlers (logging's among them) itself: a document written
    to a pipe arrives, an atexit handler runs, and the exit code is main's."""
    marker = tmp_path / "atexit-ran"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').write('yes'))\n"
        "from prober.cli import entry\n"
        "sys.argv = ['cdnprobe', 'config-schema']\n"
        "entry()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONUNBUFFERED", None)  # buffered, as stdout to a pipe normally is
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)  # smaller than the pipe's buffer: only a flush sends it
    assert "properties" in schema
    assert marker.read_text() == "yes"
