"""Go module proxy: what an edge serves for a module, checked the way the `go` command does.

Per edge and module: `@v/list`, `@latest`, and per version `.info`, `.mod` and `.zip`. The
zip must be complete and readable (every member's CRC checks), and its `h1:` hash (go.sum's
algorithm, golang.org/x/mod/sumdb/dirhash.Hash1) is compared across edges and, when the config
gives one, with the go.sum line. Pure: the zip arrives as a file object the caller spooled.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO


def escape_path(path: str) -> str:
    """Module or version path as the proxy protocol spells it: upper case becomes !lower."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in path)


def hash1(files: Iterable[tuple[str, bytes]]) -> str:
    """dirhash.Hash1 over (name, sha256 digest) pairs: sha256 of the sorted summary lines."""
    summary = "".join(f"{digest.hex()}  {name}\n" for name, digest in sorted(files))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def gomod_hash(data: bytes) -> str:
    """The `/go.mod` line of go.sum: Hash1 over one file named go.mod."""
    return hash1([("go.mod", hashlib.sha256(data).digest())])


class ZipProblem(ValueError):
    pass


def zip_hash(stream: IO[bytes], module: str, version: str) -> str:
    """h1: of a module zip; ZipProblem when it is not a readable module zip."""
    prefix = f"{module}@{version}/"
    try:
        with zipfile.ZipFile(stream) as archive:
            files = []
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if not info.filename.startswith(prefix):
                    raise ZipProblem(f"{info.filename!r} is outside {prefix}")
                digest = hashlib.sha256()
                with archive.open(info) as member:  # reading to the end checks the CRC
                    while block := member.read(1 << 20):
                        digest.update(block)
                files.append((info.filename, digest.digest()))
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise ZipProblem(f"not a readable zip: {exc}") from None
    if not files:
        raise ZipProblem("empty module zip")
    return hash1(files)


def parse_list(data: bytes) -> list[str]:
    return sorted(
        {line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()}
    )


@dataclass(frozen=True, slots=True)
class Info:
    version: str
    time: str | None


def parse_info(data: bytes) -> Info:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("Version"), str):
        raise ValueError("no Version field")
    time = doc.get("Time")
    return Info(doc["Version"], time if isinstance(time, str) else None)


def parse_gosum(lines: Iterable[str]) -> dict[tuple[str, str], str]:
    """go.sum lines → {(module, version or version/go.mod): h1}; ValueError names a bad line."""
    sums = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith("h1:"):
            raise ValueError(f"not a go.sum line: {line!r}")
        sums[(parts[0], parts[1])] = parts[2]
    return sums
