"""Go module proxy: cdnprobe against the real `go` command on each edge. A corrupt, truncated
or foreign zip fails `go` with go.sum and is flagged; a zip rebuilt with the same files
(other bytes, same h1:) passes both."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.conftest import cdnprobe
from tests.goproxy_tree import MODULE, go, standard_modules, write_module
from tests.lab import HOST, EdgeSpec, Lab, free_port

GOOD, CORRUPT, TRUNCATED, FOREIGN, REZIPPED = (
    "127.0.0.2",
    "127.0.0.3",
    "127.0.0.4",
    "::1",
    "127.0.0.5",
)
EDGES = (GOOD, CORRUPT, TRUNCATED, FOREIGN, REZIPPED)
ZIP = f"{MODULE}/@v/v1.0.0.zip"


def stage(lab: Lab, tree: Path, work: Path) -> None:
    for address in EDGES:
        shutil.rmtree(lab.docroot(address), ignore_errors=True)
        shutil.copytree(tree, lab.docroot(address))
    data = (tree / ZIP).read_bytes()
    corrupt = bytearray(data)
    with zipfile.ZipFile(tree / ZIP) as archive:  # a byte inside the first member's data
        first = archive.infolist()[0]
        offset = first.header_offset + 30 + len(first.filename) + len(first.extra) + 2
    corrupt[offset] ^= 0xFF  # its CRC no longer holds
    (lab.docroot(CORRUPT) / ZIP).write_bytes(bytes(corrupt))
    (lab.docroot(TRUNCATED) / ZIP).write_bytes(data[: len(data) // 2])
    foreign = work / "foreign"
    write_module(
        foreign, MODULE, "v1.0.0", {"hello.go": 'package hello\n\nconst Greeting = "pwned"\n'}
    )
    shutil.copy(foreign / ZIP, lab.docroot(FOREIGN) / ZIP)
    with (
        zipfile.ZipFile(tree / ZIP) as original,
        zipfile.ZipFile(lab.docroot(REZIPPED) / ZIP, "w", zipfile.ZIP_STORED) as out,
    ):
        for info in reversed(original.infolist()):  # other order, no compression: other bytes
            out.writestr(info.filename, original.read(info))


@pytest.fixture
def go_lab(tmp_path: Path, ca: trustme.CA) -> Iterator[tuple[Lab, str]]:
    tree = tmp_path / "proxy"
    standard_modules(tree)
    lab = Lab(tmp_path / "lab", ca, [EdgeSpec(a) for a in EDGES])
    lab.http_port = free_port(["127.0.0.2"])
    lab.start()
    try:
        stage(lab, tree, tmp_path)
        good = go(
            tmp_path / "sum", f"file://{tree}", "mod", "download", "-json", f"{MODULE}@v1.0.0"
        )
        assert good.ok, good.output
        doc = json.loads(good.output)
        gosum = f"{MODULE} v1.0.0 {doc['Sum']}\n{MODULE} v1.0.0/go.mod {doc['GoModSum']}\n"
        yield lab, gosum
    finally:
        lab.stop()


def check_go(lab: Lab, gosum_file: Path | None, *modules: str) -> tuple[int, dict[str, Any], str]:
    argv = ["check", "--goproxy", f"http://{HOST}:{lab.http_port}/", "--resolver", lab.resolver]
    for module in modules:
        argv += ["--module", module]
    if gosum_file is not None:
        argv += ["--gosum", str(gosum_file)]
    json_proc = cdnprobe(*argv, "--json")
    table = cdnprobe(*argv)
    return json_proc.returncode, json.loads(json_proc.stdout), table.stdout


def test_flags_exactly_the_edges_go_fails_on(go_lab: tuple[Lab, str], tmp_path: Path) -> None:
    lab, gosum = go_lab
    (tmp_path / "go.sum").write_text(gosum)
    code, doc, table = check_go(lab, tmp_path / "go.sum", f"{MODULE}@v1.0.0")
    zip_entry = next(t for t in doc["targets"] if t.get("name") == f"{MODULE}@v1.0.0")
    checks = {e["address"]: e["check"] for e in zip_entry["edges"]}
    for address in EDGES:
        host = f"[{address}]" if ":" in address else address
        run = go(tmp_path / f"go-{address}", f"http://{host}:{lab.http_port}", "mod", "download",
                 f"{MODULE}@v1.0.0", gosum=gosum)  # fmt: skip
        assert checks[address]["match"] == run.ok, (address, run.output, checks[address])
    assert checks[GOOD]["match"] and checks[REZIPPED]["match"]
    assert (
        "unreadable zip" in checks[CORRUPT]["problem"]
        and "unreadable zip" in checks[TRUNCATED]["problem"]
    )
    assert checks[FOREIGN]["problem"] == "checksum mismatch (zip)"
    assert checks[FOREIGN]["source"] == "go.sum" and checks[FOREIGN]["expected"] == gosum.split()[2]
    assert code == 1
    assert f"{FOREIGN}: go: verifying {MODULE}@v1.0.0: checksum mismatch (zip)" in table


def test_without_gosum_most_edges_are_the_reference(go_lab: tuple[Lab, str]) -> None:
    lab, gosum = go_lab
    _, doc, _ = check_go(lab, None, f"{MODULE}@v1.0.0")
    zip_entry = next(t for t in doc["targets"] if t.get("name") == f"{MODULE}@v1.0.0")
    checks = {e["address"]: e["check"] for e in zip_entry["edges"]}
    assert checks[GOOD]["expected"] == gosum.split()[2]  # good and re-zipped agree: the majority
    assert checks[GOOD]["source"] == "most edges"
    verdicts = {e["address"]: e["verdict"] for e in zip_entry["edges"]}
    assert verdicts == {
        GOOD: "ok",
        REZIPPED: "ok",
        CORRUPT: "divergent",
        TRUNCATED: "divergent",
        FOREIGN: "divergent",
    }


def test_every_listed_version_is_checked(go_lab: tuple[Lab, str]) -> None:
    lab, _ = go_lab
    _, doc, _ = check_go(lab, None, MODULE)
    names = [t.get("name") for t in doc["targets"]]
    assert names == [
        f"{MODULE} @v/list",
        f"{MODULE} @latest",
        f"{MODULE}@v1.0.0",
        f"{MODULE}@v1.1.0",
    ]
    assert {e["status"] for e in doc["targets"][1]["edges"]} == {200}
    newest = doc["targets"][3]
    assert {e["verdict"] for e in newest["edges"]} == {"ok"}


def test_bad_gosum_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "go.sum").write_text("garbage\n")
    proc = cdnprobe(
        "check",
        "--goproxy",
        "http://proxy.test/",
        "--module",
        "m@v1",
        "--gosum",
        str(tmp_path / "go.sum"),
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"cdnprobe: --gosum {tmp_path / 'go.sum'}: not a go.sum line: 'garbage\\n'"
    )


def test_daemon_exports_goproxy_module_match(go_lab: tuple[Lab, str], tmp_path: Path) -> None:
    from tests.daemon import one_cycle

    lab, gosum = go_lab
    lines = ", ".join(f"'{line}'" for line in gosum.strip().splitlines())
    config = tmp_path / "go.yaml"
    config.write_text(
        "dns_min_interval: 0s\ntargets:\n  - name: proxy\n    type: goproxy\n"
        f"    url: http://{HOST}:{lab.http_port}/\n    modules: ['{MODULE}@v1.0.0']\n"
        f"    gosum: [{lines}]\n"
        f'    resolvers: ["{lab.resolver}"]\n    interval: 1s\n'
    )
    s = one_cycle(config, "proxy")
    match = {
        a: s.get("cdnprobe_goproxy_module_match", module=MODULE, version="v1.0.0", address=a)
        for a in EDGES
    }
    assert match == {GOOD: 1, CORRUPT: 0, TRUNCATED: 0, FOREIGN: 0, REZIPPED: 1}


def test_info_that_names_another_version_is_flagged(go_lab: tuple[Lab, str]) -> None:
    lab, _ = go_lab
    (lab.docroot(GOOD) / f"{MODULE}/@v/v1.1.0.info").write_text('{"Version": "v9.9.9"}')
    _, doc, _ = check_go(lab, None, f"{MODULE}@v1.1.0")
    entry = next(t for t in doc["targets"] if t.get("name") == f"{MODULE}@v1.1.0")
    checks = {e["address"]: e["check"] for e in entry["edges"]}
    assert checks[GOOD]["problem"] == "bad .info (Version v9.9.9)"
    assert checks[REZIPPED]["problem"] is None
