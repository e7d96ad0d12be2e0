"""History propagation (core/propagation.py): what a call carries under each rule of Dapr 1.18, on histories
built by the real turn code, every result read back by the SDK's own reader (`dapr.ext.workflow`)."""

from __future__ import annotations

from itertools import count

import pytest
from dapr.ext.workflow.propagation import PropagatedHistory as SdkHistory
from dapr.ext.workflow.propagation import PropagationScope

from durahub.core.propagation import (
    LINEAGE,
    NONE,
    OWN_HISTORY,
    Propagation,
    SerializedEvents,
    assemble,
    incoming_size,
    next_generation_incoming,
    oversized_activity,
    scope_of,
    serialize_event,
)
from durahub.core.state import CONTINUED_AS_NEW, InstanceState
from durahub.core.time import us_to_ts
from durahub.core.turn import (
    ChildStart,
    InboxItem,
    TurnOutcome,
    apply_response,
    execution_started,
    prepare_turn,
)
from durahub.protos import pb

T0 = 1_700_000_000_000_000
SCHEDULING = ("taskScheduled", "childWorkflowInstanceCreated")


class Instance:
    """One workflow instance driven turn by turn through `prepare_turn` / `apply_response`, propagating the way
    the engine does: at the moment a call's action is applied, with the history up to and including the
    call's own event (here: the history after the turn, cut just after that event)."""

    def __init__(self, start: pb.HistoryEvent, *, app_id: str, incoming: pb.PropagatedHistory | None = None):
        self.instance_id = start.executionStarted.workflowInstance.instanceId
        self.app_id = app_id
        self.state = InstanceState(instance_id=self.instance_id)
        self.propagation = Propagation(app_id, self.instance_id, incoming)
        self.inbox: list[pb.HistoryEvent] = [start]
        self.sent: dict[int, pb.PropagatedHistory] = {}  # by the call's action id
        self._seq = count(1)
        self._execution_ids = (f"exec-{n}" for n in count())

    @classmethod
    def root(cls, name: str, instance_id: str, *, app_id: str = "app0") -> Instance:
        return cls(execution_started(T0, instance_id, "e0", name, '"in"', app_id=app_id), app_id=app_id)

    def child(self, start: ChildStart, *, app_id: str | None = None) -> Instance:
        """The child this instance created, with what it was sent as its incoming history."""
        incoming = self.sent.get(start.parent_task_id)
        return Instance(start.start_event, app_id=app_id or self.app_id, incoming=incoming)

    def turn(self, *actions: pb.WorkflowAction) -> TurnOutcome:
        inbox = [InboxItem(next(self._seq), event) for event in self.inbox]
        self.inbox = []
        plan = prepare_turn(self.state, inbox, T0)
        assert plan.runnable
        response = pb.WorkflowResponse(instanceId=self.instance_id, actions=actions)
        outcome = apply_response(self.state, plan, response, T0, lambda: next(self._execution_ids), self.app_id)
        history = self.state.history
        first = len(history) - len(outcome.appended)
        for index in range(first, len(history)):
            event = history[index]
            sent = self.propagation.outgoing(scope_of(event), history[: index + 1])
            if sent is not None:
                self.sent[event.eventId] = sent
        return outcome


def call_activity(
    action_id: int, name: str, scope: int | None = None, input: str | None = None
) -> pb.WorkflowAction:
    action = pb.WorkflowAction(id=action_id)
    action.scheduleTask.name = name
    if input is not None:
        action.scheduleTask.input.value = input
    if scope is not None:
        action.scheduleTask.historyPropagationScope = scope
    return action


def call_child(action_id: int, name: str, instance_id: str, scope: int | None = None) -> pb.WorkflowAction:
    action = pb.WorkflowAction(id=action_id)
    action.createChildWorkflow.name = name
    action.createChildWorkflow.instanceId = instance_id
    if scope is not None:
        action.createChildWorkflow.historyPropagationScope = scope
    return action


def create_timer(action_id: int) -> pb.WorkflowAction:
    action = pb.WorkflowAction(id=action_id)
    action.createTimer.fireAt.CopyFrom(us_to_ts(T0 + 1_000_000))
    return action


def continue_as_new(input: str) -> pb.WorkflowAction:
    action = pb.WorkflowAction(id=99)
    action.completeWorkflow.workflowStatus = CONTINUED_AS_NEW
    action.completeWorkflow.result.value = input
    return action


def completed(task_id: int, result: str) -> pb.HistoryEvent:
    event = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(T0))
    event.taskCompleted.taskScheduledId = task_id
    event.taskCompleted.result.value = result
    return event


def failed(task_id: int, message: str) -> pb.HistoryEvent:
    event = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(T0))
    event.taskFailed.taskScheduledId = task_id
    event.taskFailed.failureDetails.errorType = "Exception"
    event.taskFailed.failureDetails.errorMessage = message
    return event


def timer_fired(timer_id: int) -> pb.HistoryEvent:
    event = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(T0))
    event.timerFired.timerId = timer_id
    event.timerFired.fireAt.CopyFrom(us_to_ts(T0 + 1_000_000))
    return event


def kinds(events: list[pb.HistoryEvent]) -> list[str | None]:
    return [event.WhichOneof("eventType") for event in events]


def read(history: pb.PropagatedHistory | None) -> SdkHistory:
    """The SDK worker's view of what it is sent."""
    view = SdkHistory.from_proto(history)
    assert view is not None
    return view


def parent_with_child(
    scope: int, *, name: str = "parent", instance_id: str = "p1"
) -> tuple[Instance, Instance]:
    """`parent` runs step1, step2, then a child with `scope` (daprd's ownhistoryevents test)."""
    parent = Instance.root(name, instance_id)
    parent.turn(call_activity(1, "step1", input='"a"'))
    parent.inbox.append(completed(1, '"done-1"'))
    parent.turn(call_activity(2, "step2", input='"b"'))
    parent.inbox.append(completed(2, '"done-2"'))
    outcome = parent.turn(call_child(3, "child", f"{instance_id}-child", scope))
    return parent, parent.child(outcome.children[0])


def test_no_scope_or_none_sends_no_history() -> None:
    parent, child = parent_with_child(NONE)
    assert child.propagation.incoming is None
    parent = Instance.root("parent", "p2")
    parent.turn(call_activity(1, "step1"))  # scope left unset by the worker
    assert parent.sent == {}
    assert assemble(NONE, None, parent.state.history, app_id="app0", instance_id="p2") is None


def test_own_history_child_sees_the_parents_nine_events_in_order() -> None:
    parent, child = parent_with_child(OWN_HISTORY)
    view = read(child.propagation.incoming)
    assert view.scope == PropagationScope.OWN_HISTORY
    assert kinds(view.events) == [
        "workflowStarted", "executionStarted", "taskScheduled",
        "workflowStarted", "taskCompleted", "taskScheduled",
        "workflowStarted", "taskCompleted", "childWorkflowInstanceCreated",
    ]
    assert view.events == parent.state.history[:9]
    [workflow] = view.get_workflows()
    assert (workflow.app_id, workflow.instance_id, workflow.name) == ("app0", "p1", "parent")
    step1 = workflow.get_last_activity_by_name("step1")
    assert (step1.completed, step1.input, step1.output) == (True, '"a"', '"done-1"')
    assert workflow.get_last_child_workflow_by_name("child").started


def test_a_root_using_lineage_sends_one_chunk_like_own_history() -> None:
    _, own = parent_with_child(OWN_HISTORY)
    _, lineage = parent_with_child(LINEAGE)
    assert own.propagation.incoming is not None and lineage.propagation.incoming is not None
    [own_chunk], [lineage_chunk] = own.propagation.incoming.chunks, lineage.propagation.incoming.chunks
    # The same chunk, but for the scope the childWorkflowInstanceCreated event (the last one) records.
    assert own_chunk.rawEvents[:-1] == lineage_chunk.rawEvents[:-1]
    assert (own_chunk.appId, own_chunk.instanceId, own_chunk.workflowName) == (
        lineage_chunk.appId, lineage_chunk.instanceId, lineage_chunk.workflowName)
    assert read(lineage.propagation.incoming).scope == PropagationScope.LINEAGE


def a_b_c(b_to_c: int) -> Instance:
    """A (app0) -> B (app1) with LINEAGE -> C (app2) with `b_to_c`; each runs one activity first."""
    a = Instance.root("wfA", "a", app_id="app0")
    a.turn(call_activity(1, "actA", input='"fromA"'))
    a.inbox.append(completed(1, '"doneA"'))
    b = a.child(a.turn(call_child(2, "wfB", "b", LINEAGE)).children[0], app_id="app1")
    b.turn(call_activity(1, "actB", input='"fromB"'))
    b.inbox.append(completed(1, '"doneB"'))
    return b.child(b.turn(call_child(2, "wfC", "c", b_to_c)).children[0], app_id="app2")


def test_lineage_at_every_hop_gives_the_grandchild_the_ancestor_chunk_then_the_callers() -> None:
    c = a_b_c(LINEAGE)
    view = read(c.propagation.incoming)
    assert len(view.events) == 12
    assert [(w.app_id, w.instance_id, w.name) for w in view.get_workflows()] == [
        ("app0", "a", "wfA"), ("app1", "b", "wfB")
    ]
    assert view.get_app_ids() == ["app0", "app1"]
    assert [len(view.get_events_by_app_id(app)) for app in ("app0", "app1")] == [6, 6]
    wf_a, wf_b = view.get_workflows()
    assert wf_a.get_last_activity_by_name("actA").output == '"doneA"'
    assert wf_b.get_last_activity_by_name("actB").output == '"doneB"'
    assert not wf_b.get_activities_by_name("actA")


def test_own_history_is_a_trust_boundary_dropping_what_the_caller_received() -> None:
    c = a_b_c(OWN_HISTORY)
    view = read(c.propagation.incoming)
    assert view.get_app_ids() == ["app1"]
    assert len(view.events) == 6
    assert view.get_events_by_app_id("app0") == []
    assert [w.name for w in view.get_workflows()] == ["wfB"]


def test_received_chunks_pass_through_verbatim_with_their_signatures() -> None:
    signed = pb.PropagatedHistoryChunk(appId="app0", instanceId="a", workflowName="wfA")
    signed.rawEvents.append(b"\x08\x01")
    signed.rawSignatures.append(b"signature")
    signed.signingCertChains.append(b"chain")
    received = pb.PropagatedHistory(scope=LINEAGE, chunks=[signed])
    b = Instance(execution_started(T0, "b", "e1", "wfB", None), app_id="app1", incoming=received)
    b.turn(call_activity(1, "actB", LINEAGE))
    sent = b.sent[1]
    assert sent.chunks[0] == signed
    assert not sent.chunks[1].rawSignatures and sent.chunks[1].appId == "app1"


def test_fan_out_each_call_sees_the_events_of_the_calls_before_it_and_its_own() -> None:
    parent = Instance.root("fanout", "f1")
    parent.turn(*(call_activity(n, f"parallelAct{n}", OWN_HISTORY) for n in (1, 2, 3)))
    for n in (1, 2, 3):
        view = read(parent.sent[n])
        [workflow] = view.get_workflows()
        scheduled = [e.taskScheduled.name for e in view.events if e.HasField("taskScheduled")]
        assert scheduled == [f"parallelAct{k}" for k in range(1, n + 1)]
        assert kinds(view.events)[-1] == "taskScheduled" and view.events[-1].eventId == n
        own = workflow.get_last_activity_by_name(f"parallelAct{n}")
        assert own.started and not own.completed


def test_a_retried_call_carries_the_failed_attempt() -> None:
    # The SDK retries with a timer, then a new action (new id) that keeps the scope.
    parent = Instance.root("parentWf", "r1")
    parent.turn(call_activity(1, "CallLLM", OWN_HISTORY))
    parent.inbox.append(failed(1, "transient LLM error"))
    parent.turn(create_timer(2))
    parent.inbox.append(timer_fired(2))
    parent.turn(call_activity(3, "CallLLM", OWN_HISTORY))
    attempts = read(parent.sent[3]).get_last_workflow_by_name("parentWf").get_activities_by_name("CallLLM")
    assert [(a.failed, a.completed) for a in attempts] == [(True, False), (False, False)]
    assert attempts[0].error is not None and attempts[0].error.errorMessage == "transient LLM error"
    # daprd's activityretry: a child created afterwards sees both attempts, the second completed.
    parent.inbox.append(completed(3, '"llm-ok"'))
    child = parent.child(parent.turn(call_child(4, "childWf", "r1-child", LINEAGE)).children[0])
    parent_view = read(child.propagation.incoming).get_last_workflow_by_name("parentWf")
    attempts = parent_view.get_activities_by_name("CallLLM")
    assert [(a.failed, a.completed) for a in attempts] == [(True, False), (False, True)]
    assert parent_view.get_last_activity_by_name("CallLLM").output == '"llm-ok"'


def test_a_child_propagating_further_puts_its_own_chunk_after_its_parents() -> None:
    parent, child = parent_with_child(LINEAGE)
    child.turn(call_activity(1, "audit", LINEAGE))
    view = read(child.sent[1])
    assert [(w.instance_id, w.name) for w in view.get_workflows()] == [("p1", "parent"), ("p1-child", "child")]
    own = view.get_events_by_instance_id("p1-child")
    assert kinds(own) == ["workflowStarted", "executionStarted", "taskScheduled"]


def test_continue_as_new_without_incoming_history_starts_the_next_generation_without_any() -> None:
    root = Instance.root("can-parent", "can-prop")
    root.turn(call_activity(1, "act", LINEAGE))
    root.inbox.append(completed(1, '"act-done"'))
    outcome = root.turn(continue_as_new('"second"'))
    assert outcome.continue_as_new is not None and 1 in root.sent
    assert root.propagation.next_generation(root.state.history) is None


def test_continue_as_new_with_lineage_keeps_the_received_chunks_and_adds_the_prior_generation() -> None:
    parent, child = parent_with_child(LINEAGE, name="rootApp0", instance_id="can-multi")
    child.turn(call_activity(1, "work", input='"gen1"'))
    child.inbox.append(completed(1, '"gen1-done"'))
    child.turn(continue_as_new('"gen2"'))
    following = child.propagation.next_generation(child.state.history)
    view = read(following)
    assert view.scope == PropagationScope.LINEAGE
    assert [(w.app_id, w.name) for w in view.get_workflows()] == [("app0", "rootApp0"), ("app0", "child")]
    gen1 = view.get_workflows()[1]
    assert gen1.instance_id == "can-multi-child"
    assert view.get_events_by_instance_id("can-multi-child") == child.state.history
    assert gen1.get_last_activity_by_name("work").output == '"gen1-done"'


def test_continue_as_new_with_own_history_keeps_only_the_prior_generation() -> None:
    _, child = parent_with_child(OWN_HISTORY)
    child.turn(continue_as_new('"gen2"'))
    following = next_generation_incoming(child.state.history, child.propagation.incoming,
                                         app_id="app0", instance_id=child.instance_id)
    view = read(following)
    assert view.scope == PropagationScope.OWN_HISTORY
    assert [w.name for w in view.get_workflows()] == ["child"]
    assert view.events == child.state.history


def test_nothing_of_ones_own_means_no_own_chunk_and_not_no_history() -> None:
    alone = assemble(OWN_HISTORY, None, [], app_id="app0", instance_id="i")
    assert alone == pb.PropagatedHistory(scope=OWN_HISTORY)
    assert read(alone).get_workflows() == []
    _, child = parent_with_child(LINEAGE)
    forwarded = assemble(LINEAGE, child.propagation.incoming, [], app_id="app0", instance_id="i")
    assert forwarded == child.propagation.incoming


def test_a_chunk_needs_an_app_id() -> None:
    events = [execution_started(T0, "i", "e", "wf", None)]
    with pytest.raises(ValueError, match="app id"):
        assemble(OWN_HISTORY, None, events, app_id="", instance_id="i")
    with pytest.raises(ValueError, match="empty appId"):  # what the SDK would do with one
        SdkHistory.from_proto(pb.PropagatedHistory(scope=OWN_HISTORY, chunks=[pb.PropagatedHistoryChunk()]))


def test_serialized_events_are_each_events_deterministic_bytes_and_follow_a_growing_history() -> None:
    parent, _ = parent_with_child(OWN_HISTORY)
    history = parent.state.history
    cache = SerializedEvents()
    assert cache.of(history[:4]) == [serialize_event(e) for e in history[:4]]
    assert cache.of(history) == [serialize_event(e) for e in history]
    assert [pb.HistoryEvent.FromString(raw) for raw in cache.of(history)] == history
    with pytest.raises(ValueError, match="do not extend"):
        cache.of(history[:2])
    # Equal events, but not the ones serialized: a reloaded history needs a new SerializedEvents.
    reloaded = [pb.HistoryEvent.FromString(serialize_event(e)) for e in history]
    with pytest.raises(ValueError, match="do not extend"):
        cache.of(reloaded)


def test_scope_of_reads_the_scope_recorded_on_scheduling_events_only() -> None:
    parent = Instance.root("wf", "i")
    parent.turn(call_activity(1, "a", LINEAGE), call_child(2, "c", "i-c", OWN_HISTORY), call_activity(3, "b"),
                create_timer(4))
    scopes = {e.eventId: scope_of(e) for e in parent.state.history if e.eventId > 0}
    assert scopes == {1: LINEAGE, 2: OWN_HISTORY, 3: NONE, 4: NONE}


def test_incoming_size_is_what_the_history_adds_to_a_request() -> None:
    _, child = parent_with_child(LINEAGE)
    history = child.propagation.incoming
    assert history is not None
    without = pb.WorkflowRequest(instanceId="p1-child")
    with_history = pb.WorkflowRequest(instanceId="p1-child", propagatedHistory=history)
    assert incoming_size(history) == with_history.ByteSize() - without.ByteSize()
    assert incoming_size(None) == 0


def test_an_activity_request_over_the_budget_names_the_activity() -> None:
    parent = Instance.root("wf", "i")
    outcome = parent.turn(call_activity(1, "big", OWN_HISTORY, input='"' + "x" * 200 + '"'))
    request = outcome.tasks[0].request
    request.propagatedHistory.CopyFrom(parent.sent[1])
    size = request.ByteSize()
    assert oversized_activity(request, size) is None
    description = oversized_activity(request, size - 1)
    assert description is not None and description.startswith(f"activity 'big::1' payload of {size} bytes")
