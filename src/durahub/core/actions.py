"""Applying a worker's actions to a turn, one handler per action kind, the way daprd's applier does: the
history events each action becomes, and the effects the turn must make durable (`core.outcome`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from durahub.core.outcome import (
    ActivityTask,
    ChildStart,
    Message,
    TimerTask,
    TurnOutcome,
    execution_started,
    new_event,
    workflow_started,
)
from durahub.core.propagation import Propagation
from durahub.core.state import COMPLETED, TERMINATED, InstanceState
from durahub.core.time import is_never, ts_to_us
from durahub.core.tracing import fresh_root
from durahub.protos import pb


@dataclass
class Applying:
    """One worker answer being applied: the state it updates and the outcome it builds."""

    state: InstanceState
    outcome: TurnOutcome
    now_us: int
    new_execution_id: Callable[[], str]
    app_id: str
    _propagation: Propagation | None = None

    @property
    def propagation(self) -> Propagation:
        """The instance's side of history propagation for this answer (made on first use)."""
        if self._propagation is None:
            self._propagation = Propagation(self.app_id, self.state.instance_id, self.state.incoming)
        return self._propagation

    def add(self, ev: pb.HistoryEvent) -> None:
        self.state.append(ev)
        self.outcome.appended.append(ev)

    def route(self, ev: pb.HistoryEvent, action: pb.WorkflowAction) -> str:
        """Record the action's router on its event, the way daprd's applier does (source = this app, the target
        as the worker gave it), and return the app the action addresses."""
        if action.HasField("router"):
            ev.router.CopyFrom(action.router)
        if self.app_id:
            ev.router.sourceAppID = self.app_id
        return ev.router.targetAppID or self.app_id



def _schedule_task(a: Applying, action: pb.WorkflowAction) -> None:
    st = action.scheduleTask
    ev = new_event(a.now_us, action.id)
    te = ev.taskScheduled
    te.name = st.name
    if st.HasField("version"):
        te.version.CopyFrom(st.version)
    if st.HasField("input"):
        te.input.CopyFrom(st.input)
    te.taskExecutionId = st.taskExecutionId
    te.historyPropagationScope = st.historyPropagationScope
    trace = a.state.trace
    if trace is not None:
        te.parentTraceContext.CopyFrom(trace.to_proto())
    target = a.route(ev, action)
    a.add(ev)
    request = pb.ActivityRequest(name=st.name, taskId=action.id, taskExecutionId=st.taskExecutionId)
    if st.HasField("version"):
        request.version.CopyFrom(st.version)
    if st.HasField("input"):
        request.input.CopyFrom(st.input)
    if st.historyPropagationScope:
        sent = a.propagation.outgoing(st.historyPropagationScope, a.state.history)
        if sent is not None:
            request.propagatedHistory.CopyFrom(sent)
    request.workflowInstance.instanceId = a.state.instance_id
    request.workflowInstance.executionId.value = a.state.execution_id
    if trace is not None:
        # The orchestration span until the engine hands the task out under an activity span of its own.
        request.parentTraceContext.CopyFrom(te.parentTraceContext)
    a.outcome.tasks.append(ActivityTask(task_id=action.id, generation=a.state.generation, request=request,
                                        app_id=target))


def _create_timer(a: Applying, action: pb.WorkflowAction) -> None:
    ct = action.createTimer
    ev = new_event(a.now_us, action.id)
    tc = ev.timerCreated
    tc.fireAt.CopyFrom(ct.fireAt)
    tc.name = ct.name
    origin = ct.WhichOneof("origin")
    if origin:
        getattr(tc, origin).CopyFrom(getattr(ct, origin))
    a.add(ev)
    fire_us = ts_to_us(ct.fireAt)
    if not is_never(fire_us):
        fired = new_event(a.now_us)
        fired.timerFired.timerId = action.id
        fired.timerFired.fireAt.CopyFrom(ct.fireAt)
        a.outcome.timers.append(TimerTask(generation=a.state.generation, fire_at_us=fire_us, event=fired))


def _create_child(a: Applying, action: pb.WorkflowAction) -> None:
    cc = action.createChildWorkflow
    state = a.state
    child_id = cc.instanceId or f"{state.instance_id}:{(0x10000 + action.id) & 0xFFFF:04x}"
    ev = new_event(a.now_us, action.id)
    ce = ev.childWorkflowInstanceCreated
    ce.instanceId = child_id
    ce.name = cc.name
    if cc.HasField("version"):
        ce.version.CopyFrom(cc.version)
    if cc.HasField("input"):
        ce.input.CopyFrom(cc.input)
    ce.historyPropagationScope = cc.historyPropagationScope
    if state.trace is not None:
        ce.parentTraceContext.CopyFrom(state.trace.to_proto())
    target = a.route(ev, action)
    a.add(ev)
    incoming = a.propagation.outgoing(cc.historyPropagationScope, a.state.history) if cc.historyPropagationScope \
        else None
    parent = pb.ParentInstanceInfo(taskScheduledId=action.id, appID=a.app_id)
    parent.name.value = state.name
    parent.workflowInstance.instanceId = state.instance_id
    parent.workflowInstance.executionId.value = state.execution_id
    start = execution_started(
        a.now_us,
        child_id,
        a.new_execution_id(),
        cc.name,
        cc.input.value if cc.HasField("input") else None,
        parent=parent,
        app_id=a.app_id,
        target_app_id=target if target != a.app_id else "",
        trace_parent=state.trace,
    )
    conflict = new_event(a.now_us)
    conflict.childWorkflowInstanceFailed.taskScheduledId = action.id
    conflict.childWorkflowInstanceFailed.failureDetails.errorType = "WorkflowInstanceAlreadyExists"
    conflict.childWorkflowInstanceFailed.failureDetails.errorMessage = (
        f"an active workflow with ID '{child_id}' already exists"
    )
    a.outcome.children.append(ChildStart(child_id, cc.name, start, conflict, action.id, app_id=target,
                                         incoming=incoming))


def _send_event(a: Applying, action: pb.WorkflowAction) -> None:
    se = action.sendEvent
    ev = new_event(a.now_us, action.id)
    ev.eventSent.instanceId = se.instance.instanceId
    ev.eventSent.name = se.name
    if se.HasField("data"):
        ev.eventSent.input.CopyFrom(se.data)
    a.add(ev)
    raised = new_event(a.now_us)
    raised.eventRaised.name = se.name
    if se.HasField("data"):
        raised.eventRaised.input.CopyFrom(se.data)
    a.outcome.messages.append(Message(se.instance.instanceId, raised, a.app_id))


def _terminate_other(a: Applying, action: pb.WorkflowAction) -> None:
    tw = action.terminateWorkflow
    term = new_event(a.now_us)
    if tw.HasField("reason"):
        term.executionTerminated.input.CopyFrom(tw.reason)
    term.executionTerminated.recurse = tw.recurse
    a.outcome.messages.append(Message(tw.instanceId, term, a.app_id))


ACTIONS: dict[str, Callable[[Applying, pb.WorkflowAction], None]] = {
    "scheduleTask": _schedule_task,
    "createTimer": _create_timer,
    "createChildWorkflow": _create_child,
    "sendEvent": _send_event,
    "terminateWorkflow": _terminate_other,
}


def continue_as_new(a: Applying, completion: pb.CompleteWorkflowAction) -> None:
    state = a.state
    execution_id = a.new_execution_id()
    start = execution_started(
        a.now_us,
        state.instance_id,
        execution_id,
        state.name,
        completion.result.value if completion.HasField("result") else None,
        parent=state.parent,
        app_id=a.app_id,
        tags=state.tags,  # a new generation keeps the instance's tags
        trace_parent=fresh_root(execution_id) if state.trace is not None else None,
    )
    a.outcome.continue_as_new = [workflow_started(a.now_us), start, *completion.carryoverEvents]
    if state.incoming is not None:
        a.outcome.next_incoming = a.propagation.next_generation(state.history)


def complete(a: Applying, completion: pb.CompleteWorkflowAction, completion_id: int,
              terminate: pb.ExecutionTerminatedEvent | None) -> None:
    """The executionCompleted event, the parent's notification, and a recursive terminate's messages."""
    state = a.state
    ev = new_event(a.now_us, completion_id)
    ec = ev.executionCompleted
    ec.workflowStatus = completion.workflowStatus
    if completion.HasField("result"):
        ec.result.CopyFrom(completion.result)
    if completion.HasField("failureDetails"):
        ec.failureDetails.CopyFrom(completion.failureDetails)
    if a.app_id:
        ev.router.sourceAppID = a.app_id
    a.add(ev)
    if state.parent is not None:
        note = new_event(a.now_us)
        parent_app = state.parent_app_id or a.app_id
        if a.app_id:
            note.router.sourceAppID = a.app_id
            note.router.targetAppID = parent_app
        parent_task = state.parent.taskScheduledId
        if completion.workflowStatus == COMPLETED:
            note.childWorkflowInstanceCompleted.taskScheduledId = parent_task
            if completion.HasField("result"):
                note.childWorkflowInstanceCompleted.result.CopyFrom(completion.result)
        else:
            note.childWorkflowInstanceFailed.taskScheduledId = parent_task
            if completion.workflowStatus != TERMINATED and completion.HasField("failureDetails"):
                note.childWorkflowInstanceFailed.failureDetails.CopyFrom(completion.failureDetails)
            else:
                note.childWorkflowInstanceFailed.failureDetails.SetInParent()
        a.outcome.messages.append(Message(state.parent.workflowInstance.instanceId, note, parent_app))
    if terminate is not None and terminate.recurse:
        for task_id, child_id in state.children.items():
            term = new_event(a.now_us)
            term.executionTerminated.CopyFrom(terminate)
            a.outcome.messages.append(Message(child_id, term, state.child_app(task_id)))
