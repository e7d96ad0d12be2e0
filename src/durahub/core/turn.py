"""One orchestration turn: which inbox events it carries, and what the worker's answer means.

`prepare_turn` filters an instance's inbox into the turn's new events (dropping duplicates, late and
stale deliveries). `apply_response` turns the worker's `WorkflowResponse` into history to append and
effects to make durable (activity tasks, timers, child starts, messages to other instances).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from durahub.core.propagation import Propagation, incoming_size
from durahub.core.state import (
    COMPLETED,
    CONTINUED_AS_NEW,
    TERMINATED,
    InstanceState,
)
from durahub.core.time import is_never, ts_to_us, us_to_ts
from durahub.core.tracing import SpanRef, fresh_root, stamp_start
from durahub.protos import pb

# Continue-as-new iterations run inside one turn (one commit) before the progress is saved and the next
# generation gets a turn of its own (durabletask-go's limit; daprd then saves and goes on, so do we).
MAX_CONTINUE_AS_NEW_LOOPS = 20


@dataclass
class InboxItem:
    seq: int
    event: pb.HistoryEvent
    # Set on timers and activity results: they belong to one generation (ids restart after continue-as-new).
    generation: int | None = None


@dataclass
class TurnPlan:
    """What a turn sends to the worker and which inbox rows it consumes."""

    consumed: list[int]
    new_events: list[pb.HistoryEvent]
    terminate: pb.ExecutionTerminatedEvent | None = None

    @property
    def runnable(self) -> bool:
        return bool(self.new_events)


@dataclass
class ActivityTask:
    task_id: int
    generation: int
    request: pb.ActivityRequest
    # The app whose workers run it (the action's target app, else the instance's own).
    app_id: str = ""


@dataclass
class TimerTask:
    generation: int
    fire_at_us: int
    event: pb.HistoryEvent


@dataclass
class ChildStart:
    instance_id: str
    name: str
    start_event: pb.HistoryEvent
    # Delivered to the parent instead when the id is held by an active instance.
    conflict_event: pb.HistoryEvent
    parent_task_id: int
    # The app the child is created in (the action's target app, else the parent's own).
    app_id: str = ""
    # The history propagated to it, kept as its incoming history.
    incoming: pb.PropagatedHistory | None = None


@dataclass
class Message:
    """An event for another instance's inbox (parent notification, recursive terminate, sendEvent)."""

    target: str
    event: pb.HistoryEvent
    # The target instance's app.
    app_id: str = ""


@dataclass
class TurnOutcome:
    """Everything one turn makes durable, in one transaction."""

    state: InstanceState
    consumed: list[int]
    appended: list[pb.HistoryEvent]
    replace_history: bool = False
    custom_status: str | None = None
    tasks: list[ActivityTask] = field(default_factory=list)
    timers: list[TimerTask] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    stalled: bool = False
    # Set when the worker asked to continue as new: the engine re-runs the turn with these new events.
    continue_as_new: list[pb.HistoryEvent] | None = None
    # Events queued ahead of the instance's inbox (a new generation's start, see `start_next_generation`).
    inbox_front: list[pb.HistoryEvent] = field(default_factory=list)
    # Continue-as-new: the next generation's incoming history (daprd's rule, `core.propagation`).
    next_incoming: pb.PropagatedHistory | None = None


def _event(now_us: int, event_id: int = -1) -> pb.HistoryEvent:
    return pb.HistoryEvent(eventId=event_id, timestamp=us_to_ts(now_us))


def workflow_started(now_us: int) -> pb.HistoryEvent:
    ev = _event(now_us)
    ev.workflowStarted.SetInParent()
    return ev


def execution_started(
    now_us: int,
    instance_id: str,
    execution_id: str,
    name: str,
    input: str | None,
    parent: pb.ParentInstanceInfo | None = None,
    scheduled_us: int | None = None,
    app_id: str = "",
    target_app_id: str = "",
    tags: dict[str, str] | None = None,
    trace_parent: SpanRef | None = None,
) -> pb.HistoryEvent:
    """`trace_parent`: the span the execution runs under (the create span, the parent's orchestration span)."""
    ev = _event(now_us)
    es = ev.executionStarted
    es.name = name
    if input is not None:
        es.input.value = input
    es.workflowInstance.instanceId = instance_id
    es.workflowInstance.executionId.value = execution_id
    if parent is not None:
        es.parentInstance.CopyFrom(parent)
    if scheduled_us is not None:
        es.scheduledStartTimestamp.CopyFrom(us_to_ts(scheduled_us))
    if tags:
        es.tags.update(tags)
    if app_id:
        ev.router.sourceAppID = app_id
    if target_app_id:
        # What makes the SDK's `ctx.app_id` the child's app for a child created in another app.
        ev.router.targetAppID = target_app_id
    if trace_parent is not None:
        stamp_start(ev, trace_parent)
    return ev


def prepare_turn(state: InstanceState, inbox: list[InboxItem], now_us: int) -> TurnPlan:
    """Choose the inbox events of the next turn, dropping what must never reach the worker."""
    consumed = [item.seq for item in inbox]
    if state.is_terminal:
        # Never dispatch a finished instance: its history holds executionCompleted, which the SDK cannot replay.
        return TurnPlan(consumed=consumed, new_events=[])
    has_start = state.started or any(i.event.HasField("executionStarted") for i in inbox)
    if not has_start:
        # Events that reached an instance before its (scheduled) start wait for it.
        return TurnPlan(consumed=[], new_events=[])

    accepted: list[pb.HistoryEvent] = []
    task_results = set(state.task_results)
    fired = set(state.fired_timers)
    child_results = set(state.child_results)
    started = state.started
    suspended = state.suspended
    terminate: pb.ExecutionTerminatedEvent | None = None
    for item in inbox:
        ev = item.event
        kind = ev.WhichOneof("eventType")
        if item.generation is not None and item.generation != state.generation:
            continue  # a timer or result of an execution that continued as new
        if kind == "executionStarted":
            if started:
                continue
            started = True
        elif kind in ("taskCompleted", "taskFailed"):
            task_id = getattr(ev, kind).taskScheduledId
            if task_id not in state.scheduled_tasks or task_id in task_results:
                continue
            task_results.add(task_id)
        elif kind == "timerFired":
            timer_id = ev.timerFired.timerId
            if timer_id not in state.timers or timer_id in fired:
                continue
            fired.add(timer_id)
            ev = copy.deepcopy(ev)
            ev.timestamp.CopyFrom(us_to_ts(now_us))  # the actual fire time
        elif kind in ("childWorkflowInstanceCompleted", "childWorkflowInstanceFailed"):
            task_id = getattr(ev, kind).taskScheduledId
            if task_id not in state.children or task_id in child_results:
                continue
            child_results.add(task_id)
        elif kind == "executionSuspended":
            if suspended:
                continue
            suspended = True
        elif kind == "executionResumed":
            # The SDK fails a workflow that is resumed while not suspended: make it a no-op.
            if not suspended:
                continue
            suspended = False
        elif kind == "executionTerminated":
            if terminate is not None:
                continue
            terminate = ev.executionTerminated
        accepted.append(ev)
    if not accepted:
        return TurnPlan(consumed=consumed, new_events=[])
    return TurnPlan(consumed=consumed, new_events=[workflow_started(now_us), *accepted], terminate=terminate)


def _stall(state: InstanceState, plan: TurnPlan, reason: int, description: str, now_us: int) -> TurnOutcome:
    """Stalls keep the inbox and commit nothing of the turn but one executionStalled event."""
    appended: list[pb.HistoryEvent] = []
    last = state.history[-1] if state.history else None
    if not (last is not None and last.HasField("executionStalled") and last.executionStalled.description == description):
        ev = _event(now_us)
        ev.executionStalled.reason = reason  # type: ignore[assignment]  # an enum value (the stubs want the enum type)
        ev.executionStalled.description = description
        appended.append(ev)
    return TurnOutcome(state=state, consumed=[], appended=appended, stalled=True)


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


@dataclass
class _Applying:
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


def apply_response(
    state: InstanceState,
    plan: TurnPlan,
    response: pb.WorkflowResponse,
    now_us: int,
    new_execution_id: Callable[[], str],
    app_id: str = "",
    budget: int | None = None,
) -> TurnOutcome:
    """Apply a worker's answer to a turn, updating `state` in place unless the turn stalls. `budget`: the
    largest work item a worker can be sent (an activity carrying propagated history over it stalls the turn)."""
    stalled = _version_stall(state, plan, response, now_us)
    if stalled is None and budget is not None:
        stalled = _propagation_stall(state, plan, response, budget, now_us)
    if stalled is not None:
        return stalled
    # The state is updated in place (copying a long history every turn would be quadratic); if the
    # commit fails, the engine discards its cached state and reloads the committed one.
    for ev in plan.new_events:
        state.append(ev)
    outcome = TurnOutcome(
        state=state,
        consumed=plan.consumed,
        appended=list(plan.new_events),
        custom_status=response.customStatus.value if response.HasField("customStatus") else None,
    )
    applying = _Applying(state, outcome, now_us, new_execution_id, state.app_id or app_id)
    completion: pb.CompleteWorkflowAction | None = None
    completion_id = -1
    for action in response.actions:
        kind = action.WhichOneof("workflowActionType")
        if kind == "completeWorkflow":
            completion = action.completeWorkflow
            completion_id = action.id
            break  # the SDK clears pending actions on completion; anything after it is ignored
        if plan.terminate is not None:
            continue  # a terminated workflow schedules nothing new
        handler = _ACTIONS.get(kind or "")
        if handler is not None:
            handler(applying, action)

    if plan.terminate is not None:
        # Terminate wins over continue-as-new and over anything the worker did not finish.
        if completion is None or completion.workflowStatus != TERMINATED:
            completion = pb.CompleteWorkflowAction(workflowStatus=TERMINATED)
            if plan.terminate.HasField("input"):
                completion.result.CopyFrom(plan.terminate.input)
            completion_id = -1
        outcome.tasks.clear()
        outcome.timers.clear()
        outcome.children.clear()
    elif completion is not None and completion.workflowStatus == CONTINUED_AS_NEW:
        _continue_as_new(applying, completion)
        return outcome
    if completion is not None:
        _complete(applying, completion, completion_id, plan.terminate)
    return outcome


def _version_stall(
    state: InstanceState, plan: TurnPlan, response: pb.WorkflowResponse, now_us: int
) -> TurnOutcome | None:
    """Stall on patches or versions the worker does not have; otherwise record new patches on the turn."""
    current_patches = list(response.version.patches) if response.HasField("version") else []
    version_name = response.version.name if response.HasField("version") else ""
    recorded = state.patches
    if current_patches[: len(recorded)] != recorded:
        return _stall(
            state,
            plan,
            pb.PATCH_MISMATCH,
            f"Patch mismatch. History patches: {_go_list(recorded)}, current patches: {_go_list(current_patches)}. ",
            now_us,
        )
    for action in response.actions:
        if action.HasField("workflowVersionNotAvailable"):
            name = state.first_version_name or version_name
            return _stall(state, plan, pb.VERSION_NOT_AVAILABLE, f"Version not available: {name}", now_us)
    new_patches = current_patches[len(recorded):]
    turn_started = plan.new_events[0].workflowStarted
    if new_patches:
        turn_started.version.name = version_name
        turn_started.version.patches.extend(new_patches)
    elif version_name and not state.has_workflow_started:
        turn_started.version.name = version_name
    return None


def _propagation_stall(
    state: InstanceState, plan: TurnPlan, response: pb.WorkflowResponse, budget: int, now_us: int
) -> TurnOutcome | None:
    """Stall (as daprd's payload check does) on an activity whose request, with the history propagated to it,
    would be over the dispatch budget. Judged before anything is applied, from an upper bound: the instance's
    history, this turn's events and the actions' own, plus for LINEAGE the history the instance received."""
    history = state.history_bytes + sum(e.ByteSize() + 6 for e in plan.new_events)
    for action in response.actions:
        history += action.ByteSize() + 16  # the event an action becomes is about the action's size
        if not action.HasField("scheduleTask") or not action.scheduleTask.historyPropagationScope:
            continue
        st = action.scheduleTask
        size = history + st.ByteSize() + 64
        if st.historyPropagationScope == pb.HISTORY_PROPAGATION_SCOPE_LINEAGE:
            size += incoming_size(state.incoming)
        if size > budget:
            return _stall(
                state, plan, pb.PAYLOAD_SIZE_EXCEEDED,
                f"activity '{st.name}::{action.id}' payload of about {size} bytes exceeds the dispatch budget of"
                f" {budget} bytes (95% of the max message size); raise --max-message-bytes and restart to resume",
                now_us,
            )
    return None


def _schedule_task(a: _Applying, action: pb.WorkflowAction) -> None:
    st = action.scheduleTask
    ev = _event(a.now_us, action.id)
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


def _create_timer(a: _Applying, action: pb.WorkflowAction) -> None:
    ct = action.createTimer
    ev = _event(a.now_us, action.id)
    tc = ev.timerCreated
    tc.fireAt.CopyFrom(ct.fireAt)
    tc.name = ct.name
    origin = ct.WhichOneof("origin")
    if origin:
        getattr(tc, origin).CopyFrom(getattr(ct, origin))
    a.add(ev)
    fire_us = ts_to_us(ct.fireAt)
    if not is_never(fire_us):
        fired = _event(a.now_us)
        fired.timerFired.timerId = action.id
        fired.timerFired.fireAt.CopyFrom(ct.fireAt)
        a.outcome.timers.append(TimerTask(generation=a.state.generation, fire_at_us=fire_us, event=fired))


def _create_child(a: _Applying, action: pb.WorkflowAction) -> None:
    cc = action.createChildWorkflow
    state = a.state
    child_id = cc.instanceId or f"{state.instance_id}:{(0x10000 + action.id) & 0xFFFF:04x}"
    ev = _event(a.now_us, action.id)
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
    conflict = _event(a.now_us)
    conflict.childWorkflowInstanceFailed.taskScheduledId = action.id
    conflict.childWorkflowInstanceFailed.failureDetails.errorType = "WorkflowInstanceAlreadyExists"
    conflict.childWorkflowInstanceFailed.failureDetails.errorMessage = (
        f"an active workflow with ID '{child_id}' already exists"
    )
    a.outcome.children.append(ChildStart(child_id, cc.name, start, conflict, action.id, app_id=target,
                                         incoming=incoming))


def _send_event(a: _Applying, action: pb.WorkflowAction) -> None:
    se = action.sendEvent
    ev = _event(a.now_us, action.id)
    ev.eventSent.instanceId = se.instance.instanceId
    ev.eventSent.name = se.name
    if se.HasField("data"):
        ev.eventSent.input.CopyFrom(se.data)
    a.add(ev)
    raised = _event(a.now_us)
    raised.eventRaised.name = se.name
    if se.HasField("data"):
        raised.eventRaised.input.CopyFrom(se.data)
    a.outcome.messages.append(Message(se.instance.instanceId, raised, a.app_id))


def _terminate_other(a: _Applying, action: pb.WorkflowAction) -> None:
    tw = action.terminateWorkflow
    term = _event(a.now_us)
    if tw.HasField("reason"):
        term.executionTerminated.input.CopyFrom(tw.reason)
    term.executionTerminated.recurse = tw.recurse
    a.outcome.messages.append(Message(tw.instanceId, term, a.app_id))


_ACTIONS: dict[str, Callable[[_Applying, pb.WorkflowAction], None]] = {
    "scheduleTask": _schedule_task,
    "createTimer": _create_timer,
    "createChildWorkflow": _create_child,
    "sendEvent": _send_event,
    "terminateWorkflow": _terminate_other,
}


def _continue_as_new(a: _Applying, completion: pb.CompleteWorkflowAction) -> None:
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


def _complete(a: _Applying, completion: pb.CompleteWorkflowAction, completion_id: int,
              terminate: pb.ExecutionTerminatedEvent | None) -> None:
    """The executionCompleted event, the parent's notification, and a recursive terminate's messages."""
    state = a.state
    ev = _event(a.now_us, completion_id)
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
        note = _event(a.now_us)
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
            term = _event(a.now_us)
            term.executionTerminated.CopyFrom(terminate)
            a.outcome.messages.append(Message(child_id, term, state.child_app(task_id)))


def force_terminate(state: InstanceState, plan: TurnPlan, now_us: int, app_id: str = "") -> TurnOutcome:
    """Terminate without asking a worker (a stalled instance cannot run a turn)."""
    assert plan.terminate is not None
    response = pb.WorkflowResponse(instanceId=state.instance_id)
    response.version.patches.extend(state.patches)
    return apply_response(state, plan, response, now_us, lambda: "", app_id)


def work_item_size(state: InstanceState, plan: TurnPlan) -> int:
    """About what the turn's WorkflowRequest weighs: history, new events and incoming history (daprd's payload
    check counts all three)."""
    new: int = sum(e.ByteSize() + 6 for e in plan.new_events)
    return state.history_bytes + new + incoming_size(state.incoming)


def stall_for_payload(state: InstanceState, plan: TurnPlan, size: int, limit: int, now_us: int) -> TurnOutcome:
    return _stall(
        state, plan, pb.PAYLOAD_SIZE_EXCEEDED,
        f"work item of {size} bytes exceeds the dispatch budget of {limit} bytes (95% of the max message size)",
        now_us,
    )


def continue_as_new_state(state: InstanceState, incoming: pb.PropagatedHistory | None = None) -> InstanceState:
    """The empty state of the next generation, whose first turn carries the new executionStarted; `incoming`
    is its incoming history (`TurnOutcome.next_incoming`)."""
    return InstanceState(instance_id=state.instance_id, generation=state.generation + 1, app_id=state.app_id,
                         incoming=incoming)


def start_next_generation(state: InstanceState, outcome: TurnOutcome) -> TurnOutcome:
    """Save a continue-as-new as the next generation with no history yet, its executionStarted and the events
    carried over first in its inbox, so that it runs in a turn of its own (progress is kept, nothing is lost
    or delivered twice, and events raised meanwhile stay behind the carried-over ones)."""
    assert outcome.continue_as_new is not None
    started = outcome.continue_as_new[1]
    es = started.executionStarted
    at = ts_to_us(started.timestamp)
    following = InstanceState(
        instance_id=state.instance_id, generation=state.generation + 1, app_id=state.app_id, name=es.name,
        execution_id=es.workflowInstance.executionId.value, input=es.input.value if es.HasField("input") else None,
        parent=es.parentInstance if es.HasField("parentInstance") else None, created_us=at, updated_us=at,
        incoming=outcome.next_incoming,
    )
    return TurnOutcome(state=following, consumed=outcome.consumed, appended=[], replace_history=True,
                       custom_status=outcome.custom_status, inbox_front=outcome.continue_as_new[1:])
