"""What a target remembers between cycles: past references per object, and how long each
edge has held its verdict. Plain data, updated by the daemon after each cycle; no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime

from prober.compare import PastReference
from prober.model import ObjectReport, Verdict

HISTORY_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Version:
    sha256: str
    first_seen: datetime
    last_reference: datetime
    superseded_at: datetime | None = None


@dataclass(slots=True)
class VersionHistory:
    """Per object path, a bounded ring of the bodies that were the reference, newest first."""

    depth: int = HISTORY_DEPTH
    _rings: dict[str, deque[Version]] = field(default_factory=dict)

    def past(self, path: str) -> tuple[PastReference, ...]:
        return tuple(PastReference(v.sha256, v.superseded_at) for v in self._rings.get(path, ()))

    def versions(self, path: str) -> tuple[Version, ...]:
        return tuple(self._rings.get(path, ()))

    def observe(self, report: ObjectReport, now: datetime) -> None:
        """Record this cycle's reference body; a new one supersedes the previous head."""
        ref = report.reference
        if ref is None or ref.sha256 is None:
            return
        ring = self._rings.setdefault(report.path, deque(maxlen=self.depth))
        if ring and ring[0].sha256 == ref.sha256:
            ring[0] = replace(ring[0], last_reference=now)
            return
        if ring:
            ring[0] = replace(ring[0], superseded_at=now)
        for i, old in enumerate(ring):  # a body coming back is moved to the front
            if old.sha256 == ref.sha256:
                del ring[i]
                break
        ring.appendleft(Version(ref.sha256, now, now))

    def keep_only(self, paths: set[str]) -> None:
        for path in [p for p in self._rings if p not in paths]:
            del self._rings[path]


@dataclass(frozen=True, slots=True)
class VerdictChange:
    path: str
    address: str
    verdict: Verdict
    previous: Verdict | None
    since: datetime
    held_s: float | None  # how long the previous verdict lasted


@dataclass(frozen=True, slots=True)
class EdgeState:
    verdict: Verdict
    since: datetime
    last_recovered: datetime | None = None


@dataclass(slots=True)
class VerdictTracker:
    """Since when each (path, edge) has held its verdict; changes are returned for logging."""

    states: dict[tuple[str, str], EdgeState] = field(default_factory=dict)

    def update(self, objects: tuple[ObjectReport, ...], now: datetime) -> list[VerdictChange]:
        changes: list[VerdictChange] = []
        seen: set[tuple[str, str]] = set()
        for obj in objects:
            for result in obj.results:
                key = (obj.path, result.edge.address)
                seen.add(key)
                change = self._set(key, result.verdict, now)
                if change is not None:
                    changes.append(change)
        for key in [k for k in self.states if k not in seen]:
            del self.states[key]  # the edge left DNS, or the path left the config
        return changes

    def _set(self, key: tuple[str, str], verdict: Verdict, now: datetime) -> VerdictChange | None:
        old = self.states.get(key)
        if old is not None and old.verdict is verdict:
            return None
        recovered = now if old is not None and verdict is Verdict.OK else None
        last = recovered or (old.last_recovered if old else None)
        self.states[key] = EdgeState(verdict, now, last)
        if old is None and verdict is Verdict.OK:
            return None  # a healthy first sight is not news
        held = (now - old.since).total_seconds() if old else None
        return VerdictChange(key[0], key[1], verdict, old.verdict if old else None, now, held)
