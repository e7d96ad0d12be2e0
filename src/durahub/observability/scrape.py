"""The metrics page: the series recorded so far plus what the engine and its store hold at scrape time."""

from __future__ import annotations

import time

from durahub.observability.metrics import EngineGauges, WorkflowMetrics
from durahub.protos import pb
from durahub.store.base import Store


async def exposition(metrics: WorkflowMetrics, store: Store, *, now_us: int, pending_activities: int,
                     oldest_activity_at: float | None, pending_timers: int, workers: dict[str, int],
                     takeovers: int) -> str:
    """`oldest_activity_at`: perf_counter() when the oldest activity without a result was queued."""
    held = await store.gauges(now_us)
    stalled: dict[str, int] = {}
    for payload in held.stalled_events:
        ev = pb.HistoryEvent.FromString(payload)
        reason = pb.StalledReason.Name(ev.executionStalled.reason) if ev.HasField("executionStalled") else "UNKNOWN"
        stalled[reason] = stalled.get(reason, 0) + 1
    oldest = 0.0
    if held.oldest_ready_us is not None:
        oldest = max(0.0, (now_us - held.oldest_ready_us) / 1e6)
    if oldest_activity_at is not None:
        oldest = max(oldest, time.perf_counter() - oldest_activity_at)
    metrics.lease_takeovers.values[()] = float(takeovers)
    return metrics.exposition(EngineGauges(
        instances=held.statuses, stalled=stalled, pending_activities=pending_activities,
        pending_timers=pending_timers, oldest_pending_seconds=oldest, workers=workers,
    ))
