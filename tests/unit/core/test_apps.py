"""App identity in the pure core: instance keys, and how a turn routes cross-app work and records the hop
(daprd's applier, dapr-newest.md §2.3)."""

from __future__ import annotations

import pytest

from durahub.core.apps import check_app_id, instance_key, key_range, split_key, target_app
from durahub.core.state import InstanceState
from durahub.core.time import us_to_ts
from durahub.core.turn import InboxItem, apply_response, execution_started, prepare_turn
from durahub.errors import InvalidAppId
from durahub.protos import pb

T0 = 1_700_000_000_000_000


def _started(app: str, instance_id: str = "p", parent: pb.ParentInstanceInfo | None = None) -> InstanceState:
    state = InstanceState(instance_id=instance_id, app_id=app)
    start = execution_started(T0, instance_id, "e0", "wf", None, parent=parent, app_id=app)
    apply_response(state, prepare_turn(state, [InboxItem(1, start)], T0), pb.WorkflowResponse(), T0, lambda: "x")
    return state


def _turn(state: InstanceState, response: pb.WorkflowResponse):  # type: ignore[no-untyped-def]
    ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(T0))
    ev.eventRaised.name = "go"
    return apply_response(state, prepare_turn(state, [InboxItem(2, ev)], T0), response, T0, lambda: "child-exec")


def test_keys_split_back_whatever_the_instance_id_holds() -> None:
    for app, iid in (("a", "x"), ("app-1_b", "with|bar|s"), ("a", "")):
        assert split_key(instance_key(app, iid)) == (app, iid)
    low, high = key_range("a")
    assert low <= instance_key("a", "zzz") < high and not low <= instance_key("a-b", "x") < high


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "a|b", "ünï"])
def test_app_ids_follow_daprs_rule(bad: str) -> None:
    with pytest.raises(InvalidAppId, match="only alphanumeric, dash and underscore"):
        check_app_id(bad)
    assert check_app_id("wf-example_3") == "wf-example_3"


def test_an_empty_or_absent_target_is_the_callers_own_app() -> None:
    assert target_app(None, "a") == "a"
    assert target_app(pb.TaskRouter(sourceAppID="a"), "a") == "a"
    assert target_app(pb.TaskRouter(targetAppID="b"), "a") == "b"


def test_a_cross_app_activity_goes_to_the_target_app_and_records_the_hop() -> None:
    state = _started("a")
    response = pb.WorkflowResponse()
    remote = response.actions.add(id=1)
    remote.scheduleTask.name = "far"
    remote.router.targetAppID = "b"
    response.actions.add(id=2).scheduleTask.name = "near"
    outcome = _turn(state, response)
    assert [(t.task_id, t.app_id) for t in outcome.tasks] == [(1, "b"), (2, "a")]
    scheduled = {e.eventId: e for e in outcome.appended if e.HasField("taskScheduled")}
    assert (scheduled[1].router.sourceAppID, scheduled[1].router.targetAppID) == ("a", "b")
    assert (scheduled[2].router.sourceAppID, scheduled[2].router.targetAppID) == ("a", "")


def test_a_cross_app_child_starts_in_the_target_app_naming_both() -> None:
    state = _started("a")
    response = pb.WorkflowResponse()
    action = response.actions.add(id=3)
    action.createChildWorkflow.name = "kid"
    action.createChildWorkflow.instanceId = "c"
    action.router.targetAppID = "b"
    outcome = _turn(state, response)
    (child,) = outcome.children
    assert child.app_id == "b" and child.instance_id == "c"
    start = child.start_event
    assert (start.router.sourceAppID, start.router.targetAppID) == ("a", "b")  # the SDK's ctx.app_id is "b"
    assert start.executionStarted.parentInstance.appID == "a"
    assert state.child_app(3) == "b"


def test_a_childs_completion_goes_back_to_its_parents_app() -> None:
    parent = pb.ParentInstanceInfo(taskScheduledId=3, appID="a")
    parent.workflowInstance.instanceId = "p"
    state = _started("b", "c", parent=parent)
    response = pb.WorkflowResponse()
    done = response.actions.add(id=1).completeWorkflow
    done.workflowStatus = pb.ORCHESTRATION_STATUS_COMPLETED
    done.result.value = "1"
    outcome = _turn(state, response)
    (note,) = outcome.messages
    assert (note.app_id, note.target) == ("a", "p")
    assert (note.event.router.sourceAppID, note.event.router.targetAppID) == ("b", "a")
    assert note.event.childWorkflowInstanceCompleted.taskScheduledId == 3


def test_a_recursive_terminate_reaches_children_in_their_apps() -> None:
    state = _started("a")
    response = pb.WorkflowResponse()
    for task_id, app in ((1, "b"), (2, "")):
        action = response.actions.add(id=task_id)
        action.createChildWorkflow.name = "kid"
        action.createChildWorkflow.instanceId = f"c{task_id}"
        if app:
            action.router.targetAppID = app
    _turn(state, response)
    term = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(T0))
    term.executionTerminated.recurse = True
    outcome = apply_response(state, prepare_turn(state, [InboxItem(5, term)], T0), pb.WorkflowResponse(), T0,
                             lambda: "x")
    assert sorted((m.app_id, m.target) for m in outcome.messages) == [("a", "c2"), ("b", "c1")]
