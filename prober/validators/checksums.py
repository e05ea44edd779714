"""Checksum manifests: `SHA256SUMS`-style text, or JSON with sha256 fields (a toolchain's
download index), and the artifacts they cover, checked edge by edge. Pure."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_MANIFEST_BYTES = 64 << 20  # a manifest is text: far below this, and json.loads of it is bounded
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *]?(.+)$")
_BSD = re.compile(r"^SHA256 \((.+)\) = ([0-9a-fA-F]{64})$")


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    name: str
    sha256: str
    size: int | None = None


class ManifestError(ValueError):
    pass


def parse_manifest(data: bytes) -> dict[str, ManifestEntry]:
    """name → entry; ManifestError (a ValueError) for anything that is not a manifest."""
    data = bytes(data)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest above {MAX_MANIFEST_BYTES} bytes")
    if data.lstrip().startswith((b"[", b"{")):
        return _json_manifest(data)
    # sha256sum reads names as bytes; names that are not UTF-8 are kept recognisable (U+FFFD)
    # rather than refused, as one bad line need not hide the others. A BOM is not a name.
    text = data.decode("utf-8", "replace").removeprefix("\ufeff").strip()
    entries = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := _LINE.match(line):
            digest, name = match.groups()
        elif match := _BSD.match(line):
            name, digest = match.groups()
        else:
            raise ManifestError(f"not a checksum line: {line[:80]!r}")
        entries[name.strip()] = ManifestEntry(name.strip(), digest.lower())
    if not entries:
        raise ManifestError("no checksums in the manifest")
    return entries


def _json_manifest(data: bytes) -> dict[str, ManifestEntry]:
    try:
        # RFC 8259: JSON is UTF-8, so invalid UTF-8 is not JSON (UnicodeDecodeError).
        doc = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep to parse
        raise ManifestError(f"not JSON: {str(exc)[:200]}") from None
    entries: dict[str, ManifestEntry] = {}
    _collect(doc, entries, depth=0)
    if not entries:
        raise ManifestError("no objects with a sha256 and a filename in the JSON")
    return entries


def _collect(node: Any, entries: dict[str, ManifestEntry], depth: int) -> None:
    if depth > 8:
        return
    if isinstance(node, dict):
        digest = node.get("sha256")
        name = node.get("filename") or node.get("name") or node.get("path")
        if (
            isinstance(digest, str)
            and re.fullmatch(r"[0-9a-fA-F]{64}", digest)
            and isinstance(name, str)
        ):
            size = node.get("size")
            known = isinstance(size, int) and not isinstance(size, bool) and size >= 0
            entries[name] = ManifestEntry(name, digest.lower(), size if known else None)
        for value in node.values():
            _collect(value, entries, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _collect(value, entries, depth + 1)
