"""Bad input over raw gRPC (the SDK's own generated stubs): precise statuses, nothing stored."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
from dapr.ext.workflow._durabletask.internal import protos as pb
from google.protobuf import empty_pb2

from testsupport.sdk import new_id
from testsupport.server import DurahubServer


@pytest.fixture(scope="module")
def stub(server: DurahubServer) -> Iterator[stubs.TaskHubSidecarServiceStub]:
    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.grpc_port}", options=[("grpc.max_send_message_length", 16 * 1024 * 1024)]
    )
    yield stubs.TaskHubSidecarServiceStub(channel)
    channel.close()


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def _future_start(stub, instance_id: str, name: str = "wf") -> None:
    # A scheduled start returns at once, so no worker is needed for these tests.
    req = pb.CreateInstanceRequest(instanceId=instance_id, name=name)
    req.scheduledStartTimestamp.FromSeconds(int(time.time()) + 3600)
    stub.StartInstance(req, timeout=10)


def _exists(stub, instance_id: str) -> bool:
    return stub.GetInstance(pb.GetInstanceRequest(instanceId=instance_id), timeout=10).exists


def test_hello(stub) -> None:
    assert stub.Hello(empty_pb2.Empty(), timeout=10) == empty_pb2.Empty()


def test_get_unknown_instance_is_ok_with_exists_false(stub) -> None:
    assert not _exists(stub, new_id("nope"))


def test_empty_ids_and_names_are_invalid_argument(stub) -> None:
    code, _ = _code(lambda: stub.GetInstance(pb.GetInstanceRequest(instanceId=""), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, msg = _code(
        lambda: stub.StartInstance(pb.CreateInstanceRequest(instanceId=new_id(), name=""), timeout=10)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "name" in msg
    code, _ = _code(lambda: stub.RaiseEvent(pb.RaiseEventRequest(instanceId="", name="x"), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_operations_on_unknown_instances_are_not_found_and_name_the_instance(stub) -> None:
    iid = new_id("ghost")
    for call in (
        lambda: stub.RaiseEvent(pb.RaiseEventRequest(instanceId=iid, name="e"), timeout=10),
        lambda: stub.TerminateInstance(pb.TerminateRequest(instanceId=iid, recursive=True), timeout=10),
        lambda: stub.SuspendInstance(pb.SuspendRequest(instanceId=iid), timeout=10),
        lambda: stub.ResumeInstance(pb.ResumeRequest(instanceId=iid), timeout=10),
        lambda: stub.PurgeInstances(pb.PurgeInstancesRequest(instanceId=iid, recursive=True), timeout=10),
    ):
        code, msg = _code(call)
        assert code == grpc.StatusCode.NOT_FOUND
        assert "no such instance exists" in msg and iid in msg
    code, msg = _code(
        lambda: stub.GetInstanceHistory(pb.GetInstanceHistoryRequest(instanceId=iid), timeout=10)
    )
    assert code == grpc.StatusCode.NOT_FOUND and iid in msg
    assert not _exists(stub, iid)


def test_duplicate_active_id_is_already_exists_and_purge_of_active_is_refused(stub) -> None:
    iid = new_id("dup")
    _future_start(stub, iid)
    state = stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), timeout=10).workflowState
    assert state.workflowStatus == pb.ORCHESTRATION_STATUS_PENDING and state.name == "wf"
    code, msg = _code(lambda: _future_start(stub, iid, name="other"))
    assert code == grpc.StatusCode.ALREADY_EXISTS
    assert f"an active workflow with ID '{iid}' already exists" in msg
    code, msg = _code(
        lambda: stub.PurgeInstances(pb.PurgeInstancesRequest(instanceId=iid, recursive=True), timeout=10)
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "has not yet completed" in msg
    after = stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), timeout=10).workflowState
    assert after.name == "wf" and after.workflowStatus == pb.ORCHESTRATION_STATUS_PENDING


def test_oversize_payload_is_resource_exhausted_and_stores_nothing(stub) -> None:
    iid = new_id("big")
    req = pb.CreateInstanceRequest(instanceId=iid, name="wf")
    req.input.value = '"' + "x" * (5 * 1024 * 1024) + '"'
    code, _ = _code(lambda: stub.StartInstance(req, timeout=20))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not _exists(stub, iid)


def test_late_and_unknown_completions_are_acknowledged(stub) -> None:
    stub.CompleteActivityTask(
        pb.ActivityResponse(instanceId=new_id(), taskId=3, completionToken="bogus"), timeout=10
    )
    stub.CompleteOrchestratorTask(
        pb.WorkflowResponse(instanceId=new_id(), completionToken="bogus"), timeout=10
    )
    stub.CompleteWorkflowTask(pb.WorkflowResponse(instanceId=new_id()), timeout=10)


def test_wait_for_completion_honours_the_deadline(stub) -> None:
    iid = new_id("wait")
    _future_start(stub, iid)
    started = time.monotonic()
    code, _ = _code(lambda: stub.WaitForInstanceCompletion(pb.GetInstanceRequest(instanceId=iid), timeout=1))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 5


def test_list_instance_ids_pages(stub) -> None:
    prefix = new_id("page")
    for i in range(5):
        _future_start(stub, f"{prefix}-{i}")
    seen: list[str] = []
    token = ""
    for _ in range(100):
        resp = stub.ListInstanceIDs(
            pb.ListInstanceIDsRequest(pageSize=2, continuationToken=token), timeout=10
        )
        assert len(resp.instanceIds) <= 2
        seen.extend(resp.instanceIds)
        token = resp.continuationToken
        if not token:
            break
    assert [i for i in seen if i.startswith(prefix)] == [f"{prefix}-{i}" for i in range(5)]
    assert len(seen) == len(set(seen))


def test_purge_by_filter_purges_only_terminal_instances(stub) -> None:
    iid = new_id("filter")
    _future_start(stub, iid)
    req = pb.PurgeInstancesRequest(recursive=True)
    req.purgeInstanceFilter.runtimeStatus.append(pb.ORCHESTRATION_STATUS_PENDING)
    resp = stub.PurgeInstances(req, timeout=10)
    assert resp.deletedInstanceCount == 0
    assert _exists(stub, iid)


def _first_item(stream, timeout: float):
    """The first work item of a stream, or None if nothing arrived in time."""
    import threading

    got: list = []

    def read() -> None:
        try:
            for item in stream:
                got.append(item)
                return
        except grpc.RpcError:
            pass

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout)
    stream.cancel()
    return got[0] if got else None


def test_health_pings_only_to_workers_that_ask_for_them(server_factory) -> None:
    if not hasattr(pb, "WORKER_CAPABILITY_HEALTH_PING"):
        pytest.skip("the legacy SDK's protos have no worker capabilities")
    srv: DurahubServer = server_factory(extra_args=["--health-ping-seconds", "0.3"])
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.grpc_port}")
    stub = stubs.TaskHubSidecarServiceStub(channel)
    try:
        legacy = stub.GetWorkItems(pb.GetWorkItemsRequest())
        assert _first_item(legacy, 1.5) is None
        modern = stub.GetWorkItems(pb.GetWorkItemsRequest(capabilities=[pb.WORKER_CAPABILITY_HEALTH_PING]))
        item = _first_item(modern, 5)
        assert item is not None and item.HasField("healthPing")
    finally:
        channel.close()
