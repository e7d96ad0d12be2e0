"""The engine: runs turns per instance, feeds work-item streams, wakes waiters and fires timers.

For every turn it asks the core what the worker's answer means, asks the store to make it durable in one
transaction, and only then dispatches what the turn produced. All of it runs on one asyncio loop.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from durahub.config import Config
from durahub.core.rerun import RerunInvalid, RerunNotAllowed, build_rerun
from durahub.core.state import (
    ACTIVE_STATUSES,
    PENDING,
    RUNNING,
    STALLED,
    SUSPENDED,
    TERMINAL_STATUSES,
    InstanceState,
    status_name,
)
from durahub.core.time import ts_to_us, us_to_ts
from durahub.core.turn import (
    MAX_CONTINUE_AS_NEW_LOOPS,
    InboxItem,
    TurnOutcome,
    TurnPlan,
    apply_response,
    continue_as_new_state,
    execution_started,
    force_terminate,
    prepare_turn,
    stall_for_payload,
    start_next_generation,
)
from durahub.protos import pb
from durahub.store.base import (
    InstanceExists,
    InstanceNotFound,
    InstanceQuery,
    InstanceRow,
    LeaseLost,
    NewChild,
    NewInstance,
    Store,
    StoreError,
    TurnCommit,
)

log = logging.getLogger("durahub.engine")

T = TypeVar("T")

INBOX_BATCH = 1000
STATE_CACHE_SIZE = 4096
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
# How many tokens of dispatches lost with their stream are remembered for late answers.
RETIRED_TOKENS = 10_000
# Pause before retrying a turn whose commit failed.
RETRY_DELAY_SECONDS = 1.0
# How many tasks or ready instances one coordination round takes over at most.
CLAIM_BATCH = 100

CAP_STATEFUL_HISTORY = pb.WORKER_CAPABILITY_STATEFUL_HISTORY
CAP_HEALTH_PING = pb.WORKER_CAPABILITY_HEALTH_PING


def now_us() -> int:
    return time.time_ns() // 1000


def _new_id() -> str:
    return str(uuid.uuid4())


class EngineStopping(Exception):
    pass


def _run_to_completion(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Engine mutations finish even if the RPC that asked for them is cancelled (client gone, stream closed):
    a commit whose follow-up (dispatch, wake-ups, ending the turn) was skipped would leave an instance stuck."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> T:
        task = asyncio.ensure_future(fn(*args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(_log_failure)
            raise

    return run


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("event=detached_operation_failed error=%r", exc, exc_info=exc)


class InvalidRequest(Exception):
    """A request no store could keep (the same rule for every backend)."""


def check_text(**fields: str | None) -> None:
    # PostgreSQL text cannot hold NUL; refusing it everywhere keeps both backends alike.
    for name, value in fields.items():
        if value is not None and "\x00" in value:
            raise InvalidRequest(f"{name} must not contain NUL characters")


@dataclass
class Stream:
    """One open GetWorkItems stream: its capabilities and the items it owes an answer for."""

    id: int
    capabilities: frozenset[int]
    outstanding: set[str] = field(default_factory=set)
    closed: bool = False
    # The task serving this stream, so shutdown can end it at once instead of waiting out a grace period.
    task: asyncio.Task[None] | None = None

    @property
    def stateful(self) -> bool:
        return CAP_STATEFUL_HISTORY in self.capabilities

    @property
    def pings(self) -> bool:
        return CAP_HEALTH_PING in self.capabilities


@dataclass
class Turn:
    instance_id: str
    state: InstanceState
    plan: TurnPlan
    replace_history: bool = False
    loops: int = 0
    custom_status: str | None = None
    token: str = ""
    sent_at: float = 0.0


@dataclass
class PendingTask:
    seq: int
    instance_id: str
    generation: int
    task_id: int
    request: pb.ActivityRequest
    token: str = ""


@dataclass
class _OrchJob:
    instance_id: str


@dataclass
class _ContinueJob:
    turn: Turn


@dataclass
class _ActJob:
    seq: int


Job = _OrchJob | _ContinueJob | _ActJob


class Engine:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._ready: set[str] = set()
        self._turns: dict[str, Turn | None] = {}
        self._rerun: set[str] = set()
        # Instances whose id was reset (re-created or purged) while a turn of the old one was out: that turn's
        # answer must not be committed onto the new instance.
        self._stale: set[str] = set()
        self._tokens: dict[str, tuple[Stream, Turn | PendingTask]] = {}
        self._tasks: dict[int, PendingTask] = {}
        # Activities still out per instance, and instances whose next turn waits for more results to gather.
        self._open_tasks: dict[str, int] = {}
        self._coalescing: set[str] = set()
        self._turn_seconds: dict[str, float] = {}
        # Activity results received and being committed per instance, and instances with a committed result
        # whose turn waits for those: a turn started between two commits would see only the first result.
        self._recording: dict[str, int] = {}
        self._recorded: set[str] = set()
        # Tokens of activity dispatches whose stream died, so their late answers can still be matched.
        self._retired: OrderedDict[str, int] = OrderedDict()
        self._task_index: dict[tuple[str, int], int] = {}
        self._states: OrderedDict[str, InstanceState] = OrderedDict()
        # Which stream holds which prefix of an instance's history (stateful-history workers).
        self._worker_cache: dict[str, tuple[int, int, int]] = {}
        self._waiters: dict[str, list[tuple[Callable[[InstanceRow], bool], asyncio.Future[InstanceRow | None]]]] = {}
        self._streams: dict[int, Stream] = {}
        self._stream_ids = itertools.count(1)
        self._timers: list[tuple[int, str]] = []
        self._timer_wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._stopping = False
        # Several engine processes on one shared store: instances and tasks are held under leases.
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        store.owner = self.owner
        self._shared = store.shared
        self._lease_us = int(config.lease_seconds * 1_000_000)
        self._held: dict[str, int] = {}
        self._coordinator_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        now = now_us()
        if self._shared:
            # Other processes may hold tasks: take only what nobody holds, and keep taking (see _coordinate).
            rows = await self.store.claim_tasks(now + self._lease_us, now, CLAIM_BATCH)
            loop = asyncio.get_running_loop()
            self.store.listen(lambda kind, owner, iid: loop.call_soon_threadsafe(self._on_remote, kind, owner, iid))
            self._coordinator_task = asyncio.create_task(self._coordinate(), name="durahub-coordinator")
        else:
            rows = await self.store.pending_tasks()
        for row in rows:
            request = pb.ActivityRequest.FromString(row.payload)
            self._add_task(PendingTask(row.seq, row.instance_id, row.generation, row.task_id, request))
        for instance_id in await self.store.ready_instances(now):
            self._schedule(instance_id)
        for instance_id, at in await self.store.future_wakeups(now):
            heapq.heappush(self._timers, (at, instance_id))
        self._timer_task = asyncio.create_task(self._timer_loop(), name="durahub-timers")
        log.info("event=engine_started tasks=%d ready=%d timers=%d", len(self._tasks), len(self._ready),
                 len(self._timers))

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._timer_task, self._coordinator_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        for waiters in self._waiters.values():
            for _, fut in waiters:
                if not fut.done():
                    fut.set_exception(EngineStopping())
        self._waiters.clear()

    @property
    def connected_workers(self) -> int:
        return len(self._streams)

    # -- coordination between engine processes (shared stores) ----------------------------------------

    def _on_remote(self, kind: str, owner: str, instance_id: str) -> None:
        if owner == self.owner:
            return
        if kind == "i":
            if self._streams:
                self._schedule(instance_id)
        elif kind == "c":
            if instance_id not in self._turns:
                self._forget(instance_id)
                self._held.pop(instance_id, None)
            self._notify(instance_id)

    async def _coordinate(self) -> None:
        """Keep leases on work in hand alive, and pick up work that other processes dropped (by dying)."""
        period = max(0.05, self.config.lease_seconds / 4)
        while True:
            await asyncio.sleep(period)
            try:
                now = now_us()
                until = now + self._lease_us
                in_flight = [i for i, t in self._turns.items() if t is not None]
                for instance_id in in_flight:
                    self._held[instance_id] = until
                if in_flight or self._tasks:
                    await self.store.renew_leases(in_flight, list(self._tasks), until)
                if not self._streams:
                    continue
                for instance_id in await self.store.sweep_ready(now, CLAIM_BATCH):
                    self._schedule(instance_id)
                waiting = sum(1 for t in self._tasks.values() if not t.token)
                if waiting < CLAIM_BATCH:
                    for row in await self.store.claim_tasks(until, now, CLAIM_BATCH):
                        if row.seq not in self._tasks:
                            request = pb.ActivityRequest.FromString(row.payload)
                            self._add_task(PendingTask(row.seq, row.instance_id, row.generation, row.task_id, request))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=coordination_failed")

    async def _lease(self, instance_id: str) -> bool:
        """Hold the instance's lease for this turn; drop a cached state another process has moved past."""
        now = now_us()
        held = self._held.get(instance_id)
        if held is not None and held - now > self._lease_us // 2:
            return True
        got = await self.store.acquire_instance(instance_id, now + self._lease_us, now)
        if got is None:
            self._held.pop(instance_id, None)
            self._forget(instance_id)
            return False
        self._held[instance_id] = now + self._lease_us
        state = self._states.get(instance_id)
        if state is not None and (len(state.history), state.generation) != got:
            self._forget(instance_id)
        return True

    # -- scheduling -----------------------------------------------------------------------------------

    def _schedule(self, instance_id: str) -> None:
        if instance_id in self._turns:
            self._rerun.add(instance_id)
        elif instance_id not in self._ready:
            self._ready.add(instance_id)
            self._jobs.put_nowait(_OrchJob(instance_id))

    def _add_task(self, task: PendingTask) -> None:
        if task.seq not in self._tasks:
            self._open_tasks[task.instance_id] = self._open_tasks.get(task.instance_id, 0) + 1
        self._tasks[task.seq] = task
        self._task_index[(task.instance_id, task.task_id)] = task.seq
        self._jobs.put_nowait(_ActJob(task.seq))

    def _drop_task(self, task: PendingTask) -> None:
        if self._tasks.pop(task.seq, None) is not None:
            left = self._open_tasks.get(task.instance_id, 1) - 1
            if left > 0:
                self._open_tasks[task.instance_id] = left
            else:
                self._open_tasks.pop(task.instance_id, None)
        if self._task_index.get((task.instance_id, task.task_id)) == task.seq:
            del self._task_index[(task.instance_id, task.task_id)]

    def _schedule_gathering(self, instance_id: str) -> None:
        """Schedule a turn, letting a fan-out's activity results gather first.

        The SDK replays the whole history on every turn, so a turn per result is wasted work for the worker
        (quadratic on a long history) and delays the results that arrive during it. While more of the
        instance's activities are still out, wait a moment (see COALESCE_*); the last result schedules at once.
        """
        if instance_id in self._coalescing:
            if instance_id not in self._open_tasks:
                self._schedule(instance_id)
            return
        state = self._states.get(instance_id)
        # As long as the worker's last turn on this history took: it then spends at most half its time
        # replaying, however many results stream in.
        turn_seconds = self._turn_seconds.get(instance_id, 0.0)
        if state is not None and len(state.history) >= COALESCE_LONG_HISTORY:
            delay = min(COALESCE_MAX_SECONDS, max(len(state.history) * COALESCE_SECONDS_PER_EVENT, turn_seconds))
        else:
            delay = min(COALESCE_MAX_SECONDS_SHORT, turn_seconds)
        if instance_id not in self._open_tasks or delay <= 0:
            self._schedule(instance_id)
            return
        self._coalescing.add(instance_id)

        def release() -> None:
            self._coalescing.discard(instance_id)
            self._schedule(instance_id)

        asyncio.get_running_loop().call_later(delay, release)

    def _add_timer(self, at_us: int, instance_id: str) -> None:
        first = self._timers[0][0] if self._timers else None
        heapq.heappush(self._timers, (at_us, instance_id))
        if first is None or at_us < first:
            self._timer_wake.set()

    async def _timer_loop(self) -> None:
        while True:
            now = now_us()
            while self._timers and self._timers[0][0] <= now:
                _, instance_id = heapq.heappop(self._timers)
                self._schedule(instance_id)
            self._timer_wake.clear()
            delay = (self._timers[0][0] - now) / 1e6 if self._timers else None
            try:
                await asyncio.wait_for(self._timer_wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    # -- waiters --------------------------------------------------------------------------------------

    def _notify(self, instance_id: str, row: InstanceRow | None = None) -> None:
        """Wake the instance's waiters. With the committed row in hand, only those it satisfies (they get the
        row and need not read it back); without, all of them, to read it."""
        waiters = self._waiters.get(instance_id)
        if not waiters:
            return
        keep = []
        for predicate, fut in waiters:
            if fut.done():
                continue
            if row is None:
                fut.set_result(None)
            elif predicate(row):
                fut.set_result(row)
            else:
                keep.append((predicate, fut))
        if keep:
            self._waiters[instance_id] = keep
        else:
            del self._waiters[instance_id]

    async def wait_for(
        self, instance_id: str, predicate: Callable[[InstanceRow], bool], timeout: float | None = None
    ) -> InstanceRow | None:
        """Long-poll until the instance's committed state satisfies `predicate`. None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Registered before the read, so no commit can slip between the two unseen.
            fut: asyncio.Future[InstanceRow | None] = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(instance_id, []).append((predicate, fut))
            try:
                row = await self.get_instance(instance_id)
                remaining = None if deadline is None else deadline - time.monotonic()
                if row is not None and predicate(row):
                    return row
                if remaining is not None and remaining <= 0:
                    return None
                try:
                    committed = await asyncio.wait_for(fut, timeout=remaining)
                except TimeoutError:
                    return None
                if committed is not None:
                    return committed  # the commit that woke us satisfies the predicate
            finally:
                waiters = self._waiters.get(instance_id)
                if waiters is not None:
                    self._waiters[instance_id] = [w for w in waiters if w[1] is not fut]
                    if not self._waiters[instance_id]:
                        del self._waiters[instance_id]

    # -- client operations ----------------------------------------------------------------------------

    @_run_to_completion
    async def start_instance(
        self, instance_id: str, name: str, input: str | None, scheduled_us: int | None = None
    ) -> None:
        check_text(instance_id=instance_id, name=name, input=input)
        now = now_us()
        start = execution_started(now, instance_id, _new_id(), name, input, scheduled_us=scheduled_us,
                                  app_id=self.config.app_id)
        visible = scheduled_us if scheduled_us is not None and scheduled_us > now else 0
        # On a shared store, an engine with workers connected runs what it creates: the lease is taken in the
        # creating transaction rather than by a write of its own before the first turn. An engine without
        # workers leaves the instance to the others.
        lease_until = now + self._lease_us if self._shared and self._streams and not visible else None
        await self.store.create_instance(
            NewInstance(instance_id=instance_id, name=name, created_us=now, input=input,
                        start_event=start.SerializeToString(), visible_us=visible,
                        lease_owner=self.owner if lease_until else None, lease_until_us=lease_until)
        )
        self._reset(instance_id)
        if lease_until:
            self._held[instance_id] = lease_until
        # Known without reading it back: a new instance has no history yet.
        self._cache_state(InstanceState.from_history(instance_id, 0, []))
        log.info("event=instance_created instance=%s workflow=%s", instance_id, name)
        self._notify(instance_id)
        if visible:
            self._add_timer(visible, instance_id)
        else:
            self._schedule(instance_id)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        if "\x00" in instance_id:
            return None  # no such id can exist
        return await self.store.get_instance(instance_id)

    async def _enqueue(self, instance_id: str, event: pb.HistoryEvent, reject_stalled: bool = False) -> bool:
        check_text(instance_id=instance_id)
        accepted = await self.store.enqueue(instance_id, event.SerializeToString(), reject_stalled=reject_stalled)
        if accepted:
            self._schedule(instance_id)
        return accepted

    @_run_to_completion
    async def raise_event(self, instance_id: str, name: str, input: str | None) -> None:
        check_text(event_name=name, event_data=input)
        ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us()))
        ev.eventRaised.name = name
        if input is not None:
            ev.eventRaised.input.value = input
        await self._enqueue(instance_id, ev, reject_stalled=True)
        log.info("event=event_raised instance=%s name=%s", instance_id, name)

    @_run_to_completion
    async def terminate(self, instance_id: str, output: str | None, recursive: bool) -> None:
        check_text(output=output)
        await self._enqueue(instance_id, _terminate_event(output, recursive))
        log.info("event=terminate_requested instance=%s recursive=%s", instance_id, recursive)

    @_run_to_completion
    async def suspend(self, instance_id: str, reason: str | None) -> None:
        check_text(reason=reason)
        ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us()))
        ev.executionSuspended.SetInParent()
        if reason:
            ev.executionSuspended.input.value = reason
        await self._enqueue(instance_id, ev)
        log.info("event=suspend_requested instance=%s", instance_id)

    @_run_to_completion
    async def resume(self, instance_id: str, reason: str | None) -> None:
        check_text(reason=reason)
        ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us()))
        ev.executionResumed.SetInParent()
        if reason:
            ev.executionResumed.input.value = reason
        await self._enqueue(instance_id, ev)
        log.info("event=resume_requested instance=%s", instance_id)

    @_run_to_completion
    async def purge(self, instance_id: str, recursive: bool, force: bool = False) -> int:
        check_text(instance_id=instance_id)
        purged = await self.store.purge(instance_id, recursive, force)
        for gone in purged:
            self._reset(gone)
        log.info("event=purged instance=%s recursive=%s count=%d", instance_id, recursive, len(purged))
        return len(purged)

    @_run_to_completion
    async def purge_matching(self, query: InstanceQuery) -> int:
        """Purge each finished instance the query matches (recursively). Active ones are left alone."""
        check_text(name=query.name, id_prefix=query.id_prefix, parent_id=query.parent_id)
        query.statuses = [s for s in (query.statuses or TERMINAL_STATUSES) if s in TERMINAL_STATUSES]
        count = 0
        while query.statuses:
            rows = await self.store.query_instances(query)
            for row in rows:
                try:
                    count += await self.purge(row.instance_id, recursive=True)
                except StoreError:
                    pass  # purged as someone's child meanwhile, or no longer finished
            if len(rows) < query.limit:
                break
            query.after = (rows[-1].created_us, rows[-1].instance_id)
        return count

    @_run_to_completion
    async def terminate_matching(self, query: InstanceQuery, output: str | None) -> int:
        """Request termination of each active instance the query matches. Returns how many were accepted."""
        check_text(output=output, name=query.name, id_prefix=query.id_prefix, parent_id=query.parent_id)
        active = [s for s in (query.statuses or ACTIVE_STATUSES) if s in ACTIVE_STATUSES]
        query.statuses = list(active)
        count = 0
        while query.statuses:
            rows = await self.store.query_instances(query)
            for row in rows:
                try:
                    if await self._enqueue(row.instance_id, _terminate_event(output, True)):
                        count += 1
                except StoreError:
                    pass
            if len(rows) < query.limit:
                break
            query.after = (rows[-1].created_us, rows[-1].instance_id)
        return count

    async def history(self, instance_id: str) -> list[pb.HistoryEvent] | None:
        if await self.get_instance(instance_id) is None:
            return None
        return [pb.HistoryEvent.FromString(b) for b in await self.store.load_history(instance_id)]

    async def list_instance_ids(self, after: str | None, limit: int) -> list[str]:
        check_text(continuation_token=after)
        return await self.store.list_instance_ids(after, limit)

    async def query_instances(self, query: InstanceQuery) -> list[InstanceRow]:
        check_text(name=query.name, id_prefix=query.id_prefix, parent_id=query.parent_id,
                   after=query.after[1] if query.after else None)
        return await self.store.query_instances(query)

    def _forget(self, instance_id: str) -> None:
        self._states.pop(instance_id, None)
        self._worker_cache.pop(instance_id, None)
        self._turn_seconds.pop(instance_id, None)

    def _reset(self, instance_id: str) -> None:
        """The id now names a new instance (re-created) or none (purged): nothing remembered of the old one
        may be used for it — cached state, activities still queued, a lease, a turn still out."""
        self._forget(instance_id)
        self._held.pop(instance_id, None)
        if instance_id in self._open_tasks:
            self._drop_instance_tasks(instance_id, keep_generation=None)
        if instance_id in self._turns:
            self._stale.add(instance_id)

    @_run_to_completion
    async def rerun_from_event(
        self, source_id: str, event_id: int, new_id: str | None, input: str | None, overwrite_input: bool,
        new_child_id: str = "",
    ) -> str:
        """Copy a finished instance's history up to one of its scheduling events into a new instance and
        re-run from there (the event and any work unfinished before it are scheduled again). Returns the new
        instance's id (a fresh one when `new_id` is not given)."""
        check_text(source_instance_id=source_id, new_instance_id=new_id, input=input,
                   new_child_instance_id=new_child_id)
        row = await self.get_instance(source_id)
        if row is None:
            raise InstanceNotFound(source_id)
        if row.status not in TERMINAL_STATUSES:
            raise RerunNotAllowed(f"workflow instance '{source_id}' is not in a terminal state")
        if row.parent_instance_id:
            raise RerunNotAllowed(f"workflow instance '{source_id}' is a child workflow and cannot be rerun")
        new_id = new_id or _new_id()
        if new_id == source_id:
            raise RerunInvalid("new instance ID must differ from the source instance ID")
        history = await self.history(source_id)
        if history is None:
            raise InstanceNotFound(source_id)
        now = now_us()
        plan = build_rerun(history, source_id, event_id, new_id, _new_id(), input, overwrite_input, now, new_child_id)
        new = NewInstance(instance_id=new_id, name=plan.state.name, created_us=now, input=plan.state.input,
                          start_event=b"")
        status = RUNNING
        seqs = await self.store.create_with_history(
            new, status, [e.SerializeToString() for e in plan.state.history],
            [(t.generation, t.task_id, t.request.SerializeToString()) for t in plan.tasks],
            [(t.generation, t.fire_at_us, t.event.SerializeToString()) for t in plan.timers],
            plan.state.execution_id, now,
        )
        self._forget(new_id)
        for seq, task in zip(seqs, plan.tasks, strict=True):
            self._add_task(PendingTask(seq, new_id, task.generation, task.task_id, task.request))
        for timer in plan.timers:
            self._add_timer(timer.fire_at_us, new_id)
        for child in plan.children:
            try:
                await self.store.create_instance(
                    NewInstance(instance_id=child.instance_id, name=child.name, created_us=now, input=None,
                                start_event=child.start_event.SerializeToString(), parent_instance_id=new_id,
                                parent_task_id=child.parent_task_id)
                )
                self._reset(child.instance_id)
                self._schedule(child.instance_id)
            except InstanceExists:
                await self.store.enqueue(new_id, child.conflict_event.SerializeToString())
                self._schedule(new_id)
        self._notify(new_id)
        log.info("event=rerun instance=%s source=%s from_event=%d", new_id, source_id, event_id)
        return new_id

    # -- worker streams -------------------------------------------------------------------------------

    def end_streams(self) -> None:
        """Shutdown: end every work-item stream now; workers reconnect (to this engine once it is back)."""
        for stream in list(self._streams.values()):
            if stream.task is not None:
                stream.task.cancel()

    def open_stream(self, capabilities: list[int]) -> Stream:
        stream = Stream(id=next(self._stream_ids), capabilities=frozenset(capabilities), task=asyncio.current_task())
        self._streams[stream.id] = stream
        log.info("event=worker_connected stream=%d capabilities=%s workers=%d", stream.id, sorted(capabilities),
                 len(self._streams))
        asyncio.get_running_loop().create_task(self._retry_stalled())
        return stream

    async def _retry_stalled(self) -> None:
        # A (re)connecting worker may carry new code: give stalled instances another try.
        for instance_id in await self.store.instances_with_status(STALLED):
            self._forget(instance_id)
            self._schedule(instance_id)

    def close_stream(self, stream: Stream) -> None:
        stream.closed = True
        self._streams.pop(stream.id, None)
        requeued = 0
        for token in list(stream.outstanding):
            entry = self._tokens.pop(token, None)
            if entry is None:
                continue
            item = entry[1]
            requeued += 1
            if isinstance(item, Turn):
                self._end_turn(item.instance_id, reschedule=True)
            elif item.seq in self._tasks:
                item.token = ""
                self._retired[token] = item.seq
                while len(self._retired) > RETIRED_TOKENS:
                    self._retired.popitem(last=False)
                self._jobs.put_nowait(_ActJob(item.seq))
        stream.outstanding.clear()
        for instance_id, (stream_id, _, _) in list(self._worker_cache.items()):
            if stream_id == stream.id:
                del self._worker_cache[instance_id]
        log.info("event=worker_disconnected stream=%d requeued=%d workers=%d", stream.id, requeued,
                 len(self._streams))

    async def next_work_item(self, stream: Stream) -> pb.WorkItem:
        """The next item for this stream; a health ping after an idle spell for workers that want them."""
        while True:
            try:
                job = await asyncio.wait_for(
                    self._jobs.get(), timeout=self.config.health_ping_seconds if stream.pings else None
                )
            except TimeoutError:
                item = pb.WorkItem()
                item.healthPing.SetInParent()
                return item
            if stream.closed:
                self._jobs.put_nowait(job)
                raise asyncio.CancelledError()
            item = await self._materialize(job, stream)
            if item is not None:
                return item

    async def _materialize(self, job: Job, stream: Stream) -> pb.WorkItem | None:
        if isinstance(job, _ActJob):
            task = self._tasks.get(job.seq)
            if task is None or task.token:
                return None
            task.token = _new_id()
            self._tokens[task.token] = (stream, task)
            stream.outstanding.add(task.token)
            return pb.WorkItem(activityRequest=task.request, completionToken=task.token)
        if isinstance(job, _ContinueJob):
            turn = job.turn
            if self._turns.get(turn.instance_id) is not turn:
                return None
            return self._workflow_item(turn, stream)
        instance_id = job.instance_id
        self._ready.discard(instance_id)
        if instance_id in self._turns:
            self._rerun.add(instance_id)
            return None
        self._turns[instance_id] = None  # claimed while the turn loads
        try:
            turn = await self._begin_turn(instance_id)
        except asyncio.CancelledError:
            self._end_turn(instance_id, reschedule=True)  # the stream went away while the turn loaded
            raise
        except Exception:
            log.exception("event=turn_load_failed instance=%s", instance_id)
            self._end_turn(instance_id, reschedule=False)
            return None
        if turn is None:
            self._end_turn(instance_id, reschedule=False)
            return None
        if stream.closed:
            self._end_turn(instance_id, reschedule=True)
            return None
        self._turns[instance_id] = turn
        size = turn.state.history_bytes + sum(e.ByteSize() + 6 for e in turn.plan.new_events)
        budget = int(self.config.max_message_bytes * 0.95)
        if size > budget:
            # The worker could not receive it: stall (like daprd) instead of killing its stream.
            await self._commit(turn, stall_for_payload(turn.state, turn.plan, size, budget, now_us()))
            return None
        return self._workflow_item(turn, stream)

    def _workflow_item(self, turn: Turn, stream: Stream) -> pb.WorkItem:
        state = turn.state
        request = pb.WorkflowRequest(instanceId=turn.instance_id, newEvents=turn.plan.new_events)
        if state.execution_id:
            request.executionId.value = state.execution_id
        hint = self._worker_cache.get(turn.instance_id)
        history = state.history
        if stream.stateful and hint is not None and hint[0] == stream.id and hint[1] == state.generation \
                and hint[2] <= len(history):
            request.cachedHistory.eventCount = hint[2]
            request.pastEvents.extend(history[hint[2]:])
        else:
            request.pastEvents.extend(history)
        if stream.stateful:
            self._worker_cache[turn.instance_id] = (stream.id, state.generation, len(history))
        turn.token = _new_id()
        turn.sent_at = time.monotonic()
        self._tokens[turn.token] = (stream, turn)
        stream.outstanding.add(turn.token)
        return pb.WorkItem(workflowRequest=request, completionToken=turn.token)

    async def _load_state(self, instance_id: str) -> InstanceState | None:
        state = self._states.get(instance_id)
        if state is not None:
            self._states.move_to_end(instance_id)
            return state
        row = await self.store.get_instance(instance_id)
        if row is None:
            return None
        history = [pb.HistoryEvent.FromString(b) for b in await self.store.load_history(instance_id)]
        state = InstanceState.from_history(instance_id, row.generation, history)
        self._worker_cache.pop(instance_id, None)
        self._cache_state(state)
        return state

    def _cache_state(self, state: InstanceState) -> None:
        self._states[state.instance_id] = state
        self._states.move_to_end(state.instance_id)
        while len(self._states) > STATE_CACHE_SIZE:
            evicted, _ = self._states.popitem(last=False)
            self._worker_cache.pop(evicted, None)

    async def _begin_turn(self, instance_id: str) -> Turn | None:
        if self._shared and not await self._lease(instance_id):
            return None  # another engine process runs this instance's turns
        state = await self._load_state(instance_id)
        if state is None:
            return None
        now = now_us()
        rows = await self.store.load_inbox(instance_id, now, INBOX_BATCH)
        if not rows:
            return None
        inbox = [InboxItem(r.seq, pb.HistoryEvent.FromString(r.payload), r.generation) for r in rows]
        if state.is_terminal and any(i.event.HasField("executionStarted") for i in inbox):
            # A finished instance with a start queued was re-created by someone this engine did not hear from
            # in time: what it remembers is of the old instance.
            self._forget(instance_id)
            state = await self._load_state(instance_id)
            if state is None:
                return None
        plan = prepare_turn(state, inbox, now)
        if len(rows) == INBOX_BATCH and (plan.runnable or plan.consumed):
            self._rerun.add(instance_id)  # more is queued than one turn takes: another turn follows
        if not plan.runnable:
            if plan.consumed:
                await self.store.consume_inbox(instance_id, plan.consumed)
            return None
        turn = Turn(instance_id=instance_id, state=state, plan=plan)
        if state.status == STALLED and plan.terminate is not None:
            # A stalled instance cannot run a turn, but it can always be terminated.
            self._turns[instance_id] = turn
            await self._commit(turn, force_terminate(state, plan, now, self.config.app_id))
            return None
        return turn

    def _end_turn(self, instance_id: str, reschedule: bool) -> None:
        self._turns.pop(instance_id, None)
        self._stale.discard(instance_id)
        if instance_id in self._rerun or reschedule:
            self._rerun.discard(instance_id)
            self._schedule_gathering(instance_id)

    # -- completions ----------------------------------------------------------------------------------

    def _claim(self, token: str, matches: Callable[[Turn | PendingTask], bool]) -> Turn | PendingTask | None:
        """Take the outstanding item a completion answers, if the completion really is for it."""
        entry = self._tokens.get(token)
        if entry is None or not matches(entry[1]):
            return None  # unknown, late, or someone else's token: the item stays outstanding
        del self._tokens[token]
        entry[0].outstanding.discard(token)
        return entry[1]

    @_run_to_completion
    async def complete_workflow_task(self, response: pb.WorkflowResponse) -> None:
        def matches(item: Turn | PendingTask) -> bool:
            return isinstance(item, Turn) and item.instance_id == response.instanceId

        token = response.completionToken
        if not token:
            # Workers that do not echo tokens: one turn per instance is outstanding, so the id identifies it.
            turn = self._turns.get(response.instanceId)
            token = turn.token if turn is not None else ""
        item = self._claim(token, matches) if token else None
        if not isinstance(item, Turn):
            log.info("event=late_workflow_completion_ignored instance=%s", response.instanceId)
            return
        turn = item
        instance_id = turn.instance_id
        self._turn_seconds[instance_id] = time.monotonic() - turn.sent_at
        try:
            outcome = apply_response(turn.state, turn.plan, response, now_us(), _new_id, self.config.app_id)
            if outcome.continue_as_new is not None:
                if turn.loops < MAX_CONTINUE_AS_NEW_LOOPS:
                    self._continue_as_new(turn, outcome)
                    return
                # A tight loop: keep what it did so far, and run the next generation in a turn of its own.
                log.info("event=continue_as_new_saved instance=%s loops=%d", instance_id, turn.loops)
                outcome = start_next_generation(turn.state, outcome)
            await self._commit(turn, outcome)
        except Exception:
            log.exception("event=turn_commit_failed instance=%s", instance_id)
            self._forget(instance_id)
            # Retry later, not in a tight loop: a full disk or a lost database does not heal in microseconds.
            self._end_turn(instance_id, reschedule=False)
            asyncio.get_running_loop().call_later(RETRY_DELAY_SECONDS, self._schedule, instance_id)

    def _continue_as_new(self, turn: Turn, outcome: TurnOutcome) -> None:
        assert outcome.continue_as_new is not None
        turn.loops += 1
        turn.state = continue_as_new_state(turn.state)
        turn.plan = TurnPlan(consumed=turn.plan.consumed, new_events=outcome.continue_as_new)
        turn.replace_history = True
        turn.custom_status = outcome.custom_status
        # The cached state now holds this turn's uncommitted events; should the turn be abandoned, the next
        # one must start from what is committed.
        self._forget(turn.instance_id)
        log.info("event=continued_as_new instance=%s generation=%d", turn.instance_id, turn.state.generation)
        self._jobs.put_nowait(_ContinueJob(turn))

    @_run_to_completion
    async def _commit(self, turn: Turn, outcome: TurnOutcome) -> None:
        instance_id = turn.instance_id
        if instance_id in self._stale:
            # The instance was purged or re-created while this turn was out: its answer belongs to no one.
            log.info("event=stale_turn_dropped instance=%s", instance_id)
            self._forget(instance_id)
            self._end_turn(instance_id, reschedule=True)
            return
        state = outcome.state
        if outcome.stalled:
            start = len(state.history)
            events = [e.SerializeToString() for e in outcome.appended]
            await self.store.commit_stall(instance_id, start, events, now_us())
            for ev in outcome.appended:
                state.append(ev)
            self._turns.pop(instance_id, None)
            self._rerun.discard(instance_id)
            self._notify(instance_id)
            log.warning("event=workflow_stalled instance=%s reason=%s", instance_id,
                        state.stall.description if state.stall else "")
            return
        replace = turn.replace_history or outcome.replace_history
        history_start = 0 if replace else len(state.history) - len(outcome.appended)
        events = state.history if replace else outcome.appended
        failure = state.failure
        parent = state.parent
        commit = TurnCommit(
            instance_id=instance_id,
            # A generation saved before its first turn (inbox_front holds its start) is running already.
            status=RUNNING if outcome.inbox_front else state.status,
            name=state.name,
            execution_id=state.execution_id,
            generation=state.generation,
            created_us=state.created_us,
            updated_us=state.updated_us,
            input=state.input,
            output=state.output,
            failure=failure.SerializeToString() if failure is not None else None,
            custom_status=outcome.custom_status,
            parent_instance_id=parent.workflowInstance.instanceId if parent is not None else None,
            parent_task_id=parent.taskScheduledId if parent is not None else None,
            history_start=history_start,
            events=[e.SerializeToString() for e in events],
            replace_history=replace,
            consumed=outcome.consumed,
            tasks=[(t.generation, t.task_id, t.request.SerializeToString()) for t in outcome.tasks],
            timers=[(t.generation, t.fire_at_us, t.event.SerializeToString()) for t in outcome.timers],
            children=[
                NewChild(c.instance_id, c.name, ts_to_us(c.start_event.timestamp), c.start_event.SerializeToString(),
                         c.conflict_event.SerializeToString(), c.parent_task_id)
                for c in outcome.children
            ],
            messages=[(m.target, m.event.SerializeToString()) for m in outcome.messages],
            inbox_front=[e.SerializeToString() for e in outcome.inbox_front],
        )
        if self._shared:
            commit.owner = self.owner
            commit.lease_until = now_us() + self._lease_us
        try:
            result = await self.store.commit_turn(commit)
        except LeaseLost:
            # Another process took the instance over (this one stalled past its lease): it redoes the turn.
            log.warning("event=lease_lost instance=%s", instance_id)
            self._forget(instance_id)
            self._held.pop(instance_id, None)
            self._turns.pop(instance_id, None)
            self._rerun.discard(instance_id)
            return
        if commit.lease_until is not None:
            self._held[instance_id] = commit.lease_until
        # Durable: now dispatch what the turn produced.
        if replace:
            self._drop_instance_tasks(instance_id, keep_generation=state.generation)
        self._cache_state(state)
        status = state.status
        if status in TERMINAL_STATUSES:
            self._drop_instance_tasks(instance_id, keep_generation=None)
            self._turn_seconds.pop(instance_id, None)
            log.info("event=workflow_finished instance=%s workflow=%s status=%s", instance_id, state.name,
                     status_name(status))
        for seq, task in zip(result.task_seqs, outcome.tasks, strict=True):
            self._add_task(PendingTask(seq, instance_id, task.generation, task.task_id, task.request))
        for timer in outcome.timers:
            self._add_timer(timer.fire_at_us, instance_id)
        for created in result.created:
            self._reset(created)
        for woken in result.woken:
            if woken != instance_id:
                self._schedule(woken)
        if instance_id in self._waiters:  # the row is built only for someone waiting on it
            self._notify(instance_id, _committed_row(commit))
        self._end_turn(instance_id, reschedule=instance_id in result.woken)

    def _drop_instance_tasks(self, instance_id: str, keep_generation: int | None) -> None:
        for task in [t for t in self._tasks.values() if t.instance_id == instance_id]:
            if keep_generation is None or task.generation != keep_generation:
                self._drop_task(task)

    @_run_to_completion
    async def complete_activity_task(self, response: pb.ActivityResponse) -> None:
        def matches(item: Turn | PendingTask) -> bool:
            return (isinstance(item, PendingTask) and item.instance_id == response.instanceId
                    and item.task_id == response.taskId)

        token = response.completionToken
        task: PendingTask | None = None
        if token:
            item = self._claim(token, matches)
            if isinstance(item, PendingTask):
                task = item
            else:
                # A late answer from a dropped stream still counts if its task has not been completed yet.
                # The retired token names the exact task: task ids restart after continue-as-new, so
                # (instance, task id) alone could match a newer generation's task.
                seq = self._retired.get(token)
                task = self._tasks.get(seq) if seq is not None else None
        else:
            # Workers that do not echo tokens: the current generation's task with that id.
            seq = self._task_index.get((response.instanceId, response.taskId))
            task = self._tasks.get(seq) if seq is not None else None
        if task is not None and task.token:
            self._claim(task.token, matches)
        if task is None or not matches(task):
            log.info("event=late_activity_completion_ignored instance=%s task=%d", response.instanceId,
                     response.taskId)
            return
        # Out of the dispatch maps while the result is being recorded, so a duplicate answer is ignored.
        self._drop_task(task)
        ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us()))
        if response.HasField("failureDetails"):
            ev.taskFailed.taskScheduledId = task.task_id
            ev.taskFailed.failureDetails.CopyFrom(response.failureDetails)
            ev.taskFailed.taskExecutionId = task.request.taskExecutionId
        else:
            ev.taskCompleted.taskScheduledId = task.task_id
            if response.HasField("result"):
                ev.taskCompleted.result.CopyFrom(response.result)
            ev.taskCompleted.taskExecutionId = task.request.taskExecutionId
        instance_id = task.instance_id
        self._recording[instance_id] = self._recording.get(instance_id, 0) + 1
        recorded = False
        try:
            recorded = await self.store.complete_task(task.seq, instance_id, task.generation,
                                                      ev.SerializeToString())
        except Exception:
            # Not recorded: the task runs again (at least once); the worker is told to expect a re-dispatch.
            task.token = ""
            self._add_task(task)
            raise
        finally:
            self._result_committed(instance_id, recorded)

    def _result_committed(self, instance_id: str, recorded: bool) -> None:
        """One activity result's commit ended. The last of the instance's results being committed schedules the
        turn (gathering), so results that arrived together are delivered in one turn."""
        left = self._recording[instance_id] - 1
        if left:
            self._recording[instance_id] = left
        else:
            del self._recording[instance_id]
        if recorded:
            self._recorded.add(instance_id)
        if left or instance_id not in self._recorded:
            return
        self._recorded.discard(instance_id)
        self._schedule_gathering(instance_id)


def _committed_row(c: TurnCommit) -> InstanceRow:
    """The instance's row exactly as `commit_turn` has just written it."""
    return InstanceRow(
        instance_id=c.instance_id, name=c.name, status=c.status, execution_id=c.execution_id,
        generation=c.generation, created_us=c.created_us, updated_us=c.updated_us,
        completed_us=c.updated_us if c.status in TERMINAL_STATUSES else None, input=c.input, output=c.output,
        custom_status=c.custom_status, failure=c.failure, parent_instance_id=c.parent_instance_id,
        parent_task_id=c.parent_task_id, history_len=c.history_start + len(c.events),
    )


def _terminate_event(output: str | None, recursive: bool) -> pb.HistoryEvent:
    ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us()))
    ev.executionTerminated.recurse = recursive
    if output is not None:
        ev.executionTerminated.input.value = output
    return ev


def is_started(row: InstanceRow) -> bool:
    return row.status != PENDING


def is_finished(row: InstanceRow) -> bool:
    return row.status in TERMINAL_STATUSES


def is_suspended_or_finished(row: InstanceRow) -> bool:
    return row.status == SUSPENDED or row.status in TERMINAL_STATUSES


def is_running_or_finished(row: InstanceRow) -> bool:
    return row.status == RUNNING or row.status in TERMINAL_STATUSES


__all__ = [
    "Engine",
    "EngineStopping",
    "InvalidRequest",
    "InstanceExists",
    "InstanceNotFound",
    "Stream",
    "is_finished",
    "is_running_or_finished",
    "is_started",
    "is_suspended_or_finished",
]
