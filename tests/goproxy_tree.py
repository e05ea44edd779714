"""A file-based Go module proxy (the GOPROXY protocol's layout) for the tests, and the real
`go` command pointed at it with a private module cache and no checksum database."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

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


def go(work: Path, proxy: str, *args: str, gosum: str | None = None) -> GoRun:
    """Runs `go` in a consumer module that requires MODULE, with everything private to work."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text("module consumer.test/app\n\ngo 1.19\n")
    if gosum is not None:
        (work / "go.sum").write_text(gosum)
    env = {
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
    }
    proc = subprocess.run(
        ["go", *args], cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    return GoRun(proc.returncode == 0, proc.stdout + proc.stderr)
