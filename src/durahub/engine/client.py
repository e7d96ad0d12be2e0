"""Client operations: start, signal, suspend, resume, terminate, purge and rerun instances, and read them.

Every rule about what a request may do (NUL-free text, rerun preconditions) is checked here, once; the
protocol adapters only translate the errors raised here into their wire's statuses (`api/`). Instances are
named here by their keys (`core.apps`); the `Engine` facade takes and gives plain ids and apps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from durahub.config import Config
from durahub.core.apps import id_of, instance_key, split_key
from durahub.core.outcome import execution_started
from durahub.core.rerun import RerunInvalid, RerunNotAllowed, build_rerun
from durahub.core.state import ACTIVE_STATUSES, RUNNING, TERMINAL_STATUSES, InstanceState
from durahub.core.time import us_to_ts
from durahub.core.tracing import SpanRef
from durahub.engine.cache import StateCache
from durahub.engine.clock import Clock
from durahub.engine.dispatch import Streams
from durahub.engine.leases import LocalLeases
from durahub.engine.scheduler import Scheduler
from durahub.engine.waiters import Waiters
from durahub.engine.work import PendingTask, check_text, new_id, run_to_completion
from durahub.observability.hooks import Observer
from durahub.observability.metrics import ADD_EVENT, PURGE_WORKFLOW
from durahub.protos import pb
from durahub.store.base import (
    InstanceExists,
    InstanceNotFound,
    InstanceQuery,
    InstanceRow,
    NewInstance,
    Store,
    StoreError,
)

log = logging.getLogger("durahub.engine")


class Instances:
    def __init__(self, config: Config, store: Store, cache: StateCache, scheduler: Scheduler, streams: Streams,
                 leases: LocalLeases, waiters: Waiters, add_task: Callable[[PendingTask], None],
                 reset: Callable[[str], None], clock: Clock, observer: Observer) -> None:
        self._config = config
        self._clock = clock
        self._observer = observer
        self._store = store
        self._cache = cache
        self._scheduler = scheduler
        self._streams = streams
        self._leases = leases
        self._waiters = waiters
        self._add_task = add_task
        self._reset = reset

    @run_to_completion
    async def start(self, instance_id: str, name: str, input: str | None, scheduled_us: int | None = None,
                    tags: dict[str, str] | None = None, enforce_unique: bool = False,
                    trace_parent: SpanRef | None = None) -> None:
        """Create an instance. A finished one with the same id is replaced, unless `enforce_unique` (Dapr
        1.19's enforceUniqueInstanceId: then it is InstanceExists, as an active one always is)."""
        app_id, plain_id = split_key(instance_id)
        with self._observer.creating(instance_id, plain_id, name, trace_parent) as span:
            await self._start(instance_id, name, input, scheduled_us, tags, enforce_unique, span)

    async def _start(self, instance_id: str, name: str, input: str | None, scheduled_us: int | None,
                     tags: dict[str, str] | None, enforce_unique: bool, span: SpanRef | None) -> None:
        app_id, plain_id = split_key(instance_id)
        check_text(instance_id=plain_id, name=name, input=input,
                   tags=json.dumps(tags) if tags else None)
        now = self._clock.now_us()
        start = execution_started(now, plain_id, new_id(), name, input, scheduled_us=scheduled_us, app_id=app_id,
                                  tags=tags, trace_parent=span)
        visible = scheduled_us if scheduled_us is not None and scheduled_us > now else 0
        owner, lease_until = self._leases.for_creation(now, workers=self._streams.count(app_id) > 0,
                                                       visible=bool(visible))
        await self._store.create_instance(
            NewInstance(instance_id=instance_id, name=name, created_us=now, input=input,
                        start_event=start.SerializeToString(), visible_us=visible,
                        lease_owner=owner, lease_until_us=lease_until,
                        tags=json.dumps(tags, sort_keys=True) if tags else None),
            replace_terminal=not enforce_unique,
        )
        self._reset(instance_id)
        if lease_until:
            self._leases.note(instance_id, lease_until)
        # Known without reading it back: a new instance has no history yet.
        self._cache.put(InstanceState.from_history(plain_id, 0, [], app_id))
        log.info("event=instance_created app=%s instance=%s workflow=%s", app_id, plain_id, name)
        self._waiters.notify(instance_id)
        if visible:
            self._scheduler.add_timer(visible, instance_id)
        else:
            self._scheduler.schedule(instance_id)

    async def get(self, instance_id: str) -> InstanceRow | None:
        """The stored row (keys, not plain ids)."""
        if "\x00" in instance_id:
            return None  # no such id can exist
        return await self._store.get_instance(instance_id)

    async def _enqueue(self, instance_id: str, event: pb.HistoryEvent, reject_stalled: bool = False) -> bool:
        check_text(instance_id=instance_id)
        accepted = await self._store.enqueue(instance_id, event.SerializeToString(), reject_stalled=reject_stalled)
        if accepted:
            self._scheduler.schedule(instance_id)
        return accepted

    @run_to_completion
    async def raise_event(self, instance_id: str, name: str, input: str | None,
                          trace_parent: SpanRef | None = None) -> None:
        check_text(event_name=name, event_data=input)
        ev = _event(self._clock.now_us())
        ev.eventRaised.name = name
        if input is not None:
            ev.eventRaised.input.value = input
        with self._observer.operation(instance_id, ADD_EVENT), \
                self._observer.raising(instance_id, id_of(instance_id), name, trace_parent):
            await self._enqueue(instance_id, ev, reject_stalled=True)
        log.info("event=event_raised instance=%s name=%s", instance_id, name)

    @run_to_completion
    async def terminate(self, instance_id: str, output: str | None, recursive: bool) -> None:
        check_text(output=output)
        await self._enqueue(instance_id, terminate_event(output, recursive, self._clock.now_us()))
        log.info("event=terminate_requested instance=%s recursive=%s", instance_id, recursive)

    @run_to_completion
    async def suspend(self, instance_id: str, reason: str | None) -> None:
        await self._pause_or_resume(instance_id, "executionSuspended", reason)
        log.info("event=suspend_requested instance=%s", instance_id)

    @run_to_completion
    async def resume(self, instance_id: str, reason: str | None) -> None:
        await self._pause_or_resume(instance_id, "executionResumed", reason)
        log.info("event=resume_requested instance=%s", instance_id)

    async def _pause_or_resume(self, instance_id: str, kind: str, reason: str | None) -> None:
        check_text(reason=reason)
        ev = _event(self._clock.now_us())
        body = getattr(ev, kind)
        body.SetInParent()
        if reason:
            body.input.value = reason
        await self._enqueue(instance_id, ev)

    @run_to_completion
    async def purge(self, instance_id: str, recursive: bool, force: bool = False) -> int:
        check_text(instance_id=instance_id)
        with self._observer.operation(instance_id, PURGE_WORKFLOW):
            purged = await self._store.purge(instance_id, recursive, force)
        for gone in purged:
            self._reset(gone)
        log.info("event=purged instance=%s recursive=%s count=%d", instance_id, recursive, len(purged))
        return len(purged)

    @run_to_completion
    async def purge_expired(self, status: int, since_us: int, before_us: int, limit: int) -> list[str]:
        """Retention: purge up to `limit` instances with this terminal status that finished in
        [since_us, before_us), each alone (its children have their own). Returns their ids."""
        purged = await self._store.purge_expired(status, since_us, before_us, limit)
        for gone in purged:
            self._reset(gone)
        return purged

    @run_to_completion
    async def purge_matching(self, query: InstanceQuery) -> int:
        """Purge each finished instance the query matches (recursively). Active ones are left alone."""
        check_text(name=query.name, id_prefix=query.id_prefix, parent_id=query.parent_id)
        query.statuses = [s for s in (query.statuses or TERMINAL_STATUSES) if s in TERMINAL_STATUSES]
        count = 0
        while query.statuses:
            rows = await self._store.query_instances(query)
            for row in rows:
                try:
                    count += await self.purge(row.instance_id, recursive=True)
                except StoreError:
                    pass  # purged as someone's child meanwhile, or no longer finished
            if len(rows) < query.limit:
                break
            query.after = (rows[-1].created_us, rows[-1].instance_id)
        return count

    @run_to_completion
    async def terminate_matching(self, query: InstanceQuery, output: str | None) -> int:
        """Request termination of each active instance the query matches. Returns how many were accepted."""
        check_text(output=output, name=query.name, id_prefix=query.id_prefix, parent_id=query.parent_id)
        active = [s for s in (query.statuses or ACTIVE_STATUSES) if s in ACTIVE_STATUSES]
        query.statuses = list(active)
        count = 0
        while query.statuses:
            rows = await self._store.query_instances(query)
            for row in rows:
                try:
                    if await self._enqueue(row.instance_id, terminate_event(output, True, self._clock.now_us())):
                        count += 1
                except StoreError:
                    pass
            if len(rows) < query.limit:
                break
            query.after = (rows[-1].created_us, rows[-1].instance_id)
        return count

    async def history(self, instance_id: str) -> list[pb.HistoryEvent] | None:
        if await self.get(instance_id) is None:
            return None
        return [pb.HistoryEvent.FromString(b) for b in await self._store.load_history(instance_id)]

    async def list_ids(self, app_id: str, after: str | None, limit: int) -> list[str]:
        """Plain ids of one app's instances after the plain id `after`."""
        check_text(continuation_token=after)
        keys = await self._store.list_instance_ids(app_id, instance_key(app_id, after) if after else None, limit)
        return [id_of(k) for k in keys]

    async def query(self, query: InstanceQuery) -> list[InstanceRow]:
        check_text(name=query.name, id_prefix=query.id_prefix, parent_id=query.parent_id,
                   after=query.after[1] if query.after else None)
        return await self._store.query_instances(query)

    async def count(self, query: InstanceQuery, by_name: bool) -> list[tuple[int, str, int]]:
        check_text(name=query.name, id_prefix=query.id_prefix, parent_id=query.parent_id)
        return await self._store.count_instances(query, by_name)

    @run_to_completion
    async def rerun(
        self, source_id: str, event_id: int, new_instance_id: str | None, input: str | None, overwrite_input: bool,
        new_child_id: str = "",
    ) -> str:
        """Copy a finished instance's history up to one of its scheduling events into a new instance and
        re-run from there (the event and any work unfinished before it are scheduled again). Returns the new
        instance's id (a fresh one when `new_instance_id` is not given)."""
        app_id, source_plain = split_key(source_id)
        check_text(source_instance_id=source_plain, new_instance_id=new_instance_id, input=input,
                   new_child_instance_id=new_child_id)
        row = await self.get(source_id)
        if row is None:
            raise InstanceNotFound(source_id)
        if row.status not in TERMINAL_STATUSES:
            raise RerunNotAllowed(f"workflow instance '{source_plain}' is not in a terminal state")
        if row.parent_instance_id:
            raise RerunNotAllowed(f"workflow instance '{source_plain}' is a child workflow and cannot be rerun")
        target_plain = new_instance_id or new_id()
        if target_plain == source_plain:
            raise RerunInvalid("new instance ID must differ from the source instance ID")
        target = instance_key(app_id, target_plain)
        history = await self.history(source_id)
        if history is None:
            raise InstanceNotFound(source_id)
        now = self._clock.now_us()
        with self._observer.rerunning(target_plain, row.name, None) as span:
            plan = build_rerun(history, source_plain, event_id, target_plain, new_id(), input, overwrite_input, now,
                               new_child_id, app_id=app_id, trace_parent=span)
        new = NewInstance(instance_id=target, name=plan.state.name, created_us=now, input=plan.state.input,
                          start_event=b"")
        try:
            seqs = await self._store.create_with_history(
                new, RUNNING, [e.SerializeToString() for e in plan.state.history],
                [(t.generation, t.task_id, t.request.SerializeToString(), t.app_id or app_id) for t in plan.tasks],
                [(t.generation, t.fire_at_us, t.event.SerializeToString()) for t in plan.timers],
                plan.state.execution_id, now,
            )
        except InstanceExists as exc:  # finished or not: a rerun never replaces an instance
            raise InstanceExists(target, f"workflow instance '{target_plain}' already exists") from exc
        self._reset(target)
        for seq, task in zip(seqs, plan.tasks, strict=True):
            self._add_task(PendingTask(seq, target, task.generation, task.task_id, task.request,
                                       app_id=task.app_id or app_id))
        for timer in plan.timers:
            self._scheduler.add_timer(timer.fire_at_us, target)
        for child in plan.children:
            child_key = instance_key(child.app_id or app_id, child.instance_id)
            try:
                await self._store.create_instance(
                    NewInstance(instance_id=child_key, name=child.name, created_us=now, input=None,
                                start_event=child.start_event.SerializeToString(), parent_instance_id=target,
                                parent_task_id=child.parent_task_id,
                                incoming=child.incoming.SerializeToString() if child.incoming else None)
                )
                self._reset(child_key)
                self._scheduler.schedule(child_key)
            except InstanceExists:
                await self._store.enqueue(target, child.conflict_event.SerializeToString())
                self._scheduler.schedule(target)
        self._waiters.notify(target)
        log.info("event=rerun app=%s instance=%s source=%s from_event=%d", app_id, target_plain, source_plain,
                 event_id)
        return target


def _event(now_us: int) -> pb.HistoryEvent:
    return pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us))


def terminate_event(output: str | None, recursive: bool, now_us: int) -> pb.HistoryEvent:
    ev = _event(now_us)
    ev.executionTerminated.recurse = recursive
    if output is not None:
        ev.executionTerminated.input.value = output
    return ev
