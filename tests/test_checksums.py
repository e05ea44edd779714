"""Checksum manifests: cdnprobe against `sha256sum -c` on what each edge serves, for a
SHA256SUMS file and a JSON download index; the manifest from each edge or from an origin."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import cdnprobe
from tests.lab import HOST, EdgeSpec, Lab, free_port

GOOD, CORRUPT, NEW_MANIFEST_OLD_FILE, MISSING = "127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"
EDGES = (GOOD, CORRUPT, NEW_MANIFEST_OLD_FILE, MISSING)
V1, V2 = b"toolchain v1.0 " * 5000, b"toolchain v2 " * 5000  # other sizes
DOC = b"release notes\n"


def sums(entries: dict[str, bytes]) -> bytes:
    return "".join(
        f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(entries.items())
    ).encode()


@pytest.fixture
def sums_lab(tmp_path: Path, ca: trustme.CA) -> Iterator[Lab]:
    lab = Lab(tmp_path / "lab", ca, [EdgeSpec(a) for a in EDGES])
    lab.http_port = free_port(["127.0.0.2"])
    lab.start()
    try:
        lab.write("/dl/tool.tar.gz", V2)
        lab.write("/dl/NOTES", DOC)
        lab.write("/dl/SHA256SUMS", sums({"tool.tar.gz": V2, "NOTES": DOC}))
        lab.write("/dl/tool.tar.gz", V2[:-1] + b"!", edges=[CORRUPT])
        lab.write("/dl/tool.tar.gz", V1, edges=[NEW_MANIFEST_OLD_FILE])
        lab.remove("/dl/NOTES", [MISSING])
        yield lab
    finally:
        lab.stop()


def sha256sum_c(lab: Lab, address: str, work: Path) -> bool:
    """Fetches the manifest and its files from one edge, then `sha256sum -c`, as a user would."""
    work.mkdir(parents=True)
    host = f"[{address}]" if ":" in address else address
    for name in ("SHA256SUMS", "tool.tar.gz", "NOTES"):
        subprocess.run(["curl", "-s", "-o", str(work / name), f"http://{host}:{lab.http_port}/dl/{name}", "--fail"],
                       check=False, timeout=30)  # fmt: skip
    proc = subprocess.run(
        ["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=work, capture_output=True, check=False
    )
    return proc.returncode == 0


def check_sums(lab: Lab, *extra: str) -> tuple[int, dict[str, Any]]:
    proc = cdnprobe("check", "--checksums", f"http://{HOST}:{lab.http_port}/dl/SHA256SUMS",
                    "--resolver", lab.resolver, "--json", *extra)  # fmt: skip
    return proc.returncode, json.loads(proc.stdout)


def per_edge(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """address → {artifact: check} over the artifact entries."""
    out: dict[str, dict[str, Any]] = {}
    for target in doc["targets"]:
        if target.get("name") in (None, "manifest"):
            continue
        for edge in target["edges"]:
            out.setdefault(edge["address"], {})[target["name"]] = edge["check"]
    return out


def test_agrees_with_sha256sum_c_on_every_edge(sums_lab: Lab, tmp_path: Path) -> None:
    code, doc = check_sums(sums_lab)
    checks = per_edge(doc)
    for address in EDGES:
        client_ok = sha256sum_c(sums_lab, address, tmp_path / address.replace(":", "_"))
        assert all(c["match"] for c in checks[address].values()) == client_ok, (
            address,
            checks[address],
        )
    assert checks[CORRUPT]["tool.tar.gz"]["problem"] == "checksum mismatch"
    assert checks[NEW_MANIFEST_OLD_FILE]["tool.tar.gz"]["problem"] == "checksum mismatch"
    assert checks[MISSING]["NOTES"]["problem"] == "missing (HTTP 404)"
    assert checks[GOOD]["tool.tar.gz"]["source"] == "manifest on the same edge"
    assert code == 1


def test_only_the_named_artifacts(sums_lab: Lab) -> None:
    _, doc = check_sums(sums_lab, "--artifact", "NOTES")
    assert [t.get("name") for t in doc["targets"]] == ["manifest", "NOTES"]


def test_manifest_from_the_origin(sums_lab: Lab) -> None:
    """Edges that all agree on yesterday's files fail against the origin's new manifest."""
    for address in EDGES:
        sums_lab.write("/dl/tool.tar.gz", V1, edges=[address])
        sums_lab.write("/dl/NOTES", DOC, edges=[address])
        sums_lab.write("/dl/SHA256SUMS", sums({"tool.tar.gz": V1, "NOTES": DOC}), edges=[address])
    code, _ = check_sums(sums_lab)
    assert code == 0
    sums_lab.write("/origin/dl/SHA256SUMS", sums({"tool.tar.gz": V2, "NOTES": DOC}), edges=[GOOD])
    sums_lab.set_dns("origin.test", [GOOD])
    code, doc = check_sums(sums_lab, "--origin", f"http://origin.test:{sums_lab.http_port}/origin")
    checks = per_edge(doc)
    assert code == 1
    assert {a: c["tool.tar.gz"]["match"] for a, c in checks.items()} == dict.fromkeys(EDGES, False)
    assert checks[GOOD]["tool.tar.gz"]["source"] == "manifest on the origin"


def test_json_download_index(sums_lab: Lab) -> None:
    index = [{"version": "go1.99", "files": [
        {"filename": "tool.tar.gz", "sha256": hashlib.sha256(V2).hexdigest(), "size": len(V2)},
    ]}]  # fmt: skip
    sums_lab.write("/dl/index.json", json.dumps(index).encode())
    proc = cdnprobe("check", "--checksums", f"http://{HOST}:{sums_lab.http_port}/dl/index.json",
                    "--resolver", sums_lab.resolver, "--json")  # fmt: skip
    checks = per_edge(json.loads(proc.stdout))
    assert {a: c["tool.tar.gz"]["problem"] for a, c in checks.items()} == {
        GOOD: None, CORRUPT: "checksum mismatch", NEW_MANIFEST_OLD_FILE: f"size mismatch ({len(V1)} != {len(V2)})",
        MISSING: None,
    }  # fmt: skip


def test_daemon_exports_artifact_checksum_match(sums_lab: Lab, tmp_path: Path) -> None:
    from tests.daemon import one_cycle

    config = tmp_path / "sums.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: dl\n    type: checksums\n"
        f"    url: http://{HOST}:{sums_lab.http_port}\n    manifest: /dl/SHA256SUMS\n"
        f'    resolvers: ["{sums_lab.resolver}"]\n    interval: 1s\n'
    )
    s = one_cycle(config, "dl")
    tool = {
        a: s.get("cdnprobe_artifact_checksum_match", artifact="tool.tar.gz", address=a)
        for a in EDGES
    }
    assert tool == {GOOD: 1, CORRUPT: 0, NEW_MANIFEST_OLD_FILE: 0, MISSING: 1}
    assert s.get("cdnprobe_artifact_checksum_match", artifact="NOTES", address=MISSING) == 0


def test_rehash_every_hashes_unchanged_artifacts_only_every_n_cycles(
    sums_lab: Lab, tmp_path: Path
) -> None:
    """rehash_every 3: a HEAD per cycle, a full GET every third, and at once on a change."""
    from tests.daemon import RunningDaemon

    config = tmp_path / "sums.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: dl\n    type: checksums\n"
        f"    url: http://{HOST}:{sums_lab.http_port}\n    manifest: /dl/SHA256SUMS\n"
        f'    resolvers: ["{sums_lab.resolver}"]\n    interval: 1s\n    rehash_every: 3\n'
        "    artifacts: [tool.tar.gz]\n"
    )
    daemon = RunningDaemon(config).start()
    try:
        s = daemon.wait_for(lambda s: (s.get("cdnprobe_cycles_total", target="dl") or 0) >= 6, 30)
        ages = {s.get("cdnprobe_artifact_hash_age_cycles", address=a) for a in EDGES}
        assert ages <= {0, 1, 2}
        sums_lab.write("/dl/tool.tar.gz", V1 + b"changed", edges=[GOOD])  # other size: HEAD sees it
        s = daemon.wait_for(
            lambda s: s.get("cdnprobe_artifact_checksum_match", address=GOOD) == 0, 10
        )
        assert s.get("cdnprobe_artifact_hash_age_cycles", address=GOOD) == 0
    finally:
        daemon.kill()
    log = [
        line
        for line in sums_lab.access_log()
        if "/dl/tool.tar.gz" in line and line.startswith("127.0.0.3 ")
    ]
    gets, heads = sum('"GET ' in x for x in log), sum('"HEAD ' in x for x in log)
    assert heads >= 3 and gets >= 2 and heads >= gets  # most cycles only asked for metadata
