"""Spec §9 behaviours not covered elsewhere: keepalive pings on an idle stream, and a child id that an
active instance already holds."""

from __future__ import annotations

import json
import threading
import time

import dapr.ext.workflow as wf
import grpc
import pytest
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
from dapr.ext.workflow._durabletask.internal import protos as pb

from testsupport.sdk import new_id, wait_for_status
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]


def holder_wf(ctx: wf.DaprWorkflowContext, _):
    return (yield ctx.wait_for_external_event("release"))


def claims_child_id_wf(ctx: wf.DaprWorkflowContext, child_id: str):
    try:
        yield ctx.call_child_workflow(holder_wf, input=None, instance_id=child_id)
    except wf.TaskFailedError as exc:
        return {"failed": str(exc)}
    return {"failed": None}


WORKFLOWS = [holder_wf, claims_child_id_wf]


def test_child_id_held_by_an_active_instance_fails_the_parents_task(server: DurahubServer, client) -> None:
    occupied = new_id("occupied")
    client.schedule_new_workflow(holder_wf, instance_id=occupied)
    wait_for_status(client, occupied, wf.WorkflowStatus.RUNNING)
    parent = client.schedule_new_workflow(claims_child_id_wf, input=occupied, instance_id=new_id("parent"))
    st = client.wait_for_workflow_completion(parent, timeout_in_seconds=30)
    assert st.runtime_status == wf.WorkflowStatus.COMPLETED
    failed = json.loads(st.serialized_output)["failed"]
    assert failed and f"an active workflow with ID '{occupied}' already exists" in failed
    # The occupying instance is untouched and still waiting.
    holder = client.get_workflow_state(occupied)
    assert holder.runtime_status == wf.WorkflowStatus.RUNNING and holder.serialized_input in (None, "", "null")
    client.raise_workflow_event(occupied, "release", data="done")
    assert client.wait_for_workflow_completion(occupied, timeout_in_seconds=30).serialized_output == '"done"'


def test_idle_stream_survives_frequent_client_keepalive_pings(server: DurahubServer, client) -> None:
    """A default grpcio server answers the SDK's keepalive pings on an idle stream with GOAWAY
    (too_many_pings); durahub must keep the stream open and still deliver work on it."""
    options = [("grpc.keepalive_time_ms", 500), ("grpc.keepalive_timeout_ms", 2000),
               ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
               ("grpc.http2.min_time_between_pings_ms", 500), ("grpc.http2.min_ping_interval_without_data_ms", 500)]
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=options)
    stream = stubs.TaskHubSidecarServiceStub(channel).GetWorkItems(pb.GetWorkItemsRequest())
    received: list = []
    errors: list = []

    def read() -> None:
        try:
            for item in stream:
                received.append(item)
                return
        except grpc.RpcError as exc:
            errors.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    workers_before = server.connected_workers()
    time.sleep(4)  # ~8 pings with no data on the stream
    assert not errors, f"idle stream was closed: {errors[0].code()} {errors[0].details()}"
    assert server.connected_workers() == workers_before >= 2  # the SDK's worker and this stream
    stream.cancel()
    channel.close()


def _next_item(stream):
    for item in stream:
        if item.HasField("workflowRequest") or item.HasField("activityRequest"):
            return item
    raise AssertionError("stream ended")


def test_abandoned_continue_as_new_turn_restarts_from_committed_history(server_factory) -> None:
    """A worker asks to continue as new and its stream dies before the new generation's first answer:
    the turn is redone from what is committed (nothing), never from the half-applied one."""
    srv: DurahubServer = server_factory()
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
    stub = stubs.TaskHubSidecarServiceStub(channel)
    iid = new_id("can")
    req = pb.CreateInstanceRequest(instanceId=iid, name="loop")
    req.input.value = "1"
    req.scheduledStartTimestamp.FromSeconds(0)  # in the past: starts now, and StartInstance does not wait
    stub.StartInstance(req, timeout=10)

    first = stub.GetWorkItems(pb.GetWorkItemsRequest())
    item = _next_item(first)
    turn = item.workflowRequest
    assert [e.WhichOneof("eventType") for e in turn.newEvents] == ["workflowStarted", "executionStarted"]
    response = pb.WorkflowResponse(instanceId=iid, completionToken=item.completionToken)
    action = response.actions.add(id=1)
    action.completeWorkflow.workflowStatus = pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW
    action.completeWorkflow.result.value = "2"
    stub.CompleteOrchestratorTask(response, timeout=10)
    again = _next_item(first).workflowRequest  # the new generation, same turn
    assert len(again.pastEvents) == 0
    assert again.newEvents[1].executionStarted.input.value == "2"
    first.cancel()  # the worker dies before answering

    second = stub.GetWorkItems(pb.GetWorkItemsRequest())
    redo = _next_item(second).workflowRequest
    kinds = [e.WhichOneof("eventType") for e in redo.pastEvents]
    assert kinds == [], kinds
    starts = [e for e in redo.newEvents if e.HasField("executionStarted")]
    assert len(starts) == 1 and starts[0].executionStarted.input.value == "1"
    second.cancel()
    channel.close()


def test_purge_by_filter_removes_finished_instances_only(server: DurahubServer, client) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    stub = stubs.TaskHubSidecarServiceStub(channel)
    since = int(time.time()) - 1
    done = client.schedule_new_workflow(holder_wf, instance_id=new_id("fdone"))
    client.raise_workflow_event(done, "release", data="x")
    client.wait_for_workflow_completion(done, timeout_in_seconds=30)
    waiting = client.schedule_new_workflow(holder_wf, instance_id=new_id("fwait"))
    wait_for_status(client, waiting, wf.WorkflowStatus.RUNNING)
    req = pb.PurgeInstancesRequest(recursive=True)
    req.purgeInstanceFilter.createdTimeFrom.FromSeconds(since)
    resp = stub.PurgeInstances(req, timeout=30)
    assert resp.deletedInstanceCount >= 1
    assert client.get_workflow_state(done) is None
    assert client.get_workflow_state(waiting).runtime_status == wf.WorkflowStatus.RUNNING
    client.terminate_workflow(waiting)
    channel.close()
