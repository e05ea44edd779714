"""Bytes only when they changed (opt-in per target: `revalidate: {full_every: N}`), for the
kinds that fetch whole files: plain, goproxy and checksums. APT's own, gated by each edge's
InRelease, is AptRevalidation in apt.py.

Between full passes each edge is asked with its *own* last validators (If-None-Match /
If-Modified-Since); its 304 reuses its own last full answer and what reading it found (a
kind's own: a zip's h1: check, a parsed manifest), labelled with its age. A full pass runs
every `full_every` cycles and at once (the next cycle) after a reference changed. What a 304
cannot prove: an edge that corrupts bytes in place without changing its validators looks
unchanged until the next full pass hashes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast, overload

from prober.fetch import Fetcher, S, Sink
from prober.model import Edge, ObjectReport, Observation

T = TypeVar("T")
Read = Callable[[Observation, S | None], Awaitable[T]]
MEMORY = "revalidation"  # its key in a target's ProbeContext.memory
NO_SINK: Callable[[], Sink] | None = None  # a body that is hashed only, not read


@dataclass(frozen=True, slots=True)
class Kept:
    """An edge's last full answer to one URL, what reading it found, and when."""

    observation: Observation
    value: Any  # the kind's reading of the body (None when the observation is all it needs)
    cycle: int


@dataclass(slots=True)
class Revalidation:
    """One target's revalidation state across cycles, keyed by (edge address, URL): nothing
    is ever reused across edges."""

    full_every: int
    cycle: int = 0
    full: bool = True
    force_full: bool = True
    last: dict[tuple[str, str], Kept] = field(default_factory=dict)
    references: dict[str, str | None] = field(default_factory=dict)
    touched: set[tuple[str, str]] = field(default_factory=set)  # keys asked this cycle

    def start_cycle(self, addresses: set[str]) -> None:
        self.cycle += 1
        self.full = self.force_full or self.cycle % self.full_every == 0
        self.force_full = False
        # an edge that left DNS, or a URL no longer asked for (a path removed, an old
        # version, a by-hash name of an earlier publish): kept no longer
        self.prune(self.last, addresses)
        self.touched = set()

    def prune(self, table: dict[tuple[str, str], Any], addresses: set[str]) -> None:
        for key in [k for k in table if k[0] not in addresses or k not in self.touched]:
            del table[key]

    def end_cycle(self, objects: Sequence[ObjectReport]) -> None:
        for obj in objects:
            self.saw(obj.path, obj.reference.sha256 if obj.reference else None)

    def saw(self, path: str, sha256: str | None) -> None:
        """The reference of `path` this cycle; a change makes the next cycle a full pass."""
        if self.references.get(path, sha256) != sha256:
            self.force_full = True
        self.references[path] = sha256

    async def fetch_read(
        self,
        fetcher: Fetcher,
        edge: Edge,
        url: str,
        make_sink: Callable[[], S] | None,
        read: Read[S, T],
        *,
        full: bool = False,
    ) -> tuple[Observation, T]:
        """The edge's answer to `url` and `read`'s reading of it; on a 304 to the edge's own
        last validators, its last full answer (labelled) and reading, not read again.
        `full`: fetched and read in full whatever the cycle."""
        key = (edge.address, url)
        previous = None if self.full or full else self.last.get(key)
        validators = None
        if previous is not None:
            validators = (previous.observation.etag, previous.observation.last_modified)
        observation, sink = await fetcher.fetch_into(edge, url, make_sink, validators)
        if previous is not None and observation.status == 304 and observation.error is None:
            kept = previous.observation
            if confirms(kept.etag, kept.last_modified, observation):
                self.touched.add(key)
                return self._reused(previous, observation), cast(T, previous.value)
            observation, sink = await fetcher.fetch_into(edge, url, make_sink)  # prove it
        value = await read(observation, sink)
        self.touched.add(key)
        if observation.complete and (observation.etag or observation.last_modified):
            self.last[key] = Kept(observation, value, self.cycle)
        else:
            self.last.pop(key, None)  # nothing to revalidate with: a full fetch next time
        return observation, value

    def _reused(self, kept: Kept, answer: Observation) -> Observation:
        return replace(
            kept.observation, elapsed_s=answer.elapsed_s, hash_age_cycles=self.cycle - kept.cycle,
            revalidated=True, http_version=answer.http_version,
        )  # fmt: skip

    def fetcher(self, fetcher: Fetcher) -> Callable[[Edge, str], Awaitable[Observation]]:
        """A fetch of the observation alone (plain targets: the bytes are the result)."""

        async def fetch(edge: Edge, url: str) -> Observation:
            observation, _ = await self.fetch_read(fetcher, edge, url, NO_SINK, no_reading)
            return observation

        return fetch

    def note(self, observed: Sequence[tuple[Edge, Observation]], what: str) -> tuple[str, ...]:
        """The object's note when some edges' results were reused; () when none were."""
        reused = [obs for _, obs in observed if obs.revalidated]
        if not reused:
            return ()
        oldest = max(obs.hash_age_cycles for obs in reused)
        return (
            f"revalidated: {len(reused)} edges answered 304 to their own last validators; "
            f"their {what} are up to {oldest} cycles old (a full pass every {self.full_every} "
            "cycles)",
        )


def confirms(etag: str | None, last_modified: str | None, answer: Observation) -> bool:
    """Whether a 304 proves the edge still has the kept copy. With an ETag it does
    (If-None-Match matched it, and a 304 that names another ETag is refused). With only
    Last-Modified it does not: If-Modified-Since is also answered 304 by an edge that went
    back to an *older* copy (RFC 9110 13.1.3), so the 304 must carry the same Last-Modified;
    otherwise the body is fetched in full."""
    if etag:
        return answer.etag is None or answer.etag == etag
    return last_modified is not None and answer.last_modified == last_modified


async def no_reading(observation: Observation, sink: Sink | None) -> None:
    """For a URL whose observation (status, size, hash) is all its kind needs."""
    return None


async def fetch_read(
    fetcher: Fetcher,
    revalidation: Revalidation | None,
    edge: Edge,
    url: str,
    make_sink: Callable[[], S] | None,
    read: Read[S, T],
) -> tuple[Observation, T]:
    """The edge's answer and its reading: through `revalidation` when the target has it,
    else fetched and read in full, as every cycle does without it."""
    if revalidation is not None:
        return await revalidation.fetch_read(fetcher, edge, url, make_sink, read)
    observation, sink = await fetcher.fetch_into(edge, url, make_sink)
    return observation, await read(observation, sink)


R = TypeVar("R", bound=Revalidation)


@overload
def revalidation_for(
    full_every: int | None, memory: MutableMapping[str, Any]
) -> Revalidation | None: ...
@overload
def revalidation_for(
    full_every: int | None, memory: MutableMapping[str, Any], kind: type[R]
) -> R | None: ...
def revalidation_for(
    full_every: int | None, memory: MutableMapping[str, Any], kind: type[Any] = Revalidation
) -> Any:
    """The target's state (of the kind's class), kept in its memory across the daemon's
    cycles (`check` runs one cycle: a full pass); a new `full_every` (a reload) starts
    afresh."""
    if full_every is None:
        return None
    found = memory.get(MEMORY)
    if found is None or type(found) is not kind or found.full_every != full_every:
        found = memory[MEMORY] = kind(full_every)
    return found
