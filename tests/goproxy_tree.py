"""A file-based Go module proxy (the GOPROXY protocol's layout) for the tests, and the real
`go` command pointed at it with a private module cache and no checksum database."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from prober.validators.goproxy import gomod_hash

MODULE = "example.test/hello"


def write_module(root: Path, module: str, version: str, files: dict[str, str]) -> Path:
    """Adds module@version to the proxy tree under root; returns the zip's path."""
    base = root / module / "@v"
    base.mkdir(parents=True, exist_ok=True)
    gomod = files.get("go.mod", f"module {module}\n\ngo 1.19\n")
    (base / f"{version}.mod").write_text(gomod)
    (base / f"{version}.info").write_text(
        json.dumps({"Version": version, "Time": "2026-11-23T12:00:00Z"})
    )
    archive = base / f"{version}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for name, text in sorted({**files, "go.mod": gomod}.items()):
            out.writestr(f"{module}@{version}/{name}", text)
    versions = (
        sorted({*(base / "list").read_text().split(), version})
        if (base / "list").exists()
        else [version]
    )
    (base / "list").write_text("\n".join(versions) + "\n")
    return archive


def standard_modules(root: Path) -> None:
    write_module(
        root, MODULE, "v1.0.0", {"hello.go": 'package hello\n\nconst Greeting = "hello"\n'}
    )
    write_module(
        root, MODULE, "v1.1.0", {"hello.go": 'package hello\n\nconst Greeting = "hello, edge"\n'}
    )
    latest = {"Version": "v1.1.0", "Time": "2026-11-23T12:00:00Z"}
    (root / MODULE / "@latest").write_text(json.dumps(latest))


@dataclass
class GoRun:
    ok: bool
    output: str


def go_env(work: Path, proxy: str, **extra: str) -> dict[str, str]:
    """`go`'s environment with everything private to work: its caches, no checksum database."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "GOPROXY": proxy,
        "GOFLAGS": "-mod=mod",
        "GONOSUMDB": "*",
        "GOSUMDB": "off",
        "GOPATH": str(work / "gopath"),
        "GOMODCACHE": str(work / "modcache"),
        "GOCACHE": str(work / "gocache"),
        "GOTOOLCHAIN": "local",
        "GO111MODULE": "on",
        **extra,
    }


def go(work: Path, proxy: str, *args: str, gosum: str | None = None) -> GoRun:
    """Runs `go` in a consumer module that requires MODULE, with everything private to work."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text("module consumer.test/app\n\ngo 1.19\n")
    if gosum is not None:
        (work / "go.sum").write_text(gosum)
    proc = subprocess.run(
        ["go", *args],
        cwd=work,
        env=go_env(work, proxy),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return GoRun(proc.returncode == 0, proc.stdout + proc.stderr)


# ---- hand-built module zips (tests/test_gozip.py, tests/test_decoders_fuzz.py) -------------


@dataclass
class Member:
    """One zip entry, every field go's reader looks at under the test's control. None means
    "as a correct writer would put it"."""

    name: str | bytes
    data: bytes = b""
    method: int = 8  # 0 stored, 8 deflate
    crc: int | None = None
    compressed_size: int | None = None
    uncompressed_size: int | None = None
    flags: int = 0
    descriptor: bool = False  # flag 8 and a data descriptor (with its signature) after the data
    raw: bytes | None = None  # the member's bytes as stored, instead of compressing data
    external_attrs: int = 0o100644 << 16


def deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


def raw_zip(members: list[Member], prefix: bytes = b"", comment: bytes = b"") -> bytes:
    """A zip written field by field, so that tests can build what no zip library writes."""
    out, directory = bytearray(prefix), bytearray()
    for m in members:
        name = m.name.encode() if isinstance(m.name, str) else m.name
        stored = m.raw if m.raw is not None else (deflate(m.data) if m.method == 8 else m.data)
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        csize = len(stored) if m.compressed_size is None else m.compressed_size
        usize = len(m.data) if m.uncompressed_size is None else m.uncompressed_size
        flags = m.flags | (0x8 if m.descriptor else 0) | 0x800
        offset = len(out) - len(prefix)
        head = struct.pack("<HHHHHIII", 20, flags, m.method, 0, 0x21, crc, csize, usize)
        local = head if not m.descriptor else head[:10] + bytes(12)
        out += b"PK\x03\x04" + local + struct.pack("<HH", len(name), 0) + name + stored
        if m.descriptor:
            out += b"PK\x07\x08" + struct.pack("<III", crc, csize, usize)
        directory += b"PK\x01\x02" + struct.pack("<H", 0x031E) + head
        directory += struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, m.external_attrs, offset)
        directory += name
    start = len(out) - len(prefix)
    out += directory
    count = len(members)
    out += b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(directory), start,
                                       len(comment)) + comment  # fmt: skip
    return bytes(out)


def serve_zip(root: Path, module: str, version: str, data: bytes) -> None:
    """A proxy tree under root serving exactly these zip bytes for module@version."""
    base = root / module / "@v"
    base.mkdir(parents=True, exist_ok=True)
    (base / f"{version}.mod").write_text(f"module {module}\n")
    (base / f"{version}.info").write_text(
        json.dumps({"Version": version, "Time": "2026-11-23T12:00:00Z"})
    )
    (base / f"{version}.zip").write_bytes(data)
    (base / "list").write_text(version + "\n")


def go_download(work: Path, root: Path, module: str, version: str, sum_h1: str | None) -> GoRun:
    """`go mod download -json module@version` from the file proxy at root; with sum_h1, the
    consumer's go.sum holds that h1: for the zip (and the proxy's go.mod hash). Like go(), but
    go's output may quote a zip's non-UTF-8 file names: decoded with replacement."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text("module consumer.test/app\n\ngo 1.19\n")
    if sum_h1 is not None:
        mod = (root / module / "@v" / f"{version}.mod").read_bytes()
        (work / "go.sum").write_text(
            f"{module} {version} {sum_h1}\n{module} {version}/go.mod {gomod_hash(mod)}\n"
        )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work),
        "GOPROXY": f"file://{root}", "GOFLAGS": "-mod=mod", "GONOSUMDB": "*", "GOSUMDB": "off",
        "GOPATH": str(work / "gopath"), "GOMODCACHE": str(work / "modcache"),
        "GOCACHE": str(work / "gocache"), "GOTOOLCHAIN": "local", "GO111MODULE": "on",
    }  # fmt: skip
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        cwd=work, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    return GoRun(proc.returncode == 0, text)
