"""What a new user meets first, through the real CLI against the nginx lab: answers that say
why, exit codes that mean what they say, and one clear line for every bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import FaultEdgeFactory, cdnprobe
from tests.lab import HOST, Lab

INRELEASE = "/dists/stable/InRelease"


def test_an_object_missing_on_every_edge_is_not_health(lab: Lab) -> None:
    """404 everywhere: the edges agree, but nothing is served. Exit 1, and the conclusion
    says the path is served nowhere; the JSON says healthy false."""
    proc = cdnprobe("check", lab.url("/nothere"), "--resolver", lab.resolver,
                    "--ca-file", lab.ca_file)  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    assert "=> all 4 edges answer 404 for nothere: it is served nowhere (check the path)" in (
        proc.stdout
    )
    doc = json.loads(
        cdnprobe(
            "check",
            lab.url("/nothere"),
            "--resolver",
            lab.resolver,
            "--ca-file",
            lab.ca_file,
            "--json",
        ).stdout
    )
    (target,) = doc["targets"]
    assert target["consistent"] is True and target["healthy"] is False
    assert target["reference"]["status"] == 404


def test_the_table_says_why_an_edge_failed_with_a_hint(lab: Lab) -> None:
    """Without --ca-file every edge fails TLS: one line under the table names the reason and
    the options that help; the truncated edge's line gives the bytes that arrived."""
    lab.write(INRELEASE, b"Suite: stable\n" * 10)
    proc = cdnprobe("check", lab.url(INRELEASE), "--resolver", lab.resolver)
    assert proc.returncode == 1
    lines = [line.strip() for line in proc.stdout.splitlines()]
    (failure,) = [line for line in lines if line.startswith("127.0.0.2, 127.0.0.3, 127.0.0.4, ::1")]
    assert "tls: " in failure and "certificate verify failed" in failure
    assert failure.endswith("(hint: give the CA with --ca-file PEM, or --insecure)")


def test_the_truncated_edges_bytes_are_under_the_table(
    lab: Lab, fault_edge: FaultEdgeFactory
) -> None:
    lab.write(INRELEASE, b"x" * 1000)
    fault_edge("127.0.0.5", "truncate")
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5"])
    proc = cdnprobe("check", lab.url(INRELEASE), "--resolver", lab.resolver,
                    "--ca-file", lab.ca_file)  # fmt: skip
    assert "  127.0.0.5: truncated: 500 of 1000 bytes" in proc.stdout
    assert "2 edges, 2 variants (1 served, 1 failed fetch)" in proc.stdout


def test_a_failing_origin_exits_1(lab: Lab) -> None:
    """The origin was asked for as the truth; without its answer the answer is not the one
    asked for, even when every edge agrees."""
    lab.write(INRELEASE, b"Suite: stable\n" * 10)
    lab.set_dns("origin.test", ["127.0.0.1"])  # nothing listens there on the lab's port
    args = ("check", lab.url(INRELEASE), "--resolver", lab.resolver, "--ca-file", lab.ca_file,
            "--origin", f"https://origin.test:{lab.port}")  # fmt: skip
    proc = cdnprobe(*args)
    assert proc.returncode == 1, proc.stdout
    assert "the origin failed (connect)" in proc.stdout
    unresolved = cdnprobe(*args[:-1], f"https://missing.test:{lab.port}")
    assert unresolved.returncode == 1
    assert "the origin failed (NXDOMAIN)" in unresolved.stdout


def test_an_unresolvable_host_says_so_once(lab: Lab) -> None:
    proc = cdnprobe("check", lab.url(INRELEASE, "missing.test"), "--resolver", lab.resolver)
    assert proc.returncode == 3
    everything = proc.stdout + proc.stderr
    assert everything.count(f"NXDOMAIN from {lab.resolver}") == 1


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["check", "--timeout", "0", "http://repo.test/"],
         "cdnprobe: argument --timeout: must be more than 0 and at most 3600 seconds, got '0' "
         "(see cdnprobe check --help)"),
        (["run", "--config", "config/example.yaml", "--listen", "127.0.0.1:99999"],
         "cdnprobe: bad --listen '127.0.0.1:99999': must be HOST:PORT with a port 1-65535"),
        (["validate-config"],
         "cdnprobe: validate-config takes one config file: FILE or --config FILE"),
        (["check", "--http", "3", "http://repo.test/"],
         "cdnprobe: argument --http: invalid choice: '3' (choose from '1.1', '2', 'auto') "
         "(see cdnprobe check --help)"),
    ],
)  # fmt: skip
def test_messages_name_what_is_wrong(argv: list[str], line: str) -> None:
    from tests.conftest import ROOT

    proc = cdnprobe(*[str(ROOT / a) if a.startswith("config/") else a for a in argv])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [line]


def test_validate_config_takes_config_as_run_does(tmp_path: Path) -> None:
    from tests.conftest import ROOT

    good = cdnprobe("validate-config", "--config", str(ROOT / "config" / "example.yaml"))
    assert good.returncode == 0, good.stderr
    assert re.fullmatch(r".*example\.yaml: ok, \d+ targets", good.stdout.strip()), good.stdout
    single = tmp_path / "one.yaml"
    single.write_text("targets:\n  - {name: a, url: 'https://x.test', paths: [/a]}\n")
    one = cdnprobe("validate-config", "--config", str(single))
    assert one.stdout.strip() == f"{single}: ok, 1 target"


def test_an_unknown_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("targets:\n  - {name: a, url: 'https://x.test', paths: [/a], intervall: 5s}\n")
    proc = cdnprobe("validate-config", str(path))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"cdnprobe: {path}: targets[0].intervall: unknown field (did you mean 'interval'?)"
    ]


def test_one_edge_is_said_in_the_singular(lab: Lab) -> None:
    lab.write(INRELEASE, b"Suite: stable\n")
    lab.set_dns(HOST, ["127.0.0.2"])
    proc = cdnprobe("check", lab.url(INRELEASE), "--resolver", lab.resolver,
                    "--ca-file", lab.ca_file)  # fmt: skip
    assert proc.returncode == 0
    assert "1 edge, 1 variant;" in proc.stdout
    assert "=> the only edge serves the same InRelease" in proc.stdout


def test_a_truncated_artifact_never_matches_even_with_the_manifest_from_the_origin(
    lab: Lab, fault_edge: FaultEdgeFactory
) -> None:
    """--checksums with --origin: an edge that cuts the download short is an error, and its
    check says match false (it said true: anything reading match accepted a cut file)."""
    import hashlib

    body = b"x" * 1000
    lab.write("/dl/tool.bin", body)
    lab.write("/dl/SHA256SUMS", f"{hashlib.sha256(body).hexdigest()}  tool.bin\n".encode())
    fault_edge("127.0.0.5", "truncate")  # 500 of 1000 bytes, for every path
    lab.set_dns(HOST, ["127.0.0.2", "127.0.0.5"])
    lab.set_dns("origin.test", ["127.0.0.2"])
    proc = cdnprobe("check", "--checksums", lab.url("/dl/SHA256SUMS"), "--resolver", lab.resolver,
                    "--ca-file", lab.ca_file, "--origin", f"https://origin.test:{lab.port}",
                    "--json")  # fmt: skip
    assert proc.returncode == 1
    artifact = next(t for t in json.loads(proc.stdout)["targets"] if t["name"] == "tool.bin")
    edges = {e["address"]: e for e in artifact["edges"]}
    assert edges["127.0.0.5"]["verdict"] == "error"
    assert edges["127.0.0.5"]["check"]["match"] is False
    assert edges["127.0.0.5"]["check"]["problem"] == "fetch_error (truncated)"
    assert edges["127.0.0.2"]["check"]["match"] is True


def test_http_option_where_the_user_meets_it(lab: Lab, tmp_path: Path) -> None:
    """--http 2 against edges that offer no h2: each edge is the error protocol, saying so;
    --http 1.1 speaks HTTP/1.1; `http: "2"` in a daemon target likewise."""
    lab.write(INRELEASE, b"Suite: stable\n")
    base = ("check", lab.url(INRELEASE), "--resolver", lab.resolver, "--ca-file", lab.ca_file)
    required = cdnprobe(*base, "--http", "2", "--json")
    assert required.returncode == 1
    edges = json.loads(required.stdout)["targets"][0]["edges"]
    assert {e["error"] for e in edges} == {"protocol"}
    assert all("h2" in (e["detail"] or "") for e in edges)
    plain = json.loads(cdnprobe(*base, "--http", "1.1", "--json").stdout)["targets"][0]
    assert {e["http_version"] for e in plain["edges"]} == {"1.1"}
    from tests.daemon import one_cycle

    config = tmp_path / "h2.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: repo\n"
        f"    url: https://repo.test:{lab.port}\n    paths: [{INRELEASE}]\n    interval: 1s\n"
        f'    resolvers: ["{lab.resolver}"]\n    ca_file: {lab.ca_file}\n    http: "2"\n'
    )
    scrape = one_cycle(config, "repo")
    assert scrape.get("cdnprobe_probe_errors_total", target="repo", reason="protocol") == 1
