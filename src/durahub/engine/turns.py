"""Orchestration turns: load an instance's state and inbox, send the turn to a worker, apply its answer
(`core.turn`), and make the outcome durable in one transaction before anything it produced is dispatched."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

from durahub.config import Config
from durahub.core.apps import instance_key
from durahub.core.state import RUNNING, STALLED, TERMINAL_STATUSES, status_name
from durahub.core.time import ts_to_us
from durahub.core.turn import (
    MAX_CONTINUE_AS_NEW_LOOPS,
    InboxItem,
    TurnOutcome,
    TurnPlan,
    apply_response,
    continue_as_new_state,
    force_terminate,
    prepare_turn,
    stall_for_payload,
    start_next_generation,
    work_item_size,
)
from durahub.engine.cache import StateCache
from durahub.engine.clock import Clock
from durahub.engine.dispatch import Outstanding, Streams
from durahub.engine.leases import LocalLeases
from durahub.engine.scheduler import Scheduler
from durahub.engine.tasks import ActivityTable
from durahub.engine.waiters import Waiters
from durahub.engine.work import PendingTask, Stream, Turn, new_id, run_to_completion
from durahub.observability.hooks import Observer
from durahub.protos import pb
from durahub.store.base import InstanceRow, LeaseLost, NewChild, Store, TurnCommit

log = logging.getLogger("durahub.engine")

INBOX_BATCH = 1000
# Pause before retrying a turn whose commit failed.
RETRY_DELAY_SECONDS = 1.0


class TurnRunner:
    def __init__(self, config: Config, store: Store, cache: StateCache, scheduler: Scheduler, streams: Streams,
                 tasks: ActivityTable, leases: LocalLeases, waiters: Waiters,
                 add_task: Callable[[PendingTask], None], reset: Callable[[str], None], clock: Clock,
                 observer: Observer) -> None:
        self._config = config
        self._clock = clock
        self._observer = observer
        self._store = store
        self._cache = cache
        self._scheduler = scheduler
        self._streams = streams
        self._tasks = tasks
        self._leases = leases
        self._waiters = waiters
        self._add_task = add_task
        self._reset = reset

    # -- sending a turn -------------------------------------------------------------------------------

    async def materialize(self, instance_id: str, stream: Stream) -> pb.WorkItem | None:
        """The instance's next turn as a work item for `stream`, or None if it has nothing to run."""
        scheduler = self._scheduler
        scheduler.taken(instance_id)
        if instance_id in scheduler.turns:
            scheduler.again(instance_id)
            return None
        scheduler.turns[instance_id] = None  # claimed while the turn loads
        try:
            turn = await self._begin(instance_id)
        except asyncio.CancelledError:
            scheduler.end_turn(instance_id, reschedule=True)  # the stream went away while the turn loaded
            raise
        except Exception:
            log.exception("event=turn_load_failed instance=%s", instance_id)
            scheduler.end_turn(instance_id, reschedule=False)
            return None
        if turn is None:
            scheduler.end_turn(instance_id, reschedule=False)
            return None
        if stream.closed:
            scheduler.end_turn(instance_id, reschedule=True)
            return None
        scheduler.turns[instance_id] = turn
        size = work_item_size(turn.state, turn.plan)
        budget = int(self._config.max_message_bytes * 0.95)
        if size > budget:
            # The worker could not receive it: stall (like daprd) instead of killing its stream.
            await self.commit(turn, stall_for_payload(turn.state, turn.plan, size, budget, self._clock.now_us()))
            return None
        self._observer.turn_sent(turn.state, turn.plan.new_events, size)
        return self.work_item(turn, stream)

    def continued(self, turn: Turn, stream: Stream) -> pb.WorkItem | None:
        """The next continue-as-new iteration of a turn, unless the turn has ended meanwhile."""
        if self._scheduler.turns.get(turn.instance_id) is not turn:
            return None
        return self.work_item(turn, stream)

    def work_item(self, turn: Turn, stream: Stream) -> pb.WorkItem:
        state = turn.state
        request = pb.WorkflowRequest(instanceId=state.instance_id, newEvents=turn.plan.new_events)
        if state.execution_id:
            request.executionId.value = state.execution_id
        if state.incoming is not None:
            request.propagatedHistory.CopyFrom(state.incoming)  # on every turn, as daprd
        hint = self._cache.worker_holds(turn.instance_id)
        history = state.history
        if stream.stateful and hint is not None and hint[0] == stream.id and hint[1] == state.generation \
                and hint[2] <= len(history):
            request.cachedHistory.eventCount = hint[2]
            request.pastEvents.extend(history[hint[2]:])
        else:
            request.pastEvents.extend(history)
        if stream.stateful:
            self._cache.note_worker_holds(turn.instance_id, stream.id, state.generation, len(history))
        turn.sent_at = time.monotonic()
        turn.token = self._streams.issue(stream, turn)
        return pb.WorkItem(workflowRequest=request, completionToken=turn.token)

    async def _begin(self, instance_id: str) -> Turn | None:
        if not await self._leases.hold(instance_id):
            return None  # another engine process runs this instance's turns
        state = await self._cache.load(instance_id)
        if state is None:
            return None
        now = self._clock.now_us()
        rows = await self._store.load_inbox(instance_id, now, INBOX_BATCH)
        if not rows:
            return None
        inbox = [InboxItem(r.seq, pb.HistoryEvent.FromString(r.payload), r.generation) for r in rows]
        if state.is_terminal and any(i.event.HasField("executionStarted") for i in inbox):
            # A finished instance with a start queued was re-created by someone this engine did not hear from
            # in time: what it remembers is of the old instance.
            self._cache.forget(instance_id)
            state = await self._cache.load(instance_id)
            if state is None:
                return None
        plan = prepare_turn(state, inbox, now)
        if len(rows) == INBOX_BATCH and (plan.runnable or plan.consumed):
            self._scheduler.again(instance_id)  # more is queued than one turn takes: another turn follows
        if not plan.runnable:
            if plan.consumed:
                await self._store.consume_inbox(instance_id, plan.consumed)
            return None
        turn = Turn(instance_id=instance_id, state=state, plan=plan)
        if state.status == STALLED and plan.terminate is not None:
            # A stalled instance cannot run a turn, but it can always be terminated.
            self._scheduler.turns[instance_id] = turn
            await self.commit(turn, force_terminate(state, plan, now, state.app_id))
            return None
        return turn

    # -- the worker's answer --------------------------------------------------------------------------

    @run_to_completion
    async def complete(self, response: pb.WorkflowResponse, app_id: str) -> None:
        """A worker of app `app_id` answered a turn."""
        key = instance_key(app_id, response.instanceId)

        def matches(item: Outstanding) -> bool:
            return isinstance(item, Turn) and item.instance_id == key

        token = response.completionToken
        if not token:
            # Workers that do not echo tokens: one turn per instance is outstanding, so the id identifies it.
            current = self._scheduler.turns.get(key)
            token = current.token if current is not None else ""
        item = self._streams.take(token, matches) if token else None
        if not isinstance(item, Turn):
            log.info("event=late_workflow_completion_ignored instance=%s", response.instanceId)
            return
        turn = item
        instance_id = turn.instance_id
        seconds = self._cache.turn_seconds[instance_id] = time.monotonic() - turn.sent_at
        self._observer.turn_answered(turn.state, seconds)
        try:
            now = self._clock.now_us()
            outcome = apply_response(turn.state, turn.plan, response, now, new_id, turn.state.app_id,
                                     budget=int(self._config.max_message_bytes * 0.95))
            if outcome.continue_as_new is not None:
                self._observer.generation_ended(turn.state, now)
                if turn.loops < MAX_CONTINUE_AS_NEW_LOOPS:
                    self._continue_as_new(turn, outcome)
                    return
                # A tight loop: keep what it did so far, and run the next generation in a turn of its own.
                log.info("event=continue_as_new_saved instance=%s loops=%d", instance_id, turn.loops)
                outcome = start_next_generation(turn.state, outcome)
            await self._commit(turn, outcome)  # already run to completion, as part of this answer
        except Exception:
            log.exception("event=turn_commit_failed instance=%s", instance_id)
            self._observer.turn_failed(turn.state, turn.plan.new_events)
            self._cache.forget(instance_id)
            # Retry later, not in a tight loop: a full disk or a lost database does not heal in microseconds.
            self._scheduler.end_turn(instance_id, reschedule=False)
            asyncio.get_running_loop().call_later(RETRY_DELAY_SECONDS, self._scheduler.schedule, instance_id)

    def _continue_as_new(self, turn: Turn, outcome: TurnOutcome) -> None:
        assert outcome.continue_as_new is not None
        turn.loops += 1
        turn.state = continue_as_new_state(turn.state, outcome.next_incoming)
        turn.plan = TurnPlan(consumed=turn.plan.consumed, new_events=outcome.continue_as_new)
        turn.replace_history = True
        turn.custom_status = outcome.custom_status
        # The cached state now holds this turn's uncommitted events; should the turn be abandoned, the next
        # one must start from what is committed.
        self._cache.forget(turn.instance_id)
        log.info("event=continued_as_new instance=%s generation=%d", turn.instance_id, turn.state.generation)
        self._scheduler.continue_turn(turn)

    # -- making it durable ----------------------------------------------------------------------------

    @run_to_completion
    async def commit(self, turn: Turn, outcome: TurnOutcome) -> None:
        await self._commit(turn, outcome)

    async def _commit(self, turn: Turn, outcome: TurnOutcome) -> None:
        instance_id = turn.instance_id
        if instance_id in self._scheduler.stale:
            # The instance was purged or re-created while this turn was out: its answer belongs to no one.
            log.info("event=stale_turn_dropped instance=%s", instance_id)
            self._cache.forget(instance_id)
            self._scheduler.end_turn(instance_id, reschedule=True)
            return
        state = outcome.state
        if outcome.stalled:
            await self._commit_stall(turn, outcome)
            return
        commit = to_commit(turn, outcome, *self._leases.for_commit(), runs_tasks_of=self._leases.runs_tasks_of)
        began = time.perf_counter()
        try:
            result = await self._store.commit_turn(commit)
        except LeaseLost:
            # Another process took the instance over (this one stalled past its lease): it redoes the turn.
            log.warning("event=lease_lost instance=%s", instance_id)
            self._cache.forget(instance_id)
            self._leases.drop(instance_id)
            self._scheduler.drop_turn(instance_id)
            return
        if commit.lease_until is not None:
            self._leases.note(instance_id, commit.lease_until)
        self._observer.turn_committed(state, outcome.appended, time.perf_counter() - began, self._clock.now_us())
        # Durable: now dispatch what the turn produced.
        if commit.replace_history:
            self._tasks.drop_instance(instance_id, keep_generation=state.generation)
        self._cache.put(state)
        if state.status in TERMINAL_STATUSES:
            self._tasks.drop_instance(instance_id, keep_generation=None)
            self._cache.turn_seconds.pop(instance_id, None)
            log.info("event=workflow_finished instance=%s workflow=%s status=%s", instance_id, state.name,
                     status_name(state.status))
        for seq, task in zip(result.task_seqs, outcome.tasks, strict=True):
            app = task.app_id or state.app_id
            if self._leases.runs_tasks_of(app):
                self._add_task(PendingTask(seq, instance_id, task.generation, task.task_id, task.request, app_id=app,
                                           workflow_name=state.name))
        for timer in outcome.timers:
            self._scheduler.add_timer(timer.fire_at_us, instance_id)
        for created in result.created:
            self._reset(created)
        for woken in result.woken:
            if woken != instance_id:
                self._scheduler.schedule(woken)
        if instance_id in self._waiters:  # the row is built only for someone waiting on it
            self._waiters.notify(instance_id, committed_row(commit))
        self._scheduler.end_turn(instance_id, reschedule=instance_id in result.woken)

    async def _commit_stall(self, turn: Turn, outcome: TurnOutcome) -> None:
        instance_id = turn.instance_id
        state = outcome.state
        start = len(state.history)
        events = [e.SerializeToString() for e in outcome.appended]
        await self._store.commit_stall(instance_id, start, events, self._clock.now_us())
        for ev in outcome.appended:
            state.append(ev)
        self._scheduler.drop_turn(instance_id)
        self._waiters.notify(instance_id)
        log.warning("event=workflow_stalled instance=%s reason=%s", instance_id,
                    state.stall.description if state.stall else "")


def to_commit(turn: Turn, outcome: TurnOutcome, owner: str | None = None, lease_until: int | None = None,
              runs_tasks_of: Callable[[str], bool] | None = None) -> TurnCommit:
    """The store's transaction for a turn's outcome (pure). Activity tasks of apps `runs_tasks_of` rejects are
    written unleased, for another engine to claim."""
    state = outcome.state
    replace = turn.replace_history or outcome.replace_history
    tasks = [(t.generation, t.task_id, t.request.SerializeToString(), t.app_id or state.app_id)
             for t in outcome.tasks]
    failure = state.failure
    parent = state.parent
    return TurnCommit(
        instance_id=turn.instance_id,
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
        started_us=state.started_us,
        tags=json.dumps(state.tags, sort_keys=True) if state.tags else None,
        parent_instance_id=(instance_key(state.parent_app_id, parent.workflowInstance.instanceId)
                            if parent is not None else None),
        parent_task_id=parent.taskScheduledId if parent is not None else None,
        history_start=0 if replace else len(state.history) - len(outcome.appended),
        events=[e.SerializeToString() for e in (state.history if replace else outcome.appended)],
        replace_history=replace,
        consumed=outcome.consumed,
        tasks=tasks,
        timers=[(t.generation, t.fire_at_us, t.event.SerializeToString()) for t in outcome.timers],
        children=[
            NewChild(instance_key(c.app_id or state.app_id, c.instance_id), c.name, ts_to_us(c.start_event.timestamp),
                     c.start_event.SerializeToString(), c.conflict_event.SerializeToString(), c.parent_task_id,
                     incoming=c.incoming.SerializeToString() if c.incoming is not None else None)
            for c in outcome.children
        ],
        messages=[(instance_key(m.app_id or state.app_id, m.target), m.event.SerializeToString())
                  for m in outcome.messages],
        inbox_front=[e.SerializeToString() for e in outcome.inbox_front],
        owner=owner,
        lease_until=lease_until,
        unleased_apps=sorted({a for *_, a in tasks if runs_tasks_of is not None and not runs_tasks_of(a)}),
        incoming=state.incoming.SerializeToString() if replace and state.incoming is not None else None,
    )


def committed_row(c: TurnCommit) -> InstanceRow:
    """The instance's row exactly as `commit_turn` has just written it."""
    return InstanceRow(
        instance_id=c.instance_id, name=c.name, status=c.status, execution_id=c.execution_id,
        generation=c.generation, created_us=c.created_us, updated_us=c.updated_us,
        completed_us=c.updated_us if c.status in TERMINAL_STATUSES else None, input=c.input, output=c.output,
        custom_status=c.custom_status, failure=c.failure, parent_instance_id=c.parent_instance_id,
        parent_task_id=c.parent_task_id, history_len=c.history_start + len(c.events), started_us=c.started_us,
        tags=c.tags,
    )
