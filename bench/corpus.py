"""The benchmark's deterministic corpus: the same bytes on every machine and every run."""

from __future__ import annotations

import hashlib
from pathlib import Path

GIB_NAME = "big/artifact-1GiB.bin"


def _block(seed: str, size: int) -> bytes:
    """`size` bytes derived from `seed` (SHA-256 in counter mode: not compressible)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_corpus(root: Path, kind: str) -> tuple[Path, list[tuple[str, int]]]:
    """`small`: 20 index-like files of 2-40 KB. `mixed`: 20 files from 4 KB to 50 MB."""
    if kind == "small":
        sizes = [2_048 + i * 2_000 for i in range(20)]
    else:
        ratio = (50_000_000 / 4_000) ** (1 / 19)
        sizes = [int(4_000 * ratio**i) for i in range(20)]
    objects = []
    unit = _block(kind, 1 << 20)
    for i, size in enumerate(sizes):
        path = f"/{kind}/dists/stable/file-{i:02d}.bin"
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            remaining, rotation = size, i
            while remaining:
                piece = unit[rotation % 1024 :] + unit[: rotation % 1024]
                out.write(piece[: min(remaining, len(piece))])
                remaining -= min(remaining, len(piece))
                rotation += 7
        objects.append((path, size))
    return root, objects


def make_gib(root: Path) -> Path:
    target = root / GIB_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    unit = _block("gib", 1 << 20)
    with open(target, "wb") as out:
        for i in range(1024):
            out.write(unit[i:] + unit[:i])
    return root
