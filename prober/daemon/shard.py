"""`--shard INDEX/COUNT`: which targets one of COUNT replicas probes, with no coordination.

A target belongs to shard `sha256(name) mod COUNT`, read from the first 8 bytes of the hash
as a big-endian integer. It depends only on the target's name and COUNT, so adding or
removing other targets never moves a target, and every replica computes the same split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from prober.errors import UsageError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        index_text, sep, count_text = text.partition("/")
        if not sep or not index_text.isdigit() or not count_text.isdigit():
            raise UsageError(f"bad --shard {text!r}: expected INDEX/COUNT, e.g. 0/3")
        index, count = int(index_text), int(count_text)
        if not 0 < count <= 1000 or index >= count:
            raise UsageError(f"bad --shard {text!r}: need 0 <= INDEX < COUNT <= 1000")
        return cls(index, count)

    def owns(self, name: str) -> bool:
        return shard_of(name, self.count) == self.index


def shard_of(name: str, count: int) -> int:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select(items: Sequence[T], names: Sequence[str], shard: Shard | None) -> list[T]:
    if shard is None:
        return list(items)
    return [item for item, name in zip(items, names, strict=True) if shard.owns(name)]
