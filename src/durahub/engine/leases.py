"""Leases: which engine process runs an instance's turns and holds an activity task.

With one engine on its store (SQLite) there is nobody to share with: `LocalLeases` holds everything and does
nothing. Several engines on one PostgreSQL database (`SharedLeases`) hold each instance's turns and each task
under a lease in the database: taken at a turn's start (`hold`) or in the transaction that creates the
instance, extended by every commit and renewed by `_coordinate` while work is in hand; work of a process that
stopped renewing (it died) is taken over by the others. Changes are announced between processes with
LISTEN/NOTIFY (`on_remote`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from durahub.config import Config
from durahub.core.apps import app_of
from durahub.engine.cache import StateCache
from durahub.engine.dispatch import Streams
from durahub.engine.scheduler import Scheduler
from durahub.engine.tasks import ActivityTable
from durahub.engine.waiters import Waiters
from durahub.engine.work import PendingTask, now_us
from durahub.protos import pb
from durahub.store.base import SharedStore, Store, TaskRow

log = logging.getLogger("durahub.engine")

# How many tasks or ready instances one coordination round takes over at most.
CLAIM_BATCH = 100


def task_from_row(row: TaskRow) -> PendingTask:
    return PendingTask(row.seq, row.instance_id, row.generation, row.task_id,
                       pb.ActivityRequest.FromString(row.payload), app_id=row.app_id)


class LocalLeases:
    """The only engine on its store: it holds every instance and task, with nothing to write or renew."""

    def __init__(self, store: Store, owner: str) -> None:
        self._store = store
        self.owner = owner
        # Instances this engine took over after another engine process had moved them on (metrics).
        self.takeovers = 0

    async def start(self) -> list[PendingTask]:
        return [task_from_row(r) for r in await self._store.pending_tasks()]

    async def stop(self) -> None:
        return None

    async def hold(self, instance_id: str) -> bool:
        return True

    def for_creation(self, now: int, workers: bool, visible: bool) -> tuple[str | None, int | None]:
        return None, None

    def for_commit(self) -> tuple[str | None, int | None]:
        return None, None

    def runs_tasks_of(self, app_id: str) -> bool:
        """Whether this engine holds (and runs) new activity tasks of the app: every app, when alone."""
        return True

    def note(self, instance_id: str, until_us: int) -> None:
        return None

    def drop(self, instance_id: str) -> None:
        return None


class SharedLeases(LocalLeases):
    """One of several engines on a shared store."""

    def __init__(self, store: SharedStore, owner: str, config: Config, scheduler: Scheduler, tasks: ActivityTable,
                 streams: Streams, cache: StateCache, waiters: Waiters,
                 add_task: Callable[[PendingTask], None]) -> None:
        super().__init__(store, owner)
        self._shared = store
        self._config = config
        self._scheduler = scheduler
        self._tasks = tasks
        self._streams = streams
        self._cache = cache
        self._waiters = waiters
        self._add_task = add_task
        self._lease_us = int(config.lease_seconds * 1_000_000)
        # Until when this process holds each instance it ran a turn of.
        self._held: dict[str, int] = {}
        self._coordinator: asyncio.Task[None] | None = None
        # Since when no worker has been connected (None while one is), and whether the leases went with them.
        self._workerless_since: float | None = None
        self._released = False
        # Apps with work held here whose workers have left this engine, since when; and those past the grace.
        self._app_gone_since: dict[str, float] = {}
        self._apps_let_go: set[str] = set()
        # Set to run a coordination round now (unleased tasks announced for an app with workers here).
        self._wake = asyncio.Event()

    async def start(self) -> list[PendingTask]:
        # Other processes may hold tasks: take only what nobody holds, and keep taking (see _coordinate), and only
        # for apps with workers here.
        now = now_us()
        rows = await self._shared.claim_tasks(now + self._lease_us, now, CLAIM_BATCH, self._streams.apps())
        loop = asyncio.get_running_loop()

        def heard(kind: str, owner: str, instance_id: str) -> None:  # on the store's listening thread
            loop.call_soon_threadsafe(self.on_remote, kind, owner, instance_id)

        self._shared.listen(heard)
        self._coordinator = asyncio.create_task(self._coordinate(), name="durahub-coordinator")
        return [task_from_row(r) for r in rows]

    async def stop(self) -> None:
        if self._coordinator is not None:
            self._coordinator.cancel()
            try:
                await self._coordinator
            except asyncio.CancelledError:
                pass

    def for_creation(self, now: int, workers: bool, visible: bool) -> tuple[str | None, int | None]:
        # An engine with workers connected runs what it creates: the lease is taken in the creating transaction
        # rather than by a write of its own before the first turn. One without workers leaves it to the others.
        if workers and not visible:
            return self.owner, now + self._lease_us
        return None, None

    def for_commit(self) -> tuple[str | None, int | None]:
        return self.owner, now_us() + self._lease_us

    def runs_tasks_of(self, app_id: str) -> bool:
        # A task for an app with no worker here is left unleased for an engine that has one (`claim_tasks`).
        return self._streams.count(app_id) > 0

    def note(self, instance_id: str, until_us: int) -> None:
        self._held[instance_id] = until_us

    def drop(self, instance_id: str) -> None:
        self._held.pop(instance_id, None)

    async def hold(self, instance_id: str) -> bool:
        """Hold the instance's lease for this turn; drop a cached state another process has moved past."""
        now = now_us()
        held = self._held.get(instance_id)
        if held is not None and held - now > self._lease_us // 2:
            return True
        got = await self._shared.acquire_instance(instance_id, now + self._lease_us, now)
        if got is None:
            self._held.pop(instance_id, None)
            self._cache.forget(instance_id)
            return False
        self._held[instance_id] = now + self._lease_us
        state = self._cache.get(instance_id)
        if state is not None and (len(state.history), state.generation) != got:
            self.takeovers += 1
            self._cache.forget(instance_id)
        return True

    def on_remote(self, kind: str, owner: str, instance_id: str) -> None:
        if owner == self.owner:
            return
        if kind == "i":
            if self._streams.count(app_of(instance_id)):
                self._scheduler.schedule(instance_id)
        elif kind == "t":
            # Another engine wrote activity tasks for an app (here: `instance_id` is the app id) without a lease.
            if self._streams.count(instance_id):
                self._wake.set()
        elif kind == "c":
            if instance_id not in self._scheduler.turns:
                self._cache.forget(instance_id)
                self._held.pop(instance_id, None)
            self._waiters.notify(instance_id)

    async def _coordinate(self) -> None:
        """Keep leases on work in hand alive while a worker can do it, release them when the workers are gone,
        and pick up work that other processes dropped (by dying, or by losing their workers)."""
        # (The grace is noticed at this period: it ends within a quarter lease of its time.)
        period = max(0.05, self._config.lease_seconds / 4)
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=period)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                if not len(self._streams) and self._workers_gone():
                    await self._release()
                    continue
                await self._renew_and_take_over()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=coordination_failed")

    def _waiting_for_workers(self) -> list[str]:
        """Instances held here with a turn queued for an app whose workers are gone, within the grace: their
        leases are kept alive, so that a worker reconnecting in time finds its work still here. (Otherwise an
        instance's lease is renewed only while its turn is out: queued work of a busy engine may move on.)"""
        return [k for k in self._scheduler.ready() if k in self._held and app_of(k) in self._app_gone_since
                and app_of(k) not in self._apps_let_go]

    def _let_go_of_apps_gone(self) -> None:
        """Track apps whose workers left this engine while it holds their work. Past the grace, that work is let
        go of: activities are no longer renewed (their leases lapse and an engine with that app's workers claims
        them) and queued instances are no longer kept (`_waiting_for_workers`)."""
        now = time.monotonic()
        connected = set(self._streams.apps())
        held = {t.app_id for t in self._tasks} | {app_of(k) for k in self._scheduler.ready() if k in self._held}
        for app in list(self._app_gone_since):
            if app in connected or app not in held:
                del self._app_gone_since[app]
                self._apps_let_go.discard(app)
        for app in held - connected:
            since = self._app_gone_since.setdefault(app, now)
            if now - since >= self._config.worker_grace_seconds and app not in self._apps_let_go:
                self._apps_let_go.add(app)
                dropped = [t for t in self._tasks if t.app_id == app]
                for task in dropped:
                    self._tasks.drop(task)
                log.info("event=app_work_released app=%s tasks=%d reason=no_workers", app, len(dropped))

    def _workers_gone(self) -> bool:
        """No worker has been connected for the grace period (one reconnecting at once keeps its work)."""
        now = time.monotonic()
        if self._workerless_since is None:
            self._workerless_since = now
        return now - self._workerless_since >= self._config.worker_grace_seconds

    async def _release(self) -> None:
        """Nothing here can make progress: hand everything held to the other engines, as if this one had died.
        Once is enough: with no worker, no turn runs and no task is claimed."""
        if self._released:
            return
        self._released = True
        instances, tasks = await self._shared.release_leases()
        self._held.clear()
        for task in list(self._tasks):
            self._tasks.drop(task)
        if instances or tasks:
            log.info("event=leases_released reason=no_workers instances=%d tasks=%d grace_s=%.1f", instances, tasks,
                     self._config.worker_grace_seconds)

    async def _renew_and_take_over(self) -> None:
        if len(self._streams):
            self._workerless_since = None
            self._released = False
        now = now_us()
        until = now + self._lease_us
        in_flight = [i for i, t in self._scheduler.turns.items() if t is not None]
        for instance_id in in_flight:
            self._held[instance_id] = until
        self._let_go_of_apps_gone()
        kept = self._waiting_for_workers()
        for instance_id in kept:
            self._held[instance_id] = until
        if in_flight or kept or len(self._tasks):
            await self._shared.renew_leases(in_flight + kept, self._tasks.seqs(), until)
        if not len(self._streams):
            return  # within the grace: keep what is held, take nothing new
        apps = self._streams.apps()
        ready = await self._shared.sweep_ready(now, CLAIM_BATCH, apps)
        taken = [owner for _, owner in ready if owner is not None and owner != self.owner]
        if taken:
            log.info("event=instances_taken_over count=%d from=%s", len(taken), ",".join(sorted(set(taken))))
        for instance_id, _ in ready:
            self._scheduler.schedule(instance_id)
        if self._tasks.waiting() < CLAIM_BATCH:
            claimed = [row for row in await self._shared.claim_tasks(until, now, CLAIM_BATCH, apps)
                       if self._tasks.get(row.seq) is None]
            if claimed:
                log.info("event=tasks_taken_over count=%d", len(claimed))
            for row in claimed:
                self._add_task(task_from_row(row))
