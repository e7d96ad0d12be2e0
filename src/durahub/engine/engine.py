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
import logging
import os
import socket
import uuid
from collections.abc import Callable

from durahub.config import Config
from durahub.core.retention import RetentionPolicy
from durahub.core.state import STALLED
from durahub.engine.activities import ActivityResults
from durahub.engine.cache import StateCache
from durahub.engine.client import Instances
from durahub.engine.dispatch import Streams
from durahub.engine.leases import LocalLeases, SharedLeases
from durahub.engine.retention import RetentionPurger
from durahub.engine.scheduler import Scheduler
from durahub.engine.tasks import ActivityTable
from durahub.engine.turns import TurnRunner
from durahub.engine.waiters import Waiters
from durahub.engine.work import (
    ActivityJob,
    ContinueJob,
    EngineStopping,
    Job,
    Stream,
    now_us,
)
from durahub.protos import pb
from durahub.store.base import InstanceQuery, InstanceRow, SharedStore, Store

log = logging.getLogger("durahub.engine")


class Engine:
    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        # Names this process in leases and change announcements (shared stores).
        self.owner = store.owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        store.owner = self.owner
        self._tasks = ActivityTable()
        self._cache = StateCache(store)
        self._scheduler = Scheduler(self._cache, self._tasks)
        self._streams = Streams(self._scheduler, self._tasks, self._cache)
        self._waiters = Waiters(self.get_instance)
        self._activities = ActivityResults(store, self._tasks, self._streams, self._scheduler)
        add_task = self._activities.add
        self._leases: LocalLeases = (
            SharedLeases(store, self.owner, config, self._scheduler, self._tasks, self._streams, self._cache,
                         self._waiters, add_task)
            if isinstance(store, SharedStore) else LocalLeases(store, self.owner)
        )
        self._turns = TurnRunner(config, store, self._cache, self._scheduler, self._streams, self._tasks,
                                 self._leases, self._waiters, add_task, self._reset)
        self._instances = Instances(config, store, self._cache, self._scheduler, self._streams, self._leases,
                                    self._waiters, add_task, self._reset)
        self._timer_task: asyncio.Task[None] | None = None
        retention = RetentionPolicy.of(config.retention_any_terminal, config.retention_completed,
                                       config.retention_failed, config.retention_terminated)
        self._retention = (RetentionPurger(retention, store, self._instances.purge_expired)
                           if retention.enabled else None)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        for task in await self._leases.start():
            self._activities.add(task)
        now = now_us()
        for instance_id in await self.store.ready_instances(now):
            self._scheduler.schedule(instance_id)
        for instance_id, at in await self.store.future_wakeups(now):
            self._scheduler.add_timer(at, instance_id)
        self._timer_task = asyncio.create_task(self._scheduler.run_timers(), name="durahub-timers")
        log.info("event=engine_started tasks=%d ready=%d timers=%d", len(self._tasks), self._scheduler.ready_count,
                 self._scheduler.timer_count)
        if self._retention is not None:
            await self._retention.start()

    async def stop(self) -> None:
        if self._retention is not None:
            await self._retention.stop()
        if self._timer_task is not None:
            self._timer_task.cancel()
            try:
                await self._timer_task
            except asyncio.CancelledError:
                pass
        await self._leases.stop()
        self._waiters.fail_all(EngineStopping())

    @property
    def connected_workers(self) -> int:
        return len(self._streams)

    def _reset(self, instance_id: str) -> None:
        """The id now names a new instance (re-created) or none (purged): nothing remembered of the old one
        may be used for it — cached state, activities still queued, a lease, a turn still out."""
        self._cache.forget(instance_id)
        self._leases.drop(instance_id)
        self._tasks.drop_instance(instance_id, keep_generation=None)
        if instance_id in self._scheduler.turns:
            self._scheduler.stale.add(instance_id)

    # -- worker streams -------------------------------------------------------------------------------

    def open_stream(self, capabilities: list[int]) -> Stream:
        stream = self._streams.open(capabilities, asyncio.current_task())
        asyncio.get_running_loop().create_task(self._retry_stalled())
        return stream

    async def _retry_stalled(self) -> None:
        # A (re)connecting worker may carry new code: give stalled instances another try.
        for instance_id in await self.store.instances_with_status(STALLED):
            self._cache.forget(instance_id)
            self._scheduler.schedule(instance_id)

    def close_stream(self, stream: Stream) -> None:
        self._streams.close(stream)

    def end_streams(self) -> None:
        self._streams.end_all()

    async def next_work_item(self, stream: Stream) -> pb.WorkItem:
        """The next item for this stream; a health ping after an idle spell for workers that want them."""
        jobs = self._scheduler.jobs
        while True:
            try:
                job = await asyncio.wait_for(jobs.get(), timeout=self.config.health_ping_seconds if stream.pings else None)
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

    async def complete_workflow_task(self, response: pb.WorkflowResponse) -> None:
        await self._turns.complete(response)

    async def complete_activity_task(self, response: pb.ActivityResponse) -> None:
        await self._activities.complete(response)

    # -- client operations ----------------------------------------------------------------------------

    async def start_instance(self, instance_id: str, name: str, input: str | None,
                             scheduled_us: int | None = None) -> None:
        await self._instances.start(instance_id, name, input, scheduled_us)

    async def get_instance(self, instance_id: str) -> InstanceRow | None:
        return await self._instances.get(instance_id)

    async def wait_for(self, instance_id: str, predicate: Callable[[InstanceRow], bool],
                       timeout: float | None = None) -> InstanceRow | None:
        """Long-poll until the instance's committed state satisfies `predicate`. None on timeout."""
        return await self._waiters.wait_for(instance_id, predicate, timeout)

    async def raise_event(self, instance_id: str, name: str, input: str | None) -> None:
        await self._instances.raise_event(instance_id, name, input)

    async def terminate(self, instance_id: str, output: str | None, recursive: bool) -> None:
        await self._instances.terminate(instance_id, output, recursive)

    async def suspend(self, instance_id: str, reason: str | None) -> None:
        await self._instances.suspend(instance_id, reason)

    async def resume(self, instance_id: str, reason: str | None) -> None:
        await self._instances.resume(instance_id, reason)

    async def purge(self, instance_id: str, recursive: bool, force: bool = False) -> int:
        return await self._instances.purge(instance_id, recursive, force)

    async def purge_matching(self, query: InstanceQuery) -> int:
        return await self._instances.purge_matching(query)

    async def terminate_matching(self, query: InstanceQuery, output: str | None) -> int:
        return await self._instances.terminate_matching(query, output)

    async def history(self, instance_id: str) -> list[pb.HistoryEvent] | None:
        return await self._instances.history(instance_id)

    async def list_instance_ids(self, after: str | None, limit: int) -> list[str]:
        return await self._instances.list_ids(after, limit)

    async def query_instances(self, query: InstanceQuery) -> list[InstanceRow]:
        return await self._instances.query(query)

    async def rerun_from_event(self, source_id: str, event_id: int, new_id: str | None, input: str | None,
                               overwrite_input: bool, new_child_id: str = "") -> str:
        return await self._instances.rerun(source_id, event_id, new_id, input, overwrite_input, new_child_id)
