"""The task API: a release pipeline asks "has every edge got the new publish?" and waits.

A task names a configured target, never a URL. Its answer comes from a cycle that began
after its POST; tasks for the same target share that cycle (TargetRunner.fresh_cycle: at
most one running and one pending cycle per target, whatever the number of callers), and
scheduled and task cycles of a target never overlap. `until: converged` repeats cycles
until one is consistent or the deadline passes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from prober.daemon.runner import RunnerStopped, TargetRunner
from prober.kinds.base import Clock, utc_now
from prober.model import Kind, Report, TargetReport
from prober.render import iso_utc, report_json
from prober.units import parse_duration
from prober.wait import round_ok

log = logging.getLogger("cdnprobe")
KEEP_S = 600.0  # finished tasks are kept at least this long...
MAX_TASKS = 1000  # ...and at most this many: past that the oldest finished goes first
MAX_DEADLINE_S = 6 * 3600.0


class TaskInputError(ValueError):
    """A task body that cannot be used: the one line the caller gets with a 400."""


def _expect(value: Any) -> tuple[tuple[str, str], ...]:
    """{"NAME": "VERSION", ...}: the packages every edge's indexes must list (APT)."""
    if not isinstance(value, dict) or not value:
        raise ValueError('must be an object of package names and versions, {"NAME": "VERSION"}')
    pairs = []
    for name, version in value.items():
        if not isinstance(version, str) or not name.strip() or not version.strip():
            raise ValueError(f"{name!r}: a package name and a version string, both non-empty")
        pairs.append((name.strip(), version.strip()))
    return tuple(pairs)


def _deadline(value: Any) -> float:
    seconds = parse_duration(value)
    if not 0 < seconds <= MAX_DEADLINE_S:
        raise ValueError(f"must be more than 0 and at most {MAX_DEADLINE_S / 3600:g}h")
    return seconds


class TaskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    until: str | None = None
    deadline: Annotated[float, BeforeValidator(_deadline)] = 600.0
    expect: Annotated[tuple[tuple[str, str], ...], BeforeValidator(_expect)] = ()

    @classmethod
    def parse(cls, body: Any) -> TaskRequest:
        if body is None:
            return cls()
        if not isinstance(body, dict):
            raise TaskInputError("the body must be a JSON object")
        try:
            request = cls.model_validate(body)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (known: until, deadline, expect)"
            raise TaskInputError(f"{where}: {message}") from None
        if request.until not in (None, "converged"):
            raise TaskInputError("until: must be 'converged' or absent")
        return request


@dataclass(slots=True)
class Task:
    id: str
    target: str
    request: TaskRequest
    created: datetime
    state: str = "pending"
    finished: datetime | None = None
    finished_at_s: float | None = None  # monotonic, for retention
    report: TargetReport | None = None
    consistent: bool | None = None
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def document(self) -> dict[str, Any]:
        report = None
        if self.report is not None:
            report = report_json(Report(self.report.finished_at, (self.report,)))
        return {
            "id": self.id,
            "target": self.target,
            "state": self.state,
            "created": iso_utc(self.created),
            "finished": iso_utc(self.finished) if self.finished else None,
            "consistent": self.consistent,
            "report": report,
            "error": self.error,
        }


class Tasks:
    """Every task of one daemon, bounded in number and age."""

    def __init__(
        self, runners: Callable[[], dict[str, TargetRunner]], clock: Clock = utc_now
    ) -> None:
        self._runners = runners
        self._clock = clock
        self._tasks: dict[str, Task] = {}
        self._running: set[asyncio.Task[None]] = set()
        self.outcomes: Counter[str] = Counter()

    def create(self, target: str, request: TaskRequest) -> Task | None:
        """A new task for a configured target (None when there is no such target here)."""
        runner = self._runners().get(target)
        if runner is None:
            return None
        if request.expect and runner.row.kind is not Kind.APT:
            raise TaskInputError("expect: only for apt targets")
        self._prune()
        task = Task(secrets.token_hex(8), target, request, self._clock())
        # before the task's cycle starts, so that cycle reads these packages' versions
        if request.expect:
            runner.watch(name for name, _ in request.expect)
        self._tasks[task.id] = task
        job = asyncio.create_task(self._run(task, runner), name=f"task:{task.id}")
        self._running.add(job)
        job.add_done_callback(self._running.discard)
        return task

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    async def _run(self, task: Task, runner: TargetRunner) -> None:
        names = [name for name, _ in task.request.expect]
        holder = [runner]  # the runner whose cycles answer the task: the live one
        try:
            await self._cycles(task, holder, names)
        finally:
            if names:
                holder[0].watch(names, stop=True)

    def _live(self, task: Task, holder: list[TargetRunner], names: list[str]) -> TargetRunner:
        """The target's runner now: a reload that changed the target replaced it, and the
        task goes on with the new one (its package names watched there instead)."""
        live = self._runners().get(task.target)
        if live is None:
            raise RuntimeError("the target was removed by a reload")
        if live is not holder[0]:
            if names:
                holder[0].watch(names, stop=True)
                live.watch(names)
            holder[0] = live
        return live

    async def _cycles(self, task: Task, holder: list[TargetRunner], names: list[str]) -> None:
        deadline = time.monotonic() + task.request.deadline
        try:
            for _ in range(100_000):  # bounded: every round is a cycle or ends the task
                runner = self._live(task, holder, names)
                try:
                    snapshot = await runner.fresh_cycle(lambda: setattr(task, "state", "running"))
                except (RunnerStopped, asyncio.CancelledError):
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise  # Tasks.stop: the daemon stops
                    if time.monotonic() >= deadline:
                        raise RuntimeError("the target was reloaded at the deadline") from None
                    await asyncio.sleep(0.1)  # the reload's new runner is in place by then
                    continue
                report = snapshot.report
                if report is None or report.started_at < task.created:
                    raise RuntimeError("the cycle failed; the daemon's log says why")
                if task.request.expect:
                    from prober.kinds.apt import with_expect

                    report = with_expect(report, task.request.expect)
                task.report = report
                task.consistent = round_ok(Report(report.finished_at, (report,)))
                if task.request.until != "converged" or task.consistent:
                    break
                if time.monotonic() >= deadline:
                    break
                task.state = "pending"
                await asyncio.sleep(min(runner.config.interval, 5.0))
            self._finish(task, "done", None)
        except asyncio.CancelledError:
            self._finish(task, "error", "the daemon stopped")
        except Exception as exc:  # noqa: BLE001 - one task's failure is its answer, not a crash
            log.error("task=%s target=%s failed: %s", task.id, task.target, exc)
            self._finish(task, "error", str(exc))

    def _finish(self, task: Task, state: str, error: str | None) -> None:
        task.state, task.error = state, error
        task.finished, task.finished_at_s = self._clock(), time.monotonic()
        outcome = "consistent" if task.consistent else "inconsistent"
        outcome = "error" if state == "error" else outcome
        self.outcomes[outcome] += 1
        task.done.set()

    def _prune(self) -> None:
        now = time.monotonic()
        finished = sorted(
            (t for t in self._tasks.values() if t.finished_at_s is not None),
            key=lambda t: t.finished_at_s or 0.0,
        )
        for old in finished:
            expired = now - (old.finished_at_s or now) > 6 * KEEP_S
            if expired or len(self._tasks) >= MAX_TASKS:
                del self._tasks[old.id]

    async def stop(self) -> None:
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
