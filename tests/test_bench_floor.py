"""The benchmark's floor (bench/floor.py) must hash what `check` hashes, or its figure would
compare cdnprobe with something that does less."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

from tests.conftest import ROOT, cdnprobe
from tests.lab import HOST, Lab

PATH = "/pool/big.bin"


def test_the_floor_hashes_the_same_bytes_as_check(lab: Lab) -> None:
    body = bytes(range(256)) * (12 << 10) + b"tail"  # 3 MiB and a bit: many TLS records
    lab.write(PATH, body, edges=["127.0.0.2"])
    floor = subprocess.run(
        [sys.executable, "-m", "bench.floor", HOST, str(lab.port), lab.ca_file, "127.0.0.2", PATH],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    measured = json.loads(floor.stdout)
    assert measured["bytes"] == len(body)
    assert measured["sha256"] == hashlib.sha256(body).hexdigest()
    assert measured["elapsed_s"] > 0
    done = cdnprobe(
        "check", lab.url(PATH), "--resolver", lab.resolver, "--ca-file", lab.ca_file, "--json"
    )
    edges = {e["address"]: e for e in json.loads(done.stdout)["targets"][0]["edges"]}
    assert edges["127.0.0.2"]["sha256"] == measured["sha256"]
