"""Protocol faults with raw gRPC (the SDK's generated stubs): dropped GetWorkItems streams, duplicate,
late and misdirected Complete*Task calls, stale results across continue-as-new."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
from dapr.ext.workflow._durabletask.internal import protos as pb

from testsupport.faultlib import ext_instance, history_problems
from testsupport.process import wait_until
from testsupport.sdk import new_id
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(120)]

COMPLETED = 1
CONTINUED_AS_NEW = 2


class RawWorker:
    """One GetWorkItems stream read by a background thread."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.stub = stubs.TaskHubSidecarServiceStub(channel)
        self.items: queue.Queue[Any] = queue.Queue()
        self.call = self.stub.GetWorkItems(pb.GetWorkItemsRequest())
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            for item in self.call:
                self.items.put(item)

    def next(self, kind: str, timeout: float = 15.0, instance_id: str | None = None) -> Any:
        deadline = time.monotonic() + timeout
        skipped = []
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {kind} work item within {timeout}s")
                try:
                    item = self.items.get(timeout=remaining)
                except queue.Empty:
                    continue
                which = item.WhichOneof("request")
                iid = item.workflowRequest.instanceId if which == "workflowRequest" else item.activityRequest.workflowInstance.instanceId
                if which == kind and (instance_id is None or iid == instance_id):
                    return item
                skipped.append(item)
        finally:
            for s in skipped:
                self.items.put(s)

    def drop(self) -> None:
        self.call.cancel()
        self.thread.join(timeout=5)


@pytest.fixture
def srv(server_factory: Callable[..., DurahubServer]) -> DurahubServer:
    return server_factory()


@pytest.fixture
def channel(srv: DurahubServer) -> Iterator[grpc.Channel]:
    ch = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
    yield ch
    ch.close()


def _start(stub: Any, iid: str, name: str = "raw_wf", input: str | None = None) -> None:
    req = pb.CreateInstanceRequest(instanceId=iid, name=name)
    if input is not None:
        req.input.value = input
    req.scheduledStartTimestamp.FromMicroseconds(int(time.time() * 1e6))  # now: runs at once, no wait
    stub.StartInstance(req, timeout=10)


def _schedule(iid: str, token: str, task_id: int, input: str) -> Any:
    r = pb.WorkflowResponse(instanceId=iid, completionToken=token)
    a = r.actions.add(id=task_id)
    a.scheduleTask.name = "act"
    a.scheduleTask.input.value = input
    return r


def _finish(iid: str, token: str, action_id: int, result: str, status: int = COMPLETED) -> Any:
    r = pb.WorkflowResponse(instanceId=iid, completionToken=token)
    a = r.actions.add(id=action_id)
    a.completeWorkflow.workflowStatus = status
    a.completeWorkflow.result.value = result
    return r


def _act_done(item: Any, result: str) -> Any:
    req = item.activityRequest
    r = pb.ActivityResponse(instanceId=req.workflowInstance.instanceId, taskId=req.taskId,
                            completionToken=item.completionToken)
    r.result.value = result
    return r


def _kinds(srv: DurahubServer, iid: str) -> list[str]:
    inst = ext_instance(srv.http_url, iid)
    assert inst is not None
    return [e["kind"] for e in inst["history"]]


def test_duplicate_and_late_completions_are_acknowledged_and_ignored(srv: DurahubServer, channel: grpc.Channel) -> None:
    w = RawWorker(channel)
    stub = w.stub
    iid = new_id("dup")
    _start(stub, iid)
    item = w.next("workflowRequest")
    resp = _schedule(iid, item.completionToken, 1, '"a"')
    stub.CompleteOrchestratorTask(resp, timeout=10)
    stub.CompleteOrchestratorTask(resp, timeout=10)  # duplicate: OK, ignored
    act = w.next("activityRequest")
    assert act.activityRequest.taskId == 1
    stub.CompleteActivityTask(_act_done(act, '"first"'), timeout=10)
    stub.CompleteActivityTask(_act_done(act, '"second"'), timeout=10)  # duplicate with another result
    item2 = w.next("workflowRequest")
    new = [e.WhichOneof("eventType") for e in item2.workflowRequest.newEvents]
    assert new.count("taskCompleted") == 1
    done = _finish(iid, item2.completionToken, 2, '"out"')
    stub.CompleteOrchestratorTask(done, timeout=10)
    wait_until(lambda: (ext_instance(srv.http_url, iid) or {}).get("status") == "COMPLETED", timeout=15)
    before = ext_instance(srv.http_url, iid)
    # Late: everything again, after the instance finished.
    stub.CompleteOrchestratorTask(resp, timeout=10)
    stub.CompleteOrchestratorTask(done, timeout=10)
    stub.CompleteActivityTask(_act_done(act, '"late"'), timeout=10)
    stub.CompleteWorkflowTask(done, timeout=10)
    # No work is re-offered for a finished instance.
    with pytest.raises(AssertionError):
        w.next("workflowRequest", timeout=1.0, instance_id=iid)
    after = ext_instance(srv.http_url, iid)
    assert after == before
    assert after is not None
    results = [e for e in after["history"] if e["kind"] == "taskCompleted"]
    assert len(results) == 1 and results[0]["details"]["result"] == '"first"'
    assert after["output"] == '"out"'
    assert not history_problems(after)
    w.drop()


def test_dropped_stream_items_are_redelivered_once(srv: DurahubServer, channel: grpc.Channel) -> None:
    iid = new_id("drop")
    a = RawWorker(channel)
    _start(a.stub, iid)
    wa = a.next("workflowRequest")
    a.drop()  # the turn was sent and never answered
    b = RawWorker(channel)
    wb = b.next("workflowRequest", instance_id=iid)
    assert [e.WhichOneof("eventType") for e in wb.workflowRequest.newEvents] == \
        [e.WhichOneof("eventType") for e in wa.workflowRequest.newEvents]
    assert wb.completionToken != wa.completionToken
    b.stub.CompleteOrchestratorTask(_schedule(iid, wb.completionToken, 1, '"x"'), timeout=10)
    # The dead stream's answer arrives late, with a different action: ignored.
    b.stub.CompleteOrchestratorTask(_schedule(iid, wa.completionToken, 1, '"stale"'), timeout=10)
    act_b = b.next("activityRequest")
    assert act_b.activityRequest.input.value == '"x"'
    b.drop()  # the activity was sent and never answered
    c = RawWorker(channel)
    act_c = c.next("activityRequest")
    assert act_c.activityRequest.taskId == act_b.activityRequest.taskId
    c.stub.CompleteActivityTask(_act_done(act_c, '"from-c"'), timeout=10)
    c.stub.CompleteActivityTask(_act_done(act_b, '"from-b-late"'), timeout=10)
    wc = c.next("workflowRequest", instance_id=iid)
    c.stub.CompleteOrchestratorTask(_finish(iid, wc.completionToken, 2, '"done"'), timeout=10)
    wait_until(lambda: (ext_instance(srv.http_url, iid) or {}).get("status") == "COMPLETED", timeout=15)
    inst = ext_instance(srv.http_url, iid)
    assert inst is not None
    kinds = [e["kind"] for e in inst["history"]]
    assert kinds.count("taskScheduled") == 1 and kinds.count("taskCompleted") == 1, kinds
    sched = next(e for e in inst["history"] if e["kind"] == "taskScheduled")
    assert sched["details"]["input"] == '"x"'
    assert not history_problems(inst)
    c.drop()


def test_stream_dropped_with_many_items_outstanding(srv: DurahubServer, channel: grpc.Channel) -> None:
    a = RawWorker(channel)
    ids = [new_id("many") for _ in range(20)]
    for iid in ids:
        _start(a.stub, iid)
    got = {a.next("workflowRequest").workflowRequest.instanceId for _ in ids}
    assert got == set(ids)
    a.drop()
    b = RawWorker(channel)
    for _ in ids:
        item = b.next("workflowRequest")
        iid = item.workflowRequest.instanceId
        b.stub.CompleteOrchestratorTask(_finish(iid, item.completionToken, 1, json.dumps(iid)), timeout=10)
    for iid in ids:
        wait_until(lambda iid=iid: (ext_instance(srv.http_url, iid) or {}).get("status") == "COMPLETED", timeout=15)
        inst = ext_instance(srv.http_url, iid)
        assert inst is not None and inst["output"] == json.dumps(iid)
        assert not history_problems(inst)
    b.drop()


def test_stale_activity_result_from_previous_generation_is_dropped(srv: DurahubServer, channel: grpc.Channel) -> None:
    w = RawWorker(channel)
    stub = w.stub
    iid = new_id("stale")
    _start(stub, iid, input="0")
    t1 = w.next("workflowRequest")
    stub.CompleteOrchestratorTask(_schedule(iid, t1.completionToken, 1, "1"), timeout=10)
    act1 = w.next("activityRequest")
    stub.CompleteActivityTask(_act_done(act1, '"gen1-result"'), timeout=10)
    t2 = w.next("workflowRequest")
    # Continue as new: ids restart at 1 in the new generation.
    stub.CompleteOrchestratorTask(_finish(iid, t2.completionToken, 2, "1", status=CONTINUED_AS_NEW), timeout=10)
    t3 = w.next("workflowRequest")
    stub.CompleteOrchestratorTask(_schedule(iid, t3.completionToken, 1, "2"), timeout=10)
    act2 = w.next("activityRequest")
    assert act2.activityRequest.taskId == 1
    # A redelivered duplicate of generation 1's result (as after a crash) arrives now: it must be dropped.
    stub.CompleteActivityTask(_act_done(act1, '"gen1-duplicate"'), timeout=10)
    stub.CompleteActivityTask(_act_done(act2, '"gen2-result"'), timeout=10)
    t4 = w.next("workflowRequest")
    results = [e.taskCompleted.result.value for e in t4.workflowRequest.newEvents if e.HasField("taskCompleted")]
    assert results == ['"gen2-result"'], results
    w.drop()


def test_completion_with_another_instances_token_does_not_wedge_it(
    srv: DurahubServer, channel: grpc.Channel
) -> None:
    w = RawWorker(channel)
    stub = w.stub
    x, y = new_id("tokx"), new_id("toky")
    _start(stub, x)
    item = w.next("workflowRequest", instance_id=x)
    # Bogus: y's "completion" with x's token. OK and ignored (y does not even exist).
    stub.CompleteOrchestratorTask(_finish(y, item.completionToken, 1, '"bogus"'), timeout=10)
    stub.CompleteOrchestratorTask(_finish(x, item.completionToken, 1, '"real"'), timeout=10)
    st = stub.WaitForInstanceCompletion(pb.GetInstanceRequest(instanceId=x, getInputsAndOutputs=True), timeout=10)
    assert st.workflowState.output.value == '"real"'
    w.drop()


def test_bogus_tokens_and_unknown_task_ids_change_nothing(srv: DurahubServer, channel: grpc.Channel) -> None:
    w = RawWorker(channel)
    stub = w.stub
    iid = new_id("bogus")
    _start(stub, iid)
    item = w.next("workflowRequest")
    stub.CompleteOrchestratorTask(_schedule(iid, item.completionToken, 1, '"in"'), timeout=10)
    act = w.next("activityRequest")
    before = ext_instance(srv.http_url, iid)
    for task_id in (0, 2, 99, -1, 2**31 - 1):
        r = pb.ActivityResponse(instanceId=iid, taskId=task_id, completionToken="bogus")
        r.result.value = '"nope"'
        stub.CompleteActivityTask(r, timeout=10)
    r = pb.ActivityResponse(instanceId=new_id("ghost"), taskId=1, completionToken=act.completionToken)
    stub.CompleteActivityTask(r, timeout=10)
    stub.CompleteOrchestratorTask(_finish(iid, "bogus-token", 2, '"nope"'), timeout=10)
    assert ext_instance(srv.http_url, iid) == before
    # The genuine completion still works.
    stub.CompleteActivityTask(_act_done(act, '"real"'), timeout=10)
    item2 = w.next("workflowRequest")
    stub.CompleteOrchestratorTask(_finish(iid, item2.completionToken, 2, '"ok"'), timeout=10)
    st = stub.WaitForInstanceCompletion(pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True), timeout=10)
    assert st.workflowState.output.value == '"ok"'
    inst = ext_instance(srv.http_url, iid)
    assert inst is not None and not history_problems(inst)
    done = [e for e in inst["history"] if e["kind"] == "taskCompleted"]
    assert [e["details"]["result"] for e in done] == ['"real"']
    w.drop()
