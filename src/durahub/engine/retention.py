"""Retention: finished instances are purged once their status's time to live is up (Dapr 1.17's
`stateRetentionPolicy`; the rules are in `durahub.core.retention`).

Dapr arms one reminder per instance as it finishes. durahub sweeps instead. Soon after start, and then every
`RetentionPolicy.sweep_seconds`, it purges, for each terminal status with a time to live, the instances that
finished after the policy first covered that status and before `now - ttl`. It purges them oldest first, in
batches, through the engine's purge path (`Instances.purge_expired`), which clears what the engine remembers
of them and tells other processes. Several engines on one database may sweep at the same time: each batch
skips rows that another engine is deleting, so no purge fails and no instance is deleted twice.

One difference from Dapr follows from sweeping: a reminder keeps the time to live an instance finished under,
while a sweep applies the policy in force to every instance finished since the policy first covered its status,
so a changed time to live also reaches instances that had already finished.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from durahub.core.retention import RetentionPolicy, format_duration, since_key
from durahub.core.state import status_name
from durahub.engine.work import now_us
from durahub.store.base import Store, StoreError

log = logging.getLogger("durahub.engine")

#: Instances deleted per transaction: short enough not to hold up turns queued behind it on the writer.
BATCH = 200

# (status, since_us, before_us, limit) -> ids purged
PurgeExpired = Callable[[int, int, int, int], Awaitable[list[str]]]


class RetentionPurger:
    def __init__(self, policy: RetentionPolicy, store: Store, purge: PurgeExpired, batch: int = BATCH) -> None:
        self._policy = policy
        self._store = store
        self._purge = purge
        self._batch = batch
        # Per status: instances that finished before this time predate the policy and are kept.
        self._since: dict[int, int] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        now = now_us()
        for status in self._policy.ttls():
            self._since[status] = int(await self._store.setdefault_setting(since_key(status), str(now)))
        log.info("event=retention_enabled %s sweep_every=%s", self._policy.describe(),
                 format_duration(round(self._policy.sweep_seconds() * 1_000_000)))
        self._task = asyncio.create_task(self._run(), name="durahub-retention")

    async def stop(self) -> None:
        """Stop sweeping; a batch being purged finishes first (no store call is cut off)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep(now_us())
            except StoreError as exc:  # the database is away or busy: the next sweep tries again
                log.warning("event=retention_sweep_failed error=%r", exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not end retention for good; say so loudly
                log.error("event=retention_sweep_failed error=%r", exc, exc_info=exc)
            try:
                await asyncio.wait_for(self._stopping.wait(), self._policy.sweep_seconds())
            except TimeoutError:
                pass

    async def sweep(self, now: int) -> dict[int, int]:
        """Purge every instance due at `now`. Returns how many were purged per status; logs one line if any."""
        counts: dict[int, int] = {}
        for status, before in self._policy.cutoffs(now).items():
            since = self._since[status]
            while not self._stopping.is_set():
                gone = await self._purge(status, since, before, self._batch)
                if gone:
                    counts[status] = counts.get(status, 0) + len(gone)
                if len(gone) < self._batch:
                    break
        if counts:
            log.info("event=retention_purged count=%d status=%s", sum(counts.values()),
                     ",".join(f"{status_name(s)}:{n}" for s, n in counts.items()))
        return counts
