"""SHA-256 of a streamed body, moved to a thread of its own once the body is large.

On the event loop's thread, hashing competes with TLS decryption and HTTP parsing. hashlib
releases the GIL for chunks over 2 KiB, and so does OpenSSL's decryption in `_ssl`, so a
second thread hashing while the loop reads lets both cores work on one large body. Small
bodies stay inline: a thread per chunk, or per small body, costs more than it saves.

The thread takes the whole stream, in order, through one queue. At most `window` bytes wait
in it: past that the reader awaits the thread, so memory does not grow with body size.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import queue
import threading

INLINE_LIMIT = 8 << 20  # bodies up to this size are hashed on the loop's thread
WINDOW = 2 << 20  # bytes queued for the thread at most
# More hashing threads than cores only adds switching and queued bytes: with many large
# bodies at once, the rest hash inline, as small bodies do.
MAX_THREADS = os.cpu_count() or 1
_threads = [0]  # hashing threads running in this process


class StreamDigest:
    def __init__(self, inline_limit: int = INLINE_LIMIT, window: int = WINDOW) -> None:
        self._hash = hashlib.sha256()
        self._inline_limit, self._window = inline_limit, window
        self._seen = 0
        self._queue: queue.SimpleQueue[bytes | None] | None = None
        self._queued = 0
        self._lock = threading.Lock()
        self._drained: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def update(self, chunk: bytes) -> None:
        self._seen += len(chunk)
        if self._queue is None:
            if self._seen <= self._inline_limit or _threads[0] >= MAX_THREADS:
                self._hash.update(chunk)
                return
            self._start()
        assert self._queue is not None and self._drained is not None
        with self._lock:
            self._queued += len(chunk)
            full = self._queued > self._window
            if full:
                self._drained.clear()
        self._queue.put(chunk)
        if full:
            await self._drained.wait()

    async def hexdigest(self) -> str:
        if self._queue is not None:
            assert self._done is not None
            self._queue.put(None)
            await self._done
        return self._hash.hexdigest()

    def close(self) -> None:
        """Stop the thread of an abandoned body (error, timeout); no digest is wanted."""
        if self._queue is not None and self._done is not None and not self._done.done():
            self._queue.put(None)

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = queue.SimpleQueue()
        self._drained = asyncio.Event()
        self._done = self._loop.create_future()
        _threads[0] += 1  # counted and uncounted on the loop's thread only
        threading.Thread(target=self._run, name="cdnprobe-sha256", daemon=True).start()

    def _run(self) -> None:
        assert self._queue is not None and self._loop is not None
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)
            with self._lock:
                self._queued -= len(chunk)
                wake = self._queued <= self._window // 2
            if wake:
                self._loop.call_soon_threadsafe(self._wake)
        self._loop.call_soon_threadsafe(self._finish)

    def _wake(self) -> None:
        if self._drained is not None:
            self._drained.set()

    def _finish(self) -> None:
        _threads[0] -= 1
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
