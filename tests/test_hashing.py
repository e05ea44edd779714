"""The threaded digest gives the same SHA-256 as hashlib, for bodies of every size."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from prober.hashing import StreamDigest


@pytest.mark.parametrize("size", [0, 1, 4095, 1 << 20, (3 << 20) + 17])
def test_same_digest_inline_and_threaded(size: int) -> None:
    data = hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1)
    data = data[:size]

    async def digest() -> tuple[str, bool]:
        # tiny thresholds, so anything past 64 KiB goes through the thread and its window
        stream = StreamDigest(inline_limit=1 << 16, window=1 << 18)
        for i in range(0, len(data), 65_521):
            await stream.update(data[i : i + 65_521])
        threaded = stream._queue is not None
        return await stream.hexdigest(), threaded

    result, threaded = asyncio.run(digest())
    assert result == hashlib.sha256(data).hexdigest()
    assert threaded == (size > 1 << 16)


def test_abandoned_stream_stops_its_thread() -> None:
    async def abandon() -> None:
        stream = StreamDigest(inline_limit=10, window=100)
        await stream.update(b"x" * 50)
        stream.close()
        await asyncio.sleep(0.05)

    asyncio.run(abandon())
    import threading

    assert not [t for t in threading.enumerate() if t.name == "cdnprobe-sha256"]
