"""The engine's facade: wires its parts together and is what the protocol adapters call.

Parts (each owns its state): `client` (operations on instances), `turns` (orchestration turns and their
commits), `activities` (tasks to workers and their results), `dispatch` (work-item streams and completion
tokens), `scheduler` (the job queue, one turn per instance, gathering, timers), `cache` (committed states),
`waiters` (long-polls), `leases` (local no-op, or shared between engine processes), `tasks` (the activity
table). Everything runs on one asyncio loop; the store's threads are described in `durahub.store.sql`. Code
that must not be split by an `await` (claiming a turn, ending it, waking waiters) stays synchronous.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import overload

from durahub.config import Config
from durahub.core.apps import app_of, check_app_id, id_of, instance_key, split_key
from durahub.core.retention import RetentionPolicy
from durahub.core.state import STALLED
from durahub.core.tracing import SpanRef
from durahub.engine.activities import ActivityResults
from durahub.engine.cache import StateCache
from durahub.engine.client import Instances
from durahub.engine.clock import Clock, VirtualClock
from durahub.engine.dispatch import Streams
from durahub.engine.leases import LocalLeases, SharedLeases
from durahub.engine.retention import RetentionPurger
from durahub.engine.scheduler import Scheduler
from durahub.engine.skipping import TimeSkipper
from durahub.engine.tasks import ActivityTable
from durahub.engine.turns import TurnRunner
from durahub.engine.waiters import Waiters
from durahub.engine.work import (
    ActivityJob,
    ContinueJob,
    EngineStopping,
    Job,
    Stream,
)
from durahub.observability.hooks import Observer
from durahub.observability.metrics import GET_WORKFLOW, WorkflowMetrics
from durahub.observability.scrape import exposition
from durahub.protos import pb
from durahub.store.base import InstanceQuery, InstanceRow, SharedStore, Store

log = logging.getLogger("durahub.engine")


class Engine:
    def __init__(self, config: Config, store: Store, observer: Observer | None = None) -> None:
        self.config = config
        self.store = store
        # Metrics always; spans when the server configured a tracer.
        self.observer = observer or Observer(WorkflowMetrics(), None, config.max_message_bytes)
        # Names this process in leases and change announcements (shared stores).
        self.owner = store.owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        store.owner = self.owner
        # Time skipping (tests, demos) runs on a virtual clock; one process's SQLite store only.
        if config.time_skipping and isinstance(store, SharedStore):
            raise RuntimeError("time skipping runs on a SQLite store, not on a shared PostgreSQL database")
        self.clock = VirtualClock() if config.time_skipping else Clock()
        self._tasks = ActivityTable()
        self._cache = StateCache(store)
        self._scheduler = Scheduler(self._cache, self._tasks, self.clock)
        self._streams = Streams(self._scheduler, self._tasks, self._cache,
                                turn_lost=lambda turn: self.observer.turn_lost(turn.state, turn.plan.new_events))
        self._waiters = Waiters(self._read_row)
        self._activities = ActivityResults(store, self._tasks, self._streams, self._scheduler, self.clock,
                                           self.observer)
        add_task = self._activities.add
        self._leases: LocalLeases = (
            SharedLeases(store, self.owner, config, self._scheduler, self._tasks, self._streams, self._cache,
                         self._waiters, add_task)
            if isinstance(store, SharedStore) else LocalLeases(store, self.owner)
        )
        self._turns = TurnRunner(config, store, self._cache, self._scheduler, self._streams, self._tasks,
                                 self._leases, self._waiters, add_task, self._reset, self.clock, self.observer)
        self._instances = Instances(config, store, self._cache, self._scheduler, self._streams, self._leases,
                                    self._waiters, add_task, self._reset, self.clock, self.observer)
        self._timer_task: asyncio.Task[None] | None = None
        self.time_skipper = (TimeSkipper(self.clock, self._scheduler, self._tasks, self._streams, self._activities,
                                         self._waiters, self._instances.history)
                             if isinstance(self.clock, VirtualClock) else None)
        self._skipper_task: asyncio.Task[None] | None = None
        retention = RetentionPolicy.of(config.retention_any_terminal, config.retention_completed,
                                       config.retention_failed, config.retention_terminated)
        self._retention = (RetentionPurger(retention, store, self._instances.purge_expired)
                           if retention.enabled else None)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        for task in await self._leases.start():
            self._activities.add(task)
        now = self.clock.now_us()
        for instance_id in await self.store.ready_instances(now):
            self._scheduler.schedule(instance_id)
        for instance_id, at in await self.store.future_wakeups(now):
            self._scheduler.add_timer(at, instance_id)
        self._timer_task = asyncio.create_task(self._scheduler.run_timers(), name="durahub-timers")
        if self.time_skipper is not None:
            self._skipper_task = asyncio.create_task(self.time_skipper.run(), name="durahub-time-skipper")
        log.info("event=engine_started tasks=%d ready=%d timers=%d", len(self._tasks), self._scheduler.ready_count,
                 self._scheduler.timer_count)
        if self._retention is not None:
            await self._retention.start()

    async def stop(self) -> None:
        if self._retention is not None:
            await self._retention.stop()
        for task in (self._timer_task, self._skipper_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        await self._leases.stop()
        self._waiters.fail_all(EngineStopping())
        await asyncio.to_thread(self.observer.shutdown)  # exports the spans still buffered

    @property
    def connected_workers(self) -> int:
        return len(self._streams)

    async def _read_row(self, key: str) -> InstanceRow | None:
        return await self._instances.get(key)

    def _reset(self, instance_id: str) -> None:
        """The id now names a new instance (re-created) or none (purged): nothing remembered of the old one
        may be used for it — cached state, activities still queued, a lease, a turn still out."""
        self._cache.forget(instance_id)
        self._leases.drop(instance_id)
        self._tasks.drop_instance(instance_id, keep_generation=None)
        if instance_id in self._scheduler.turns:
            self._scheduler.stale.add(instance_id)
        self._waiters.announce(instance_id)  # a child created, an instance purged: the change feed hears of it

    # -- worker streams -------------------------------------------------------------------------------

    def open_stream(self, capabilities: list[int], app: str | None = None) -> Stream:
        """A worker of `app` (default: the engine's app) connected."""
        stream = self._streams.open(capabilities, asyncio.current_task(), self._app(app))
        asyncio.get_running_loop().create_task(self._retry_stalled(stream.app_id))
        return stream

    async def _retry_stalled(self, app_id: str) -> None:
        # A (re)connecting worker may carry new code: give its app's stalled instances another try.
        for instance_id in await self.store.instances_with_status(STALLED):
            if app_of(instance_id) == app_id:
                self._cache.forget(instance_id)
                self._scheduler.schedule(instance_id)

    def close_stream(self, stream: Stream) -> None:
        self._streams.close(stream)

    def end_streams(self) -> None:
        self._streams.end_all()

    async def next_work_item(self, stream: Stream) -> pb.WorkItem:
        """The next item of the stream's app; a health ping after an idle spell for workers that want them."""
        jobs = self._scheduler.queue(stream.app_id)
        while True:
            if not jobs.empty():
                job = jobs.get_nowait()  # under load, most of the time: no timeout to arm
            else:
                try:
                    job = await asyncio.wait_for(jobs.get(),
                                                 timeout=self.config.health_ping_seconds if stream.pings else None)
                except TimeoutError:
                    item = pb.WorkItem()
                    item.healthPing.SetInParent()
                    return item
            if stream.closed:
                jobs.put_nowait(job)
                raise asyncio.CancelledError()
            work = await self._materialize(job, stream)
            if work is not None:
                return work

    async def _materialize(self, job: Job, stream: Stream) -> pb.WorkItem | None:
        if isinstance(job, ActivityJob):
            return self._activities.materialize(job.seq, stream)
        if isinstance(job, ContinueJob):
            return self._turns.continued(job.turn, stream)
        return await self._turns.materialize(job.instance_id, stream)

    async def complete_workflow_task(self, response: pb.WorkflowResponse, app: str | None = None) -> None:
        await self._turns.complete(response, self._app(app))

    async def complete_activity_task(self, response: pb.ActivityResponse, app: str | None = None) -> None:
        await self._activities.complete(response, self._app(app))

    def apps(self) -> list[AppInfo]:
        """The apps this engine knows of right now: its own, those with workers, those with work queued."""
        queued = self._scheduler.queued()
        names = {self.config.app_id, *self._streams.apps(), *queued}
        return [AppInfo(app, self._streams.count(app), queued.get(app, 0)) for app in sorted(names)]

    async def metrics_exposition(self) -> str:
        """The `/metrics` page (Prometheus text format)."""
        return await exposition(
            self.observer.metrics, self.store, now_us=self.clock.now_us(), pending_activities=len(self._tasks),
            oldest_activity_at=min((t.queued_at for t in self._tasks), default=None),
            pending_timers=self._scheduler.timer_count,
            workers={app: self._streams.count(app) for app in self._streams.apps()},
            takeovers=self._leases.takeovers)

    def workers_of(self, app: str) -> int:
        return self._streams.count(app)

    def workers(self) -> list[Stream]:
        return self._streams.all()

    def on_change(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call `listener(instance key)` after each change of any instance (also those other engines sharing the
        database announce); returns what unsubscribes it."""
        return self._waiters.listen(listener)

    # -- client operations ----------------------------------------------------------------------------
    # Instances are named by (instance id, app); `app` None is the engine's own app (`config.app_id`).

    def _app(self, app: str | None) -> str:
        return check_app_id(app) if app else self.config.app_id

    def _key(self, instance_id: str, app: str | None) -> str:
        return instance_key(self._app(app), instance_id)

    async def start_instance(self, instance_id: str, name: str, input: str | None,
                             scheduled_us: int | None = None, app: str | None = None,
                             tags: dict[str, str] | None = None, enforce_unique: bool = False,
                             trace_parent: SpanRef | None = None) -> None:
        """`trace_parent`: the caller's span (traceparent), the parent of the create span."""
        await self._instances.start(self._key(instance_id, app), name, input, scheduled_us, tags, enforce_unique,
                                    trace_parent)

    async def get_instance(self, instance_id: str, app: str | None = None) -> InstanceRow | None:
        key = self._key(instance_id, app)
        with self.observer.operation(key, GET_WORKFLOW):
            return public_row(await self._instances.get(key))

    async def wait_for(self, instance_id: str, predicate: Callable[[InstanceRow], bool],
                       timeout: float | None = None, app: str | None = None) -> InstanceRow | None:
        """Long-poll until the instance's committed state satisfies `predicate`. None on timeout."""
        return public_row(await self._waiters.wait_for(self._key(instance_id, app), predicate, timeout))

    async def raise_event(self, instance_id: str, name: str, input: str | None, app: str | None = None,
                          trace_parent: SpanRef | None = None) -> None:
        await self._instances.raise_event(self._key(instance_id, app), name, input, trace_parent)

    async def terminate(self, instance_id: str, output: str | None, recursive: bool, app: str | None = None) -> None:
        await self._instances.terminate(self._key(instance_id, app), output, recursive)

    async def suspend(self, instance_id: str, reason: str | None, app: str | None = None) -> None:
        await self._instances.suspend(self._key(instance_id, app), reason)

    async def resume(self, instance_id: str, reason: str | None, app: str | None = None) -> None:
        await self._instances.resume(self._key(instance_id, app), reason)

    async def purge(self, instance_id: str, recursive: bool, force: bool = False, app: str | None = None) -> int:
        return await self._instances.purge(self._key(instance_id, app), recursive, force)

    async def purge_matching(self, query: InstanceQuery) -> int:
        return await self._instances.purge_matching(self._store_query(query))

    async def terminate_matching(self, query: InstanceQuery, output: str | None) -> int:
        return await self._instances.terminate_matching(self._store_query(query), output)

    async def history(self, instance_id: str, app: str | None = None) -> list[pb.HistoryEvent] | None:
        return await self._instances.history(self._key(instance_id, app))

    async def list_instance_ids(self, after: str | None, limit: int, app: str | None = None) -> list[str]:
        return await self._instances.list_ids(self._app(app), after, limit)

    async def query_instances(self, query: InstanceQuery) -> list[InstanceRow]:
        rows = await self._instances.query(self._store_query(query))
        return [public_row(r) for r in rows]

    async def count_instances(self, query: InstanceQuery, by_name: bool = False) -> list[tuple[int, str, int]]:
        """(status, workflow name, count) of the instances matching `query` (its cursor and limit aside); the
        name is "" unless `by_name`."""
        return await self._instances.count(self._store_query(query), by_name)

    async def rerun_from_event(self, source_id: str, event_id: int, new_id: str | None, input: str | None,
                               overwrite_input: bool, new_child_id: str = "", app: str | None = None) -> str:
        key = await self._instances.rerun(self._key(source_id, app), event_id, new_id, input, overwrite_input,
                                          new_child_id)
        return id_of(key)

    def _store_query(self, query: InstanceQuery) -> InstanceQuery:
        """The query in the store's terms: `parent_id` as a key (the parent in `parent_app_id`, else in the
        queried app, else the engine's), an id prefix within one app (the engine's unless given); the cursor
        (`after`) is a key already (`InstanceRow.key`)."""
        q = dataclasses.replace(query)
        if q.app_id is not None:
            check_app_id(q.app_id)
        if q.id_prefix and q.app_id is None:
            q.app_id = self.config.app_id
        if q.parent_id is not None:
            q.parent_id = instance_key(q.parent_app_id or q.app_id or self.config.app_id, q.parent_id)
        return q


@dataclasses.dataclass
class AppInfo:
    app_id: str
    workers: int  # connected to this engine
    queued: int  # turns and activities waiting for one of its workers


@overload
def public_row(row: InstanceRow) -> InstanceRow: ...


@overload
def public_row(row: None) -> None: ...


def public_row(row: InstanceRow | None) -> InstanceRow | None:
    """A stored row as the engine hands it out: plain ids, with the instance's and its parent's apps."""
    if row is None:
        return None
    app_id, instance_id = split_key(row.instance_id)
    parent_app, parent_id = split_key(row.parent_instance_id) if row.parent_instance_id else (None, None)
    return dataclasses.replace(row, instance_id=instance_id, app_id=app_id, parent_instance_id=parent_id,
                               parent_app_id=parent_app, key=row.instance_id)
