"""Child workflows: results, failures surfacing in the parent, terminate and purge cascades."""

from __future__ import annotations

import time

import dapr.ext.workflow as wf
import grpc
import pytest

from testsupport.sdk import (
    assert_completed,
    complete,
    describe,
    new_id,
    output_of,
    state_of,
    status_of,
    wait_for_custom_status,
    wait_for_status,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("runtime")]


def add_ten(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 10


def child_wf(ctx: wf.DaprWorkflowContext, x: int):
    y = yield ctx.call_activity(add_ten, input=x)
    return {"child": ctx.instance_id, "value": y}


def parent_wf(ctx: wf.DaprWorkflowContext, x: int):
    r = yield ctx.call_child_workflow(child_wf, input=x, instance_id=f"{ctx.instance_id}-child")
    return {"parent": ctx.instance_id, "from_child": r}


def parent_many_wf(ctx: wf.DaprWorkflowContext, n: int):
    tasks = [ctx.call_child_workflow(child_wf, input=i) for i in range(n)]
    results = yield wf.when_all(tasks)
    return {"values": sorted(r["value"] for r in results), "ids": sorted({r["child"] for r in results})}


def failing_child_wf(ctx: wf.DaprWorkflowContext, msg: str):
    yield ctx.call_activity(add_ten, input=0)
    raise ValueError(msg)


def parent_catches_wf(ctx: wf.DaprWorkflowContext, msg: str):
    try:
        yield ctx.call_child_workflow(failing_child_wf, input=msg, instance_id=f"{ctx.instance_id}-child")
    except wf.TaskFailedError as e:
        return {"caught": str(e), "message": e.details.message, "type": e.details.error_type}
    return "no error"


def parent_propagates_wf(ctx: wf.DaprWorkflowContext, msg: str):
    yield ctx.call_child_workflow(failing_child_wf, input=msg, instance_id=f"{ctx.instance_id}-child")
    return "unreachable"


def waiting_child_wf(ctx: wf.DaprWorkflowContext, _):
    ctx.set_custom_status("child-waiting")
    v = yield ctx.wait_for_external_event("release")
    return {"released_with": v}


def parent_of_waiting_wf(ctx: wf.DaprWorkflowContext, _):
    try:
        r = yield ctx.call_child_workflow(
            waiting_child_wf, input=None, instance_id=f"{ctx.instance_id}-child"
        )
    except wf.TaskFailedError as e:
        return {"child_failed": str(e)}
    return {"child_result": r}


WORKFLOWS = [
    child_wf,
    parent_wf,
    parent_many_wf,
    failing_child_wf,
    parent_catches_wf,
    parent_propagates_wf,
    waiting_child_wf,
    parent_of_waiting_wf,
]
ACTIVITIES = [add_ten]


def _start_parent_with_waiting_child(client: wf.DaprWorkflowClient) -> tuple[str, str]:
    parent = client.schedule_new_workflow(parent_of_waiting_wf, input=None, instance_id=new_id("p"))
    child = f"{parent}-child"
    wait_for_custom_status(client, child, "child-waiting")
    assert status_of(client, parent) == wf.WorkflowStatus.RUNNING
    return parent, child


def test_child_workflow_success(client: wf.DaprWorkflowClient) -> None:
    parent = client.schedule_new_workflow(parent_wf, input=5, instance_id=new_id("p"))
    child = f"{parent}-child"
    out = assert_completed(complete(client, parent))
    assert out == {"parent": parent, "from_child": {"child": child, "value": 15}}
    cst = state_of(client, child)
    assert cst is not None
    assert output_of(cst) == {"child": child, "value": 15}
    assert cst.runtime_status == wf.WorkflowStatus.COMPLETED
    assert cst.name == "child_wf"


def test_many_children_with_generated_ids(client: wf.DaprWorkflowClient) -> None:
    parent = client.schedule_new_workflow(parent_many_wf, input=5, instance_id=new_id("p"))
    out = assert_completed(complete(client, parent))
    assert out["values"] == [10, 11, 12, 13, 14]
    assert len(out["ids"]) == 5
    for cid in out["ids"]:
        assert cid.startswith(parent), cid
        assert status_of(client, cid) == wf.WorkflowStatus.COMPLETED


def test_child_failure_surfaces_as_task_failed_error(client: wf.DaprWorkflowClient) -> None:
    parent = client.schedule_new_workflow(parent_catches_wf, input="child broke", instance_id=new_id("p"))
    out = assert_completed(complete(client, parent))
    assert "child broke" in out["caught"]
    assert "child broke" in out["message"]
    assert out["type"] == "ValueError"
    cst = state_of(client, f"{parent}-child")
    assert cst is not None and cst.runtime_status == wf.WorkflowStatus.FAILED, describe(cst)
    assert cst.failure_details is not None and "child broke" in cst.failure_details.message


def test_unhandled_child_failure_fails_parent(client: wf.DaprWorkflowClient) -> None:
    parent = client.schedule_new_workflow(parent_propagates_wf, input="deep error", instance_id=new_id("p"))
    st = complete(client, parent)
    assert st.runtime_status == wf.WorkflowStatus.FAILED, describe(st)
    assert st.failure_details is not None
    assert "deep error" in st.failure_details.message


def test_recursive_terminate_terminates_running_child(client: wf.DaprWorkflowClient) -> None:
    parent, child = _start_parent_with_waiting_child(client)
    client.terminate_workflow(parent, output="cancelled")
    pst = state_of(client, parent)
    assert pst is not None and pst.runtime_status == wf.WorkflowStatus.TERMINATED, describe(pst)
    assert output_of(pst) == "cancelled"
    cst = wait_for_status(client, child, wf.WorkflowStatus.TERMINATED, timeout=15)
    assert cst.runtime_status == wf.WorkflowStatus.TERMINATED


def test_non_recursive_terminate_leaves_child_running(client: wf.DaprWorkflowClient) -> None:
    parent, child = _start_parent_with_waiting_child(client)
    client.terminate_workflow(parent, output="parent only", recursive=False)
    assert status_of(client, parent) == wf.WorkflowStatus.TERMINATED
    time.sleep(0.5)
    assert status_of(client, child) == wf.WorkflowStatus.RUNNING
    client.raise_workflow_event(child, "release", data="go")
    assert assert_completed(complete(client, child)) == {"released_with": "go"}
    time.sleep(0.3)
    pst = state_of(client, parent)
    assert pst is not None and pst.runtime_status == wf.WorkflowStatus.TERMINATED, describe(pst)
    assert output_of(pst) == "parent only"


def test_child_terminated_alone_fails_parent_task(client: wf.DaprWorkflowClient) -> None:
    parent, child = _start_parent_with_waiting_child(client)
    client.terminate_workflow(child, output="child stopped", recursive=False)
    out = assert_completed(complete(client, parent))
    assert "child_failed" in out, out
    assert status_of(client, child) == wf.WorkflowStatus.TERMINATED


def test_recursive_purge_removes_child(client: wf.DaprWorkflowClient) -> None:
    parent = client.schedule_new_workflow(parent_wf, input=1, instance_id=new_id("p"))
    child = f"{parent}-child"
    assert_completed(complete(client, parent))
    assert state_of(client, child) is not None
    client.purge_workflow(parent)
    assert client.get_workflow_state(parent) is None
    assert client.get_workflow_state(child) is None


def test_non_recursive_purge_keeps_child(client: wf.DaprWorkflowClient) -> None:
    parent = client.schedule_new_workflow(parent_wf, input=2, instance_id=new_id("p"))
    child = f"{parent}-child"
    assert_completed(complete(client, parent))
    client.purge_workflow(parent, recursive=False)
    assert client.get_workflow_state(parent) is None
    cst = state_of(client, child)
    assert cst is not None and cst.runtime_status == wf.WorkflowStatus.COMPLETED


def test_recursive_purge_refused_while_child_running(client: wf.DaprWorkflowClient) -> None:
    parent, child = _start_parent_with_waiting_child(client)
    client.terminate_workflow(parent, output="x", recursive=False)
    assert status_of(client, parent) == wf.WorkflowStatus.TERMINATED
    with pytest.raises(grpc.RpcError):
        client.purge_workflow(parent, recursive=True)
    assert status_of(client, parent) == wf.WorkflowStatus.TERMINATED
    assert status_of(client, child) == wf.WorkflowStatus.RUNNING
    client.raise_workflow_event(child, "release", data=1)
    assert_completed(complete(client, child))
    client.purge_workflow(parent, recursive=True)
    assert client.get_workflow_state(parent) is None
    assert client.get_workflow_state(child) is None
