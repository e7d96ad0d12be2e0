"""Apps on one engine, through the official SDK: each app's workers connect to its own endpoint; turns go only
to the owning app's workers; cross-app activities and child workflows route as daprd routes them (by the
action's router), results come back to the caller's app, cascades cross apps, and work for an app with no
worker waits for one (dapr-newest.md §2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import dapr.ext.workflow as wf
import grpc
import pytest

from testsupport.sdk import assert_completed, complete, make_client, make_runtime, new_id, wait_for_status
from testsupport.server import DurahubServer

pytestmark = pytest.mark.timeout(120)

MAIN = "durahub"  # the app of the engine's own ports (`durahub serve --app-id`, default)
SDK_119 = "app_id" in wf.DaprWorkflowClient.get_workflow_state.__code__.co_varnames
RETRY = wf.RetryPolicy(max_number_of_attempts=2, first_retry_interval=timedelta(milliseconds=50))


# -- app B's code -----------------------------------------------------------------------------------------

def b_double(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x * 2


def b_child(ctx: wf.DaprWorkflowContext, x: int):
    y = yield ctx.call_activity("b_double", input=x)  # local to app B
    return {"child": ctx.instance_id, "value": y}


def b_waiting_child(ctx: wf.DaprWorkflowContext, _: object):
    yield ctx.wait_for_external_event("never")
    return "woke"


def who(ctx: wf.DaprWorkflowContext, _: object):
    return "app-b"
    yield  # a generator, like every workflow


# -- the main app's code ----------------------------------------------------------------------------------

def main_who(ctx: wf.DaprWorkflowContext, _: object):
    return "app-main"
    yield


def calls_b_activity(ctx: wf.DaprWorkflowContext, x: int):
    y = yield ctx.call_activity("b_double", input=x, app_id="appb")
    return y


def calls_b_child(ctx: wf.DaprWorkflowContext, x: int):
    r = yield ctx.call_child_workflow("b_child", input=x, instance_id=f"{ctx.instance_id}-c", app_id="appb")
    return r


def calls_missing_activity(ctx: wf.DaprWorkflowContext, _: object):
    try:
        yield ctx.call_activity("not_registered_in_b", input=1, app_id="appb", retry_policy=RETRY)
    except wf.TaskFailedError as e:
        return {"failed": e.details.error_type}
    return "no error"


def calls_absent_app(ctx: wf.DaprWorkflowContext, x: int):
    y = yield ctx.call_activity("c_triple", input=x, app_id="appc")
    return y


def c_triple(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x * 3


def parent_of_waiting_b(ctx: wf.DaprWorkflowContext, _: object):
    yield ctx.call_child_workflow("b_waiting_child", instance_id=f"{ctx.instance_id}-c", app_id="appb")
    return "done"


@pytest.fixture(scope="module")
def apps(server: DurahubServer) -> Iterator[dict[str, int]]:
    """App B's endpoint and a worker for each of the two apps (the main app's on the engine's own port)."""
    b_grpc, b_http = server.open_app("appb")
    main_rt = make_runtime(server, workflows=[(main_who, "who"), calls_b_activity, calls_b_child,
                                              calls_missing_activity, calls_absent_app, parent_of_waiting_b])
    b_rt = make_runtime(server, port=b_grpc, workflows=[b_child, b_waiting_child, (who, "who")],
                        activities=[b_double])
    yield {"grpc": b_grpc, "http": b_http}
    b_rt.shutdown()
    main_rt.shutdown()


@pytest.fixture(scope="module")
def b_client(server: DurahubServer, apps: dict[str, int]) -> Iterator[wf.DaprWorkflowClient]:
    c = make_client(server, port=apps["grpc"])
    yield c
    c.close()


def _instance(server: DurahubServer, instance_id: str, app: str) -> dict[str, object]:
    r = server.http_get(f"/durahub/v1/instances/{instance_id}", params={"appID": app})
    assert r.status_code == 200, r.text
    return r.json()


def test_turns_go_only_to_the_owning_apps_workers(server: DurahubServer, client, b_client, apps) -> None:
    """Both apps register a workflow named "who": each instance runs on its own app's worker."""
    for _ in range(5):
        a, b = client.schedule_new_workflow("who"), b_client.schedule_new_workflow("who")
        assert json.loads(complete(client, a).serialized_output) == "app-main"
        assert json.loads(complete(b_client, b).serialized_output) == "app-b"
    assert _instance(server, a, MAIN)["app_id"] == MAIN
    assert _instance(server, b, "appb")["app_id"] == "appb"


def test_the_same_instance_id_lives_in_two_apps(server: DurahubServer, client, b_client, apps) -> None:
    iid = new_id("same")
    client.schedule_new_workflow("who", instance_id=iid)
    b_client.schedule_new_workflow("who", instance_id=iid)
    assert json.loads(complete(client, iid).serialized_output) == "app-main"
    assert json.loads(complete(b_client, iid).serialized_output) == "app-b"
    listed = server.http_get("/durahub/v1/instances", params={"instance_id_prefix": iid, "appID": "appb"}).json()
    assert [(i["instance_id"], i["app_id"]) for i in listed["instances"]] == [(iid, "appb")]


def test_a_cross_app_activity_runs_on_the_target_app_and_returns_to_the_caller(server, client, apps) -> None:
    iid = client.schedule_new_workflow(calls_b_activity, input=21)
    assert assert_completed(complete(client, iid)) == 42
    history = _instance(server, iid, MAIN)["history"]
    scheduled = next(e for e in history if e["kind"] == "taskScheduled")
    completed = next(e for e in history if e["kind"] == "taskCompleted")
    assert scheduled["details"]["name"] == "b_double" and completed["details"]["result"] == "42"


def test_a_cross_app_child_is_created_in_the_target_app(server: DurahubServer, client, b_client, apps) -> None:
    iid = client.schedule_new_workflow(calls_b_child, input=5)
    out = assert_completed(complete(client, iid))
    assert out == {"child": f"{iid}-c", "value": 10}
    child = _instance(server, f"{iid}-c", "appb")
    assert child["app_id"] == "appb"
    assert child["parent_instance_id"] == iid and child["parent_app_id"] == MAIN
    assert server.http_get(f"/durahub/v1/instances/{iid}-c", params={"appID": MAIN}).status_code == 404
    # The child's start names both apps, so the SDK gives the child `ctx.app_id == "appb"`.
    started = next(e for e in child["history"] if e["kind"] == "executionStarted")
    assert started["details"]["parentInstance"]["appID"] == MAIN
    state = b_client.get_workflow_state(f"{iid}-c")
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED


def test_an_activity_the_target_app_does_not_have_fails_the_task_under_its_retry_policy(client, apps) -> None:
    iid = client.schedule_new_workflow(calls_missing_activity)
    out = assert_completed(complete(client, iid))
    assert out == {"failed": "ActivityNotRegisteredError"}, out  # raised by app B's worker, retried, then surfaced


def test_work_for_an_app_without_workers_waits_until_one_connects(server: DurahubServer, client, apps) -> None:
    iid = client.schedule_new_workflow(calls_absent_app, input=4)
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    with pytest.raises(TimeoutError):
        client.wait_for_workflow_completion(iid, timeout_in_seconds=2)
    assert client.get_workflow_state(iid).runtime_status == wf.WorkflowStatus.RUNNING
    c_grpc, _ = server.open_app("appc")
    c_rt = make_runtime(server, port=c_grpc, activities=[c_triple])
    try:
        assert assert_completed(complete(client, iid)) == 12
    finally:
        c_rt.shutdown()


def test_terminate_and_purge_cascade_across_apps(server: DurahubServer, client, b_client, apps) -> None:
    iid = client.schedule_new_workflow(parent_of_waiting_b)
    wait_for_status(b_client, f"{iid}-c", wf.WorkflowStatus.RUNNING)
    client.terminate_workflow(iid, recursive=True)
    wait_for_status(client, iid, wf.WorkflowStatus.TERMINATED)
    wait_for_status(b_client, f"{iid}-c", wf.WorkflowStatus.TERMINATED)
    client.purge_workflow(iid, recursive=True)
    assert client.get_workflow_state(iid) is None
    assert b_client.get_workflow_state(f"{iid}-c") is None


def test_listing_ids_is_per_app(server: DurahubServer, client, b_client, apps) -> None:
    iid = b_client.schedule_new_workflow("who", instance_id=new_id("only-b"))
    complete(b_client, iid)
    r = server.http_get("/durahub/v1/instances", params={"appID": MAIN, "limit": 1000}).json()
    assert iid not in {i["instance_id"] for i in r["instances"]}


def test_the_dapr_http_api_addresses_an_app_by_endpoint_and_by_app_id_parameter(server, b_client, apps) -> None:
    iid = b_client.schedule_new_workflow("who", instance_id=new_id("http"))
    complete(b_client, iid)
    own = server.http_get(f"/v1.0/workflows/dapr/{iid}")
    assert own.status_code == 404  # not an instance of the main app
    by_param = server.http_get(f"/v1.0/workflows/dapr/{iid}", params={"appID": "appb"})
    assert by_param.status_code == 200 and by_param.json()["appID"] == "appb"
    import httpx

    on_b = httpx.get(f"http://127.0.0.1:{apps['http']}/v1.0/workflows/dapr/{iid}", timeout=10)
    assert on_b.status_code == 200 and on_b.json()["runtimeStatus"] == "COMPLETED"
    meta = httpx.get(f"http://127.0.0.1:{apps['http']}/v1.0/metadata", timeout=10).json()
    assert meta["id"] == "appb" and "appb" in meta["extended"]["durahub.apps"].split(",")
    bad = server.http_get(f"/v1.0/workflows/dapr/{iid}", params={"appID": "bad.app"})
    assert bad.status_code == 400 and bad.json()["errorCode"] == "ERR_WORKFLOW_APP_ID_INVALID"


@pytest.mark.skipif(not SDK_119, reason="the client's app_id arrived with the 1.19 SDK")
def test_client_operations_target_another_app_with_app_id(client, apps) -> None:
    iid = client.schedule_new_workflow("who", instance_id=new_id("routed"), app_id="appb")
    st = client.wait_for_workflow_completion(iid, timeout_in_seconds=30, app_id="appb")
    assert st is not None and json.loads(st.serialized_output) == "app-b"
    assert client.get_workflow_state(iid) is None  # not in the main app
    with pytest.raises(grpc.RpcError) as err:
        client.get_workflow_state(iid, app_id="bad.app")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "workflow app ID 'bad.app' is invalid" in err.value.details()
