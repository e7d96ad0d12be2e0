"""The newer fields of the durabletask protocol over raw gRPC (dapr-newest.md §3): `tags`,
`enforceUniqueInstanceId`, `WorkflowState.startedAt` and `parentAppId`, and the 1.19 client `router`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dapr.ext.workflow as wf
import grpc
import pytest
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
from dapr.ext.workflow._durabletask.internal import protos as pb

from testsupport.sdk import new_id
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("runtime")]


def _has(message: type, field: str) -> bool:
    return field in message.DESCRIPTOR.fields_by_name


NEWEST = _has(pb.CreateInstanceRequest, "enforceUniqueInstanceId") and _has(pb.WorkflowState, "startedAt")
needs_119 = pytest.mark.skipif(not NEWEST, reason="these fields are in the 1.19 SDK's protos")


def quick(ctx: wf.DaprWorkflowContext, x: int):
    return x
    yield


def waits(ctx: wf.DaprWorkflowContext, _: object):
    yield ctx.wait_for_external_event("go")
    return "went"


def parent(ctx: wf.DaprWorkflowContext, _: object):
    r = yield ctx.call_child_workflow(quick, input=7, instance_id=f"{ctx.instance_id}-c")
    return r


WORKFLOWS = [quick, waits, parent]


@pytest.fixture(scope="module")
def stub(server: DurahubServer) -> Iterator[stubs.TaskHubSidecarServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield stubs.TaskHubSidecarServiceStub(channel)
    channel.close()


def _start(stub, name: str, instance_id: str, **fields) -> None:  # type: ignore[no-untyped-def]
    req = pb.CreateInstanceRequest(instanceId=instance_id, name=name, **fields)
    req.input.value = "1"
    stub.StartInstance(req, timeout=20)


def _completed(stub, instance_id: str) -> pb.WorkflowState:  # type: ignore[no-untyped-def]
    r = stub.WaitForInstanceCompletion(pb.GetInstanceRequest(instanceId=instance_id, getInputsAndOutputs=True),
                                       timeout=20)
    assert r.exists
    return r.workflowState


def test_tags_are_kept_and_returned(stub) -> None:
    iid = new_id("tags")
    _start(stub, "quick", iid, tags={"team": "payments", "tier": "gold"})
    state = _completed(stub, iid)
    assert dict(state.tags) == {"team": "payments", "tier": "gold"}
    got = stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), timeout=10).workflowState
    assert dict(got.tags) == {"team": "payments", "tier": "gold"}


@needs_119
def test_enforce_unique_instance_id_refuses_even_a_finished_id(stub) -> None:
    iid = new_id("unique")
    _start(stub, "quick", iid)
    first = _completed(stub, iid)
    with pytest.raises(grpc.RpcError) as err:
        _start(stub, "quick", iid, enforceUniqueInstanceId=True)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert _completed(stub, iid).executionId == first.executionId  # untouched
    _start(stub, "quick", iid)  # without it, a finished id is replaced
    assert _completed(stub, iid).executionId != first.executionId


@needs_119
def test_started_at_is_unset_while_pending_and_the_first_turn_after(stub) -> None:
    iid = new_id("later")
    req = pb.CreateInstanceRequest(instanceId=iid, name="quick")
    req.scheduledStartTimestamp.FromSeconds(int(time.time()) + 3600)
    stub.StartInstance(req, timeout=10)
    pending = stub.GetInstance(pb.GetInstanceRequest(instanceId=iid), timeout=10).workflowState
    assert pending.workflowStatus == pb.ORCHESTRATION_STATUS_PENDING and not pending.HasField("startedAt")
    now = new_id("now")
    _start(stub, "quick", now)
    state = _completed(stub, now)
    assert state.HasField("startedAt")
    started, created = state.startedAt.ToMicroseconds(), state.createdTimestamp.ToMicroseconds()
    assert created <= started <= state.completedTimestamp.ToMicroseconds()


@needs_119
def test_a_childs_state_names_its_parents_app(server: DurahubServer, stub) -> None:
    iid = new_id("p")
    _start(stub, "parent", iid)
    _completed(stub, iid)
    child = stub.GetInstance(pb.GetInstanceRequest(instanceId=f"{iid}-c"), timeout=10).workflowState
    assert child.parentInstanceId.value == iid
    assert child.parentAppId.value == server.metadata()["id"]


@needs_119
def test_a_router_target_that_is_not_an_app_id_is_invalid(stub) -> None:
    req = pb.GetInstanceRequest(instanceId="x")
    req.router.targetAppID = "no.dots"
    with pytest.raises(grpc.RpcError) as err:
        stub.GetInstance(req, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == ("workflow app ID 'no.dots' is invalid: only alphanumeric, dash and underscore"
                                   " characters are allowed")
