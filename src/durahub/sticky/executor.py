"""The sticky orchestration executor: a subclass of the SDK's `_OrchestrationExecutor` whose `execute` keeps
each running workflow's context (and with it the suspended generator) between turns.

The SDK's executor builds a fresh context every turn and replays old events, then new events, through
`process_event`. The state after a turn is a function of the events processed so far, so when the history a
turn is sent starts with exactly the events the live context has processed, feeding it only the rest (the
events the engine committed after the last turn, as replay, then the new events) gives the state a full replay
would, without re-running the workflow from its start. Anything else replays in full, as the SDK does.

Stdlib only; the SDK's worker module is passed in (1.18.3 and 1.19 have the same executor).
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

from .cache import Entry, StickyCache

# How far into a history its executionStarted event may be (after the orchestratorStarted events before it).
STARTED_WITHIN = 8


def _copy(event: Any) -> Any:
    out = event.__class__()
    out.CopyFrom(event)
    return out


def _started_index(old_events: Any, new_events: Any) -> int | None:
    """Where the executionStarted event is in old + new events, if near their start."""
    for i, event in enumerate(old_events[:STARTED_WITHIN]):
        if event.HasField("executionStarted"):
            return i
    for i, event in enumerate(new_events[:STARTED_WITHIN]):
        if event.HasField("executionStarted"):
            return len(old_events) + i
    return None


def make_executor_class(worker: ModuleType, cache: StickyCache) -> type:
    """The sticky subclass of `worker._OrchestrationExecutor`, sharing `cache`."""
    base: Any = worker._OrchestrationExecutor
    pb, task = worker.pb, worker.task

    class StickyOrchestrationExecutor(base):  # type: ignore[misc]
        def execute(self, instance_id: str, old_events: Any, new_events: Any,
                    propagated_history: Any = None) -> Any:
            if not new_events:
                raise task.WorkflowStateError('The new history event list must have at least one event in it.')
            entry = cache.take(instance_id)
            if entry is not None:
                start = entry.resume_point(self._registry, old_events)
                if start is not None:
                    cache.stats.sticky_turns += 1
                    self._is_suspended, self._suspended_events = entry.is_suspended, entry.suspended_events
                    entry.ctx.set_propagated_history(propagated_history)
                    result = self._run(entry.ctx, instance_id, old_events[start:], new_events)
                    self._keep(entry.ctx, instance_id, old_events, new_events, entry.started_at, entry.started)
                    return result
                cache.stats.mismatches += 1
            cache.stats.full_replays += 1
            ctx = worker._RuntimeOrchestrationContext(instance_id)
            ctx.set_propagated_history(propagated_history)
            result = self._run(ctx, instance_id, old_events, new_events)
            at = _started_index(old_events, new_events)
            if at is not None:
                started = old_events[at] if at < len(old_events) else new_events[at - len(old_events)]
                self._keep(ctx, instance_id, old_events, new_events, at, _copy(started))
            return result

        def _keep(self, ctx: Any, instance_id: str, old_events: Any, new_events: Any, started_at: int,
                  started: Any) -> None:
            # Completed, failed, continued-as-new, terminated or stalled: its generator is never reused.
            if ctx._is_complete or ctx._completion_status is not None:
                return
            cache.put(instance_id, Entry(
                registry=self._registry, ctx=ctx, is_suspended=self._is_suspended,
                suspended_events=self._suspended_events, seen=len(old_events) + len(new_events),
                started_at=started_at, started=started, last=_copy(new_events[-1])))

        def _run(self, ctx: Any, instance_id: str, replay_events: Any, new_events: Any) -> Any:
            """The body of the SDK's `_OrchestrationExecutor.execute` after it creates its context."""
            try:
                self._logger.debug(
                    f'{instance_id}: Rebuilding local state with {len(replay_events)} history event...')
                ctx._is_replaying = True
                for old_event in replay_events:
                    self.process_event(ctx, old_event)
                if self._logger.level <= logging.DEBUG:
                    summary = worker._get_new_event_summary(new_events)
                    self._logger.debug(f'{instance_id}: Processing {len(new_events)} new event(s): {summary}')
                ctx._is_replaying = False
                for new_event in new_events:
                    self.process_event(ctx, new_event)
            except worker.VersionNotRegisteredException:
                ctx.set_version_not_registered()
            except Exception as ex:
                ctx.set_failed(ex)

            if not ctx._is_complete:
                task_count = len(ctx._pending_tasks)
                event_count = len(ctx._pending_events)
                self._logger.info(
                    f'{instance_id}: Orchestrator yielded with {task_count} task(s) and {event_count} event(s) '
                    'outstanding.')
            elif ctx._completion_status and ctx._completion_status is not pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW:
                status = worker.ph.get_orchestration_status_str(ctx._completion_status)
                self._logger.info(f'{instance_id}: Orchestration completed with status: {status}')

            actions = ctx.get_actions()
            if self._logger.level <= logging.DEBUG:
                self._logger.debug(
                    f'{instance_id}: Returning {len(actions)} action(s): {worker._get_action_summary(actions)}')
            return worker.ExecutionResults(
                actions=actions,
                encoded_custom_status=ctx._encoded_custom_status,
                version_name=getattr(ctx, '_version_name', None),
                patches=ctx._encountered_patches,
            )

    StickyOrchestrationExecutor.__name__ = StickyOrchestrationExecutor.__qualname__ = "_OrchestrationExecutor"
    return StickyOrchestrationExecutor
