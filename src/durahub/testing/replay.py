"""Replay a recorded workflow history against the current code, over the wire, to catch non-determinism before
a deployment does: for each recorded turn, the SDK's worker gets the turn as the engine sent it (the events
before it as the past, the turn's own as new) and the actions it answers with are compared with those the
history recorded. The first turn whose actions differ is reported, with both lists and the worker's error if
it failed (the SDK's own `NonDeterminismError` when the past no longer replays).

It works through a bare TaskHubSidecarService of its own on a free port (no engine, no store), so any SDK that
speaks the protocol can be checked the same way. Histories come from `durahub workflow export <id>`,
`GET /durahub/v1/instances/{id}` or `WorkflowEnvironment.history(id)` (`durahub.testing.history`).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import grpc

from durahub.core.state import status_name
from durahub.protos import pb, taskhub_grpc
from durahub.testing.history import load_history
from durahub.testing.sdk import twin_of

HOST = "127.0.0.1"
TURN_TIMEOUT = 30.0
# Events a turn records for the worker's actions; every other event is something the turn received.
ACTION_EVENTS = frozenset({"taskScheduled", "timerCreated", "childWorkflowInstanceCreated", "eventSent",
                           "executionCompleted", "detachedWorkflowInstanceCreated"})
# A worker's action kind -> the event it is recorded as.
RECORDED_AS = {"scheduleTask": "taskScheduled", "createTimer": "timerCreated",
               "createChildWorkflow": "childWorkflowInstanceCreated", "sendEvent": "eventSent",
               "completeWorkflow": "executionCompleted", "createDetachedWorkflow": "detachedWorkflowInstanceCreated",
               "terminateWorkflow": "executionTerminated"}


@dataclass
class Mismatch:
    turn: int  # from 1, in the recorded history
    expected: list[str]  # the recorded actions
    actual: list[str]  # what the current code does
    error: str | None = None  # the worker's failure, if it failed the turn

    def __str__(self) -> str:
        text = (f"turn {self.turn} differs: recorded [{', '.join(self.expected)}], current code "
                f"[{', '.join(self.actual)}]")
        return text + (f"; the worker failed: {self.error}" if self.error else "")


@dataclass
class ReplayResult:
    turns: int  # recorded turns replayed
    mismatch: Mismatch | None = None

    @property
    def ok(self) -> bool:
        return self.mismatch is None


class ReplayMismatch(AssertionError):
    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(str(mismatch))
        self.mismatch = mismatch


@dataclass
class _Turn:
    new: list[pb.HistoryEvent] = field(default_factory=list)
    actions: list[pb.HistoryEvent] = field(default_factory=list)


def split_turns(history: list[pb.HistoryEvent]) -> list[_Turn]:
    """The recorded turns: each starts with a workflowStarted event, then what it received, then its actions."""
    turns: list[_Turn] = []
    for ev in history:
        kind = ev.WhichOneof("eventType")
        if kind == "workflowStarted" or not turns:
            turns.append(_Turn())
        (turns[-1].actions if kind in ACTION_EVENTS else turns[-1].new).append(ev)
    return turns


def _recorded(ev: pb.HistoryEvent) -> str:
    kind = ev.WhichOneof("eventType") or "unknown"
    if kind == "executionCompleted":
        done = ev.executionCompleted
        result = done.result.value if done.HasField("result") else ""
        return f"executionCompleted({status_name(done.workflowStatus)}{', ' + result if result else ''})"
    body = getattr(ev, kind)
    return f"{kind}#{ev.eventId}({getattr(body, 'name', '')})"


def _current(action: pb.WorkflowAction) -> str:
    kind = action.WhichOneof("workflowActionType") or "unknown"
    if kind == "completeWorkflow":
        done = action.completeWorkflow
        result = done.result.value if done.HasField("result") else ""
        return f"executionCompleted({status_name(done.workflowStatus)}{', ' + result if result else ''})"
    body = getattr(action, kind)
    return f"{RECORDED_AS.get(kind, kind)}#{action.id}({getattr(body, 'name', '')})"


def _failure(response: pb.WorkflowResponse) -> str | None:
    for action in response.actions:
        if action.WhichOneof("workflowActionType") == "completeWorkflow" and \
                action.completeWorkflow.HasField("failureDetails"):
            details = action.completeWorkflow.failureDetails
            return f"{details.errorType}: {details.errorMessage}"
    return None


class _ReplayService(taskhub_grpc.TaskHubSidecarServiceServicer):
    """Hands the worker one crafted turn at a time and collects its answers."""

    def __init__(self) -> None:
        self.items: queue.Queue[pb.WorkItem | None] = queue.Queue()
        self.answers: queue.Queue[pb.WorkflowResponse] = queue.Queue()

    def Hello(self, request: Any, context: grpc.ServicerContext) -> Any:
        from google.protobuf import empty_pb2

        return empty_pb2.Empty()

    def GetWorkItems(self, request: Any, context: grpc.ServicerContext) -> Iterator[pb.WorkItem]:
        while context.is_active():
            try:
                item = self.items.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                return
            yield item

    def CompleteOrchestratorTask(self, request: pb.WorkflowResponse, context: grpc.ServicerContext) -> Any:
        self.answers.put(request)
        return pb.CompleteTaskResponse()

    def CompleteWorkflowTask(self, request: pb.WorkflowResponse, context: grpc.ServicerContext) -> Any:
        return self.CompleteOrchestratorTask(request, context)


Recorded = str | Path | dict[str, Any] | list[dict[str, Any]] | list[pb.HistoryEvent]


def _events(history: Recorded) -> list[pb.HistoryEvent]:
    if isinstance(history, list) and all(isinstance(e, pb.HistoryEvent) for e in history):
        return list(history)  # type: ignore[arg-type]
    return load_history(history)  # type: ignore[arg-type]


def replay(history: Recorded, runtime: wf.WorkflowRuntime) -> ReplayResult:
    """Replay `history` (an export, see `load_history`, or protobuf events) against the workflows `runtime`
    registers; the result names the first turn whose actions differ, if one does."""
    events = _events(history)
    started = next((e.executionStarted for e in events if e.HasField("executionStarted")), None)
    if started is None:
        raise ValueError("the history has no executionStarted event: not a recorded workflow run")
    instance_id = started.workflowInstance.instanceId or "replay"
    execution_id = started.workflowInstance.executionId.value
    turns = split_turns(events)

    service = _ReplayService()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    taskhub_grpc.add_TaskHubSidecarServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(f"{HOST}:0")
    server.start()
    # Every turn carries its whole past: the worker must not answer from a history it cached.
    twin = twin_of(runtime, HOST, port, disable_stateful_history=True)
    try:
        twin.start()  # type: ignore[no-untyped-call]
        past: list[pb.HistoryEvent] = []
        for number, turn in enumerate(turns, start=1):
            request = pb.WorkflowRequest(instanceId=instance_id, pastEvents=past, newEvents=turn.new)
            if execution_id:
                request.executionId.value = execution_id
            service.items.put(pb.WorkItem(workflowRequest=request, completionToken=f"replay-{number}"))
            response = service.answers.get(timeout=TURN_TIMEOUT)
            expected = [_recorded(e) for e in turn.actions]
            actual = [_current(a) for a in response.actions]
            if expected != actual:
                return ReplayResult(turns=number, mismatch=Mismatch(number, expected, actual, _failure(response)))
            past = [*past, *turn.new, *turn.actions]
        return ReplayResult(turns=len(turns))
    finally:
        service.items.put(None)
        try:
            twin.shutdown()  # type: ignore[no-untyped-call]
        finally:
            server.stop(grace=None)


def assert_replays(history: Recorded, runtime: wf.WorkflowRuntime) -> None:
    """`replay`, raising `ReplayMismatch` (an AssertionError naming the turn) if a turn's actions differ."""
    result = replay(history, runtime)
    if result.mismatch is not None:
        raise ReplayMismatch(result.mismatch)
