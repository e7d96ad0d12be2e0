"""Rerun from an event: a new instance whose history is a finished instance's history up to one of its
scheduling events, with that event and any work left unfinished before it scheduled again."""

from __future__ import annotations

from dataclasses import dataclass, field

from durahub.core.outcome import ActivityTask, ChildStart, TimerTask, execution_started
from durahub.core.propagation import Propagation, scope_of
from durahub.core.state import InstanceState
from durahub.core.time import is_never, ts_to_us, us_to_ts
from durahub.core.tracing import SpanRef, stamp_start
from durahub.errors import RerunInvalid, RerunNotAllowed, RerunTargetNotFound
from durahub.protos import pb

__all__ = ["RerunInvalid", "RerunNotAllowed", "RerunTargetNotFound", "RerunPlan", "build_rerun"]

RERUNNABLE = ("taskScheduled", "timerCreated", "childWorkflowInstanceCreated")


@dataclass
class RerunPlan:
    state: InstanceState
    tasks: list[ActivityTask] = field(default_factory=list)
    timers: list[TimerTask] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)


def build_rerun(
    history: list[pb.HistoryEvent],
    source_id: str,
    event_id: int,
    new_id: str,
    new_execution_id: str,
    input: str | None,
    overwrite_input: bool,
    now_us: int,
    new_child_id: str = "",
    app_id: str = "",
    trace_parent: SpanRef | None = None,
) -> RerunPlan:
    """The rerun of a finished instance of app `app_id` as instance `new_id` of the same app. `trace_parent`:
    the span the rerun's execution runs under (None: untraced)."""
    events = _history_up_to(history, source_id, event_id, new_id, new_execution_id, input, overwrite_input,
                            trace_parent)
    target = events[-1]
    state = InstanceState(instance_id=new_id, app_id=app_id)
    for ev in events:
        if ev.HasField("childWorkflowInstanceCreated"):
            created = ev.childWorkflowInstanceCreated
            if ev is target and new_child_id:
                created.instanceId = new_child_id
            else:
                created.instanceId = f"{new_id}:{ev.eventId & 0xFFFF:04x}"
        state.append(ev)
    plan = RerunPlan(state=state)
    _schedule_unfinished(plan, events, new_id, new_execution_id, now_us)
    return plan


def _history_up_to(
    history: list[pb.HistoryEvent], source_id: str, event_id: int, new_id: str, new_execution_id: str,
    input: str | None, overwrite_input: bool, trace_parent: SpanRef | None,
) -> list[pb.HistoryEvent]:
    """A copy of the history up to the rerun event, for the new instance, the event marked as rerun."""
    index = next(
        (i for i, e in enumerate(history) if e.eventId == event_id and e.WhichOneof("eventType") in RERUNNABLE),
        None,
    )
    if index is None:
        raise RerunTargetNotFound(f"workflow event with ID '{event_id}' not found or not rerunnable in '{source_id}'")
    events: list[pb.HistoryEvent] = []
    for original in history[: index + 1]:
        ev = pb.HistoryEvent()
        ev.CopyFrom(original)
        if ev.HasField("executionStarted"):
            es = ev.executionStarted
            es.workflowInstance.instanceId = new_id
            es.workflowInstance.executionId.value = new_execution_id
            # A new execution: not a second run of the source's orchestration span, nor part of its trace.
            es.ClearField("parentTraceContext")
            es.ClearField("workflowSpanID")
            stamp_start(ev, trace_parent)
        events.append(ev)
    target = events[-1]
    body = getattr(target, target.WhichOneof("eventType") or "")
    body.rerunParentInstanceInfo.instanceID = source_id
    if overwrite_input:
        # The replacement input is for the rerun event itself (the activity or child), never the workflow.
        if target.HasField("timerCreated"):
            raise RerunInvalid("a timer takes no input: input cannot be overwritten when rerunning from a timer")
        if input is None:
            body.ClearField("input")
        else:
            body.input.value = input
    return events


def _schedule_unfinished(
    plan: RerunPlan, events: list[pb.HistoryEvent], new_id: str, new_execution_id: str, now_us: int
) -> None:
    """The activities, timers and children the copied history started but did not see finish run again."""
    state = plan.state
    # Re-driven calls get history again, rebuilt from the rerun instance's (as daprd's rerun does).
    propagation = Propagation(state.app_id, new_id, None) if state.app_id else None
    for ev in events:
        kind = ev.WhichOneof("eventType")
        scope = scope_of(ev)
        sent = propagation.outgoing(scope, state.history) if propagation is not None and scope else None
        if kind == "taskScheduled" and ev.eventId not in state.task_results:
            ts = ev.taskScheduled
            request = pb.ActivityRequest(name=ts.name, taskId=ev.eventId, taskExecutionId=ts.taskExecutionId)
            if ts.HasField("input"):
                request.input.CopyFrom(ts.input)
            request.workflowInstance.instanceId = new_id
            request.workflowInstance.executionId.value = new_execution_id
            if sent is not None:
                request.propagatedHistory.CopyFrom(sent)
            plan.tasks.append(ActivityTask(task_id=ev.eventId, generation=0, request=request,
                                           app_id=ev.router.targetAppID or state.app_id))
        elif kind == "timerCreated" and ev.eventId not in state.fired_timers:
            fire_us = ts_to_us(ev.timerCreated.fireAt)
            if not is_never(fire_us):
                fired = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us))
                fired.timerFired.timerId = ev.eventId
                fired.timerFired.fireAt.CopyFrom(ev.timerCreated.fireAt)
                plan.timers.append(TimerTask(generation=0, fire_at_us=fire_us, event=fired))
        elif kind == "childWorkflowInstanceCreated" and ev.eventId not in state.child_results:
            created = ev.childWorkflowInstanceCreated
            parent = pb.ParentInstanceInfo(taskScheduledId=ev.eventId, appID=state.app_id)
            child_app = state.child_app(ev.eventId)
            parent.name.value = state.name
            parent.workflowInstance.instanceId = new_id
            parent.workflowInstance.executionId.value = new_execution_id
            start = execution_started(
                now_us, created.instanceId, new_execution_id + f":{ev.eventId}", created.name,
                created.input.value if created.HasField("input") else None, parent=parent, app_id=state.app_id,
                target_app_id=child_app if child_app != state.app_id else "",
            )
            conflict = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us))
            conflict.childWorkflowInstanceFailed.taskScheduledId = ev.eventId
            conflict.childWorkflowInstanceFailed.failureDetails.errorType = "WorkflowInstanceAlreadyExists"
            conflict.childWorkflowInstanceFailed.failureDetails.errorMessage = (
                f"an active workflow with ID '{created.instanceId}' already exists"
            )
            plan.children.append(ChildStart(created.instanceId, created.name, start, conflict, ev.eventId,
                                            app_id=child_app, incoming=sent))
