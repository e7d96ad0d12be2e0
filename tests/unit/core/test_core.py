"""Unit tests of the pure core (no server): turn building and the meaning of a worker's answer."""

from __future__ import annotations

from durahub.core.state import PENDING, RUNNING, STALLED, SUSPENDED, TERMINATED, InstanceState
from durahub.core.time import NEVER_US, us_to_ts
from durahub.core.turn import InboxItem, apply_response, execution_started, prepare_turn
from durahub.protos import pb

T0 = 1_700_000_000_000_000


def ids():
    n = iter(range(1000))
    return lambda: f"exec-{next(n)}"


def started_state(instance_id: str = "i1", parent: pb.ParentInstanceInfo | None = None) -> InstanceState:
    state = InstanceState(instance_id=instance_id)
    plan = prepare_turn(
        state, [InboxItem(1, execution_started(T0, instance_id, "e0", "wf", '"x"', parent=parent))], T0
    )
    apply_response(state, plan, pb.WorkflowResponse(instanceId=instance_id), T0, ids())
    return state


def schedule(state: InstanceState, *action_ids: int) -> None:
    resp = pb.WorkflowResponse(instanceId=state.instance_id)
    for i in action_ids:
        resp.actions.add(id=i).scheduleTask.name = "act"
    ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(T0))
    ev.eventRaised.name = "noop"
    apply_response(state, prepare_turn(state, [InboxItem(99, ev)], T0), resp, T0, ids())


def task_completed(task_id: int, generation: int | None = 0) -> InboxItem:
    ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(T0))
    ev.taskCompleted.taskScheduledId = task_id
    return InboxItem(task_id + 100, ev, generation)


def test_first_turn_starts_with_workflow_started_then_execution_started() -> None:
    state = InstanceState(instance_id="i1")
    assert state.status == PENDING
    plan = prepare_turn(state, [InboxItem(1, execution_started(T0, "i1", "e0", "wf", None))], T0 + 5)
    kinds = [e.WhichOneof("eventType") for e in plan.new_events]
    assert kinds == ["workflowStarted", "executionStarted"]
    assert plan.new_events[0].timestamp.seconds == (T0 + 5) // 1_000_000


def test_events_before_the_start_wait_for_it() -> None:
    ev = pb.HistoryEvent(eventId=-1)
    ev.eventRaised.name = "early"
    plan = prepare_turn(InstanceState(instance_id="i1"), [InboxItem(1, ev)], T0)
    assert not plan.runnable and plan.consumed == []


def test_duplicate_unmatched_and_stale_results_are_dropped() -> None:
    state = started_state()
    schedule(state, 1, 2)
    plan = prepare_turn(
        state,
        [
            task_completed(1),
            task_completed(1),
            task_completed(7),
            task_completed(2, generation=5),
            task_completed(2),
        ],
        T0,
    )
    results = [e.taskCompleted.taskScheduledId for e in plan.new_events if e.HasField("taskCompleted")]
    assert results == [1, 2]
    assert len(plan.consumed) == 5


def test_resume_of_a_running_instance_is_a_no_op_but_suspend_then_resume_is_kept() -> None:
    state = started_state()
    resume = pb.HistoryEvent(eventId=-1)
    resume.executionResumed.SetInParent()
    assert not prepare_turn(state, [InboxItem(1, resume)], T0).runnable
    suspend = pb.HistoryEvent(eventId=-1)
    suspend.executionSuspended.SetInParent()
    plan = prepare_turn(state, [InboxItem(1, suspend), InboxItem(2, resume)], T0)
    assert [e.WhichOneof("eventType") for e in plan.new_events][1:] == [
        "executionSuspended",
        "executionResumed",
    ]


def test_suspend_turn_sets_status_and_events_still_delivered() -> None:
    state = started_state()
    suspend = pb.HistoryEvent(eventId=-1)
    suspend.executionSuspended.SetInParent()
    apply_response(state, prepare_turn(state, [InboxItem(1, suspend)], T0), pb.WorkflowResponse(), T0, ids())
    assert state.status == SUSPENDED
    raised = pb.HistoryEvent(eventId=-1)
    raised.eventRaised.name = "e"
    assert prepare_turn(state, [InboxItem(2, raised)], T0).runnable


def test_schedule_task_uses_action_id_and_makes_an_activity() -> None:
    state = started_state()
    resp = pb.WorkflowResponse(instanceId="i1")
    a = resp.actions.add(id=1)
    a.scheduleTask.name = "act"
    a.scheduleTask.input.value = "5"
    ev = pb.HistoryEvent(eventId=-1)
    ev.eventRaised.name = "x"
    out = apply_response(state, prepare_turn(state, [InboxItem(5, ev)], T0), resp, T0, ids())
    scheduled = [e for e in out.appended if e.HasField("taskScheduled")]
    assert scheduled[0].eventId == 1
    assert out.tasks[0].request.taskId == 1 and out.tasks[0].request.workflowInstance.instanceId == "i1"
    assert out.consumed == [5]


def test_sentinel_timer_is_recorded_but_never_scheduled() -> None:
    state = started_state()
    resp = pb.WorkflowResponse(instanceId="i1")
    never = resp.actions.add(id=1).createTimer
    never.fireAt.seconds, never.fireAt.nanos = 253402300799, 999999999
    soon = resp.actions.add(id=2).createTimer
    soon.fireAt.CopyFrom(us_to_ts(T0 + 1_000_000))
    ev = pb.HistoryEvent(eventId=-1)
    ev.eventRaised.name = "x"
    out = apply_response(state, prepare_turn(state, [InboxItem(5, ev)], T0), resp, T0, ids())
    assert [e.eventId for e in out.appended if e.HasField("timerCreated")] == [1, 2]
    assert [t.fire_at_us for t in out.timers] == [T0 + 1_000_000]
    assert NEVER_US <= 253402300799 * 1_000_000 + 999_999


def test_terminate_forces_terminated_with_output_and_notifies_parent() -> None:
    parent = pb.ParentInstanceInfo(taskScheduledId=3)
    parent.workflowInstance.instanceId = "p"
    state = started_state("c", parent=parent)
    term = pb.HistoryEvent(eventId=-1)
    term.executionTerminated.input.value = '"bye"'
    resp = pb.WorkflowResponse(instanceId="c")
    resp.actions.add(id=1).scheduleTask.name = "ignored"
    out = apply_response(state, prepare_turn(state, [InboxItem(1, term)], T0), resp, T0, ids())
    assert state.status == TERMINATED and state.output == '"bye"'
    assert out.tasks == []
    assert out.messages[0].target == "p"
    failed = out.messages[0].event.childWorkflowInstanceFailed
    assert failed.taskScheduledId == 3 and failed.failureDetails.errorMessage == ""


def test_continue_as_new_builds_a_fresh_generation_with_carryover() -> None:
    state = started_state()
    ev = pb.HistoryEvent(eventId=-1)
    ev.eventRaised.name = "x"
    resp = pb.WorkflowResponse(instanceId="i1")
    cw = resp.actions.add(id=1).completeWorkflow
    cw.workflowStatus = pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW
    cw.result.value = "42"
    carried = cw.carryoverEvents.add()
    carried.eventRaised.name = "kept"
    out = apply_response(state, prepare_turn(state, [InboxItem(5, ev)], T0), resp, T0, ids())
    assert out.continue_as_new is not None
    kinds = [e.WhichOneof("eventType") for e in out.continue_as_new]
    assert kinds == ["workflowStarted", "executionStarted", "eventRaised"]
    assert out.continue_as_new[1].executionStarted.input.value == "42"
    assert out.continue_as_new[1].executionStarted.workflowInstance.executionId.value != state.execution_id


def test_patch_mismatch_stalls_without_consuming_the_inbox() -> None:
    state = started_state()
    resp = pb.WorkflowResponse(instanceId="i1")
    resp.version.patches.append("p1")
    ev = pb.HistoryEvent(eventId=-1)
    ev.eventRaised.name = "x"
    apply_response(state, prepare_turn(state, [InboxItem(5, ev)], T0), resp, T0, ids())
    assert state.patches == ["p1"]
    out = apply_response(state, prepare_turn(state, [InboxItem(6, ev)], T0), pb.WorkflowResponse(), T0, ids())
    assert out.stalled and out.consumed == []
    assert out.appended[0].executionStalled.reason == pb.PATCH_MISMATCH
    for e in out.appended:
        state.append(e)
    assert state.status == STALLED


def test_events_for_a_finished_instance_are_dropped() -> None:
    state = started_state()
    resp = pb.WorkflowResponse(instanceId="i1")
    resp.actions.add(id=1).completeWorkflow.workflowStatus = pb.ORCHESTRATION_STATUS_COMPLETED
    ev = pb.HistoryEvent(eventId=-1)
    ev.eventRaised.name = "x"
    apply_response(state, prepare_turn(state, [InboxItem(5, ev)], T0), resp, T0, ids())
    plan = prepare_turn(state, [InboxItem(6, ev)], T0)
    assert not plan.runnable and plan.consumed == [6]
    assert state.status != RUNNING
