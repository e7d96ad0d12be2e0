"""One orchestration turn: which inbox events it carries, and what the worker's answer means.

`prepare_turn` filters an instance's inbox into the turn's new events (dropping duplicates, late and
stale deliveries). `apply_response` turns the worker's `WorkflowResponse` into history to append and
effects to make durable (activity tasks, timers, child starts, messages to other instances).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from durahub.core.actions import ACTIONS, Applying, complete, continue_as_new
from durahub.core.outcome import (
    ActivityTask,
    ChildStart,
    InboxItem,
    Message,
    TimerTask,
    TurnOutcome,
    TurnPlan,
    execution_started,
    new_event,
    workflow_started,
)
from durahub.core.propagation import incoming_size
from durahub.core.state import CONTINUED_AS_NEW, TERMINATED, InstanceState
from durahub.core.time import ts_to_us, us_to_ts
from durahub.protos import pb

# Re-exported: what callers of a turn use lives in `core.outcome`.
__all__ = [
    "ActivityTask", "ChildStart", "InboxItem", "Message", "TimerTask", "TurnOutcome", "TurnPlan",
    "MAX_CONTINUE_AS_NEW_LOOPS", "apply_response", "continue_as_new_state", "execution_started", "force_terminate",
    "prepare_turn", "stall_for_payload", "start_next_generation", "work_item_size", "workflow_started",
]

# Continue-as-new iterations run inside one turn (one commit) before the progress is saved and the next
# generation gets a turn of its own (durabletask-go's limit; daprd then saves and goes on, so do we).
MAX_CONTINUE_AS_NEW_LOOPS = 20


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
        ev = new_event(now_us)
        ev.executionStalled.reason = reason  # type: ignore[assignment]  # an enum value (the stubs want the enum type)
        ev.executionStalled.description = description
        appended.append(ev)
    return TurnOutcome(state=state, consumed=[], appended=appended, stalled=True)


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


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
    applying = Applying(state, outcome, now_us, new_execution_id, state.app_id or app_id)
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
        handler = ACTIONS.get(kind or "")
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
        continue_as_new(applying, completion)
        return outcome
    if completion is not None:
        complete(applying, completion, completion_id, plan.terminate)
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
