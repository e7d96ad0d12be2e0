"""When an instance gets its next turn: the job queue workers pull from, one turn per instance at a time,
result gathering, and timers.

A timer is an inbox row whose `visible_us` is its fire time (written with the turn that created it). This
module keeps a heap of those times and, when one comes, schedules the instance: its turn then loads the rows
visible by now, and `core.turn.prepare_turn` stamps the actual fire time on the timerFired event.
"""

from __future__ import annotations

import asyncio
import heapq

from durahub.core.apps import app_of
from durahub.engine.cache import StateCache
from durahub.engine.clock import Clock
from durahub.engine.tasks import ActivityTable
from durahub.engine.work import ActivityJob, ContinueJob, Job, OrchestrationJob, Turn

# Gathering activity results before the next turn while more of the instance's activities are out: an early
# turn costs the worker a whole replay, and the later results then wait for it. The wait is at most as long as
# the worker's last turn on the instance took (so it never costs more than the turn it saves), capped at 5 ms
# on short histories (a workflow that needs only the first of several results loses little) and at 1 s on
# histories of 1,000+ events, where it is also at least 1 microsecond per event. The last result schedules
# the turn at once.
COALESCE_LONG_HISTORY = 1000
COALESCE_SECONDS_PER_EVENT = 1e-6
COALESCE_MAX_SECONDS_SHORT = 0.005
COALESCE_MAX_SECONDS = 1.0


class Scheduler:
    def __init__(self, cache: StateCache, tasks: ActivityTable, clock: Clock | None = None) -> None:
        self._cache = cache
        self._tasks = tasks
        self.clock = clock or Clock()
        # One job queue per app: an app's turns and activities go only to its own workers. A queue with no
        # worker of its app keeps its jobs until one connects.
        self._queues: dict[str, asyncio.Queue[Job]] = {}
        self._ready: set[str] = set()
        # Instances with a turn in hand: the turn, or None while it loads.
        self.turns: dict[str, Turn | None] = {}
        # Instances that got new work during their turn: another turn follows it.
        self._again: set[str] = set()
        # Instances whose id was reset (re-created or purged) while a turn of the old one was out: that turn's
        # answer must not be committed onto the new instance.
        self.stale: set[str] = set()
        self._gathering: set[str] = set()
        self._timers: list[tuple[int, str]] = []
        self._timer_wake = asyncio.Event()

    def queue(self, app_id: str) -> asyncio.Queue[Job]:
        """The job queue of an app's workers."""
        jobs = self._queues.get(app_id)
        if jobs is None:
            jobs = self._queues[app_id] = asyncio.Queue()
        return jobs

    def queued(self) -> dict[str, int]:
        """Jobs waiting per app (for the apps listing)."""
        return {app: q.qsize() for app, q in self._queues.items()}

    def schedule(self, instance_id: str) -> None:
        if instance_id in self.turns:
            self._again.add(instance_id)
        elif instance_id not in self._ready:
            self._ready.add(instance_id)
            self.queue(app_of(instance_id)).put_nowait(OrchestrationJob(instance_id))

    def again(self, instance_id: str) -> None:
        """Another turn follows the current one."""
        self._again.add(instance_id)

    def taken(self, instance_id: str) -> None:
        """A worker took the instance's job off the queue."""
        self._ready.discard(instance_id)

    def dispatch_task(self, seq: int, app_id: str) -> None:
        self.queue(app_id).put_nowait(ActivityJob(seq))

    def continue_turn(self, turn: Turn) -> None:
        self.queue(app_of(turn.instance_id)).put_nowait(ContinueJob(turn))

    def end_turn(self, instance_id: str, reschedule: bool) -> None:
        self.turns.pop(instance_id, None)
        self.stale.discard(instance_id)
        if instance_id in self._again or reschedule:
            self._again.discard(instance_id)
            self.gather(instance_id)

    def drop_turn(self, instance_id: str) -> None:
        """The turn ended with nothing to follow (its instance stalled, or another process took it over)."""
        self.turns.pop(instance_id, None)
        self._again.discard(instance_id)
        self.stale.discard(instance_id)

    def gather(self, instance_id: str) -> None:
        """Schedule a turn, letting a fan-out's activity results gather first.

        The SDK replays the whole history on every turn, so a turn per result is wasted work for the worker
        (quadratic on a long history) and delays the results that arrive during it. While more of the
        instance's activities are still out, wait a moment (see COALESCE_*); the last result schedules at once.
        """
        if instance_id in self._gathering:
            if not self._tasks.has_open(instance_id):
                self.schedule(instance_id)
            return
        state = self._cache.get(instance_id)
        # As long as the worker's last turn on this history took: it then spends at most half its time
        # replaying, however many results stream in.
        turn_seconds = self._cache.turn_seconds.get(instance_id, 0.0)
        if state is not None and len(state.history) >= COALESCE_LONG_HISTORY:
            delay = min(COALESCE_MAX_SECONDS, max(len(state.history) * COALESCE_SECONDS_PER_EVENT, turn_seconds))
        else:
            delay = min(COALESCE_MAX_SECONDS_SHORT, turn_seconds)
        if not self._tasks.has_open(instance_id) or delay <= 0:
            self.schedule(instance_id)
            return
        self._gathering.add(instance_id)

        def release() -> None:
            self._gathering.discard(instance_id)
            self.schedule(instance_id)

        asyncio.get_running_loop().call_later(delay, release)

    # -- timers ---------------------------------------------------------------------------------------

    def add_timer(self, at_us: int, instance_id: str) -> None:
        first = self._timers[0][0] if self._timers else None
        heapq.heappush(self._timers, (at_us, instance_id))
        if first is None or at_us < first:
            self._timer_wake.set()

    @property
    def ready_count(self) -> int:
        return len(self._ready)

    def ready(self) -> list[str]:
        """Instances with a turn queued, not yet taken by a worker."""
        return list(self._ready)

    @property
    def timer_count(self) -> int:
        return len(self._timers)

    def next_timer(self) -> int | None:
        """When the earliest timer (or scheduled start) comes, if any is set."""
        return self._timers[0][0] if self._timers else None

    def fire_due(self) -> int:
        """Schedule each instance whose timer has come (by the clock); how many timers that was."""
        now = self.clock.now_us()
        fired = 0
        while self._timers and self._timers[0][0] <= now:
            _, instance_id = heapq.heappop(self._timers)
            self.schedule(instance_id)
            fired += 1
        self._timer_wake.set()  # the loop below recomputes its sleep (the clock may have jumped)
        return fired

    def in_flight(self) -> bool:
        """Whether a turn is out, follows one, or waits for results to gather (the time skipper's idle test)."""
        return bool(self.turns or self._again or self._gathering)

    async def run_timers(self) -> None:
        """Schedule each instance whose timer (or scheduled start) has come."""
        while True:
            self.fire_due()
            self._timer_wake.clear()
            now = self.clock.now_us()
            delay = (self._timers[0][0] - now) / 1e6 if self._timers else None
            try:
                await asyncio.wait_for(self._timer_wake.wait(), timeout=delay)
            except TimeoutError:
                pass
