"""Time skipping (`durahub serve --time-skipping`, `durahub.testing`): while someone waits for an instance and
the engine is idle, move the virtual clock to the next timer instead of waiting for it.

The rules (after Temporal's test server):
- skip only while a wait is in flight: a gRPC WaitForInstanceStart/Completion (what the SDK's
  `wait_for_workflow_*` call), StartInstance waiting for the first turn, an HTTP long-poll, the harness's own;
- skip only when idle: no turn out or queued, no activity out or queued for a connected worker, no result being
  committed, no results gathering. Activities run in real time, so a timer racing one is not skipped past it;
- the SDK's indefinite-wait sentinel is never a timer here (`core.turn` does not schedule it);
- per wait, at most `max_skips` skips and `max_skip_us` of skipped time (an eternal monitor would skip forever);
- idle, a wait in flight and no timer left: after `blocked_after` real seconds (`no_worker_after` when work is
  queued for an app with no worker connected), the waits fail with `WorkflowBlocked`, naming what each
  instance waits on, instead of hanging until the caller's deadline.

Idleness is polled every few milliseconds while a wait is in flight and must hold on two polls in a row: an API
call between two awaits (say, an event being written) shows in no table, but never for that long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from durahub.core.apps import app_of, split_key
from durahub.core.views.summary import summary
from durahub.core.waiting import waiting_on
from durahub.engine.activities import ActivityResults
from durahub.engine.clock import VirtualClock
from durahub.engine.dispatch import Streams
from durahub.engine.scheduler import Scheduler
from durahub.engine.tasks import ActivityTable
from durahub.engine.waiters import Waiters
from durahub.errors import TimeSkippingLimit, WorkflowBlocked
from durahub.protos import pb

log = logging.getLogger("durahub.engine")

POLL_SECONDS = 0.002
IDLE_POLL_SECONDS = 0.02  # nobody waits
SETTLE_POLLS = 2
DEFAULT_MAX_SKIPS = 10_000
DEFAULT_MAX_SKIP_US = 10 * 366 * 86_400 * 1_000_000  # ten years
DEFAULT_BLOCKED_AFTER = 0.5
DEFAULT_NO_WORKER_AFTER = 5.0

History = Callable[[str], Awaitable[list[pb.HistoryEvent] | None]]


class TimeSkipper:
    def __init__(self, clock: VirtualClock, scheduler: Scheduler, tasks: ActivityTable, streams: Streams,
                 activities: ActivityResults, waiters: Waiters, history: History) -> None:
        self.clock = clock
        self._scheduler = scheduler
        self._tasks = tasks
        self._streams = streams
        self._activities = activities
        self._waiters = waiters
        self._history = history
        #: Skip automatically while someone waits (off: only `advance` moves the clock past wall time).
        self.auto = True
        self.max_skips = DEFAULT_MAX_SKIPS
        self.max_skip_us = DEFAULT_MAX_SKIP_US
        #: Real seconds of idleness with nothing to skip to before waits fail (None: never).
        self.blocked_after: float | None = DEFAULT_BLOCKED_AFTER
        self.no_worker_after: float | None = DEFAULT_NO_WORKER_AFTER
        self.skips = 0  # in all, for the log and the harness

    def advance(self, delta_us: int) -> int:
        """Move the clock forward by `delta_us` and schedule every instance whose timer came; how many fired."""
        self.clock.advance(delta_us)
        return self._scheduler.fire_due()

    async def skip(self, delta_us: int) -> None:
        """Let `delta_us` of virtual time pass as it would in real time: timer by timer, each fired and its turns
        run before the clock moves on (an hourly timer fires 24 times in a day), then settle."""
        until = self.clock.now_us() + max(0, delta_us)
        while True:
            await self.settle()
            at = self._scheduler.next_timer()
            if at is None or at > until:
                break
            self.advance(at - self.clock.now_us())
        self.advance(until - self.clock.now_us())
        await self.settle()

    async def settle(self) -> None:
        """Return once nothing is in flight (on two polls in a row)."""
        calm = 0
        while calm < SETTLE_POLLS:
            await asyncio.sleep(POLL_SECONDS)
            calm = 0 if self.busy() else calm + 1

    def busy(self) -> bool:
        """Whether a turn, an activity (with a worker to run it) or a result is in flight."""
        return self._activity()[0]

    def _activity(self) -> tuple[bool, set[str]]:
        """Whether anything is in flight, and the apps with work queued but no worker to run it."""
        if self._scheduler.in_flight() or self._activities.recording():
            return True, set()
        orphaned: set[str] = set()
        for app, queued in self._scheduler.queued().items():
            if queued:
                if self._streams.count(app):
                    return True, set()
                orphaned.add(app)
        for task in self._tasks:
            if task.token or self._streams.count(task.app_id):
                return True, set()  # out with a worker, or about to be
            orphaned.add(task.app_id)
        return False, orphaned

    async def run(self) -> None:
        calm = 0  # idle polls in a row
        idle_since: float | None = None  # real time since when nothing could progress
        skips = 0  # this wait's skips and skipped time
        skipped_us = 0
        while True:
            waited = self._waiters.waited()
            await asyncio.sleep(POLL_SECONDS if waited else IDLE_POLL_SECONDS)
            if not waited:
                calm, idle_since, skips, skipped_us = 0, None, 0, 0
                continue
            busy, orphaned = self._activity()
            if busy:
                calm, idle_since = 0, None
                continue
            calm += 1
            if calm < SETTLE_POLLS:
                continue
            now = self.clock.now_us()
            at = self._scheduler.next_timer()
            if at is not None and self.auto:
                if skips >= self.max_skips or skipped_us + max(0, at - now) > self.max_skip_us:
                    await self._fail(self._waiters.waited(), orphaned, limit=(skips, skipped_us))
                    calm, idle_since, skips, skipped_us = 0, None, 0, 0
                    continue
                skips += 1
                skipped_us += max(0, at - now)
                self.skips += 1
                fired = self.advance(at - now)
                log.debug("event=time_skipped by_us=%d fired=%d", max(0, at - now), fired)
                calm, idle_since = 0, None
                continue
            if at is not None:
                continue  # skipping is off: the timer comes in real time
            grace = self.no_worker_after if orphaned else self.blocked_after
            if grace is None:
                continue
            if idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= grace:
                await self._fail(self._waiters.waited(), orphaned)
                calm, idle_since = 0, None

    async def _fail(self, keys: list[str], orphaned: set[str], limit: tuple[int, int] | None = None) -> None:
        for key in keys:
            reason = await self._describe(key, orphaned)
            if limit is not None:
                days = limit[1] / 86_400e6
                exc: WorkflowBlocked = TimeSkippingLimit(
                    key, f"time skipping stopped after {limit[0]} skips ({days:.1f} days of virtual time) without "
                         f"the wait ending; {reason}")
            else:
                exc = WorkflowBlocked(key, f"the wait cannot end: {reason}")
            log.info("event=wait_blocked instance=%s reason=%r", split_key(key)[1], str(exc))
            self._waiters.fail(key, exc)

    async def _describe(self, key: str, orphaned: set[str]) -> str:
        app_id, instance_id = split_key(key)
        history = await self._history(key)
        if not history:
            if app_of(key) in orphaned:
                return f"workflow '{instance_id}' has not started: no worker of app '{app_id}' is connected"
            return f"workflow '{instance_id}' has not started (no such instance, or not yet run)"
        return waiting_on(summary(history, self.clock.now_us()), app_id, orphaned)
