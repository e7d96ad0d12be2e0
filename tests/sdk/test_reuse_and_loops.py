"""Instance ids used again (child retries, finished ids re-created as children, re-scheduled parents) and
tight continue-as-new loops: each case must complete as it does on Dapr (issue 11, items 1-4)."""

from __future__ import annotations

import threading
from datetime import timedelta

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import (
    assert_completed,
    complete,
    make_client,
    new_id,
    output_of,
    running_runtime,
    wait_for_status,
)
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]

# Activity executions per key: an activity runs once per attempt, never on replay.
ATTEMPTS: dict[str, int] = {}


def bump(ctx: wf.WorkflowActivityContext, key: str) -> int:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    return ATTEMPTS[key]


def flaky_child_wf(ctx: wf.DaprWorkflowContext, key: str):
    attempt = yield ctx.call_activity(bump, input=key)
    if attempt < 2:
        raise ValueError(f"attempt {attempt} fails")
    return {"child": ctx.instance_id, "attempt": attempt}


def parent_retries_child_wf(ctx: wf.DaprWorkflowContext, key: str):
    policy = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=200), max_number_of_attempts=3)
    result = yield ctx.call_child_workflow(flaky_child_wf, input=key, instance_id=f"{ctx.instance_id}-child",
                                           retry_policy=policy)
    return result


def echo_child_wf(ctx: wf.DaprWorkflowContext, value):
    yield ctx.call_activity(bump, input=f"echo-{ctx.instance_id}")
    return {"child": ctx.instance_id, "value": value}


def parent_of_named_child_wf(ctx: wf.DaprWorkflowContext, args: dict):
    result = yield ctx.call_child_workflow(echo_child_wf, input=args["value"], instance_id=args["child_id"])
    return result


def child_each_generation_wf(ctx: wf.DaprWorkflowContext, n: int):
    # No instance id: the SDK names the child "<parent>:0001" in every generation.
    result = yield ctx.call_child_workflow(echo_child_wf, input=n)
    if n >= 3:
        return result
    ctx.continue_as_new(n + 1)


def tight_loop_wf(ctx: wf.DaprWorkflowContext, n: int):
    if n >= 45:
        return n
    ctx.continue_as_new(n + 1)


def drain_one_per_generation_wf(ctx: wf.DaprWorkflowContext, state: dict):
    item = yield ctx.wait_for_external_event("item")
    got = [*state["got"], item]
    if len(got) >= state["want"]:
        return got
    ctx.continue_as_new({"got": got, "want": state["want"]}, save_events=True)


WORKFLOWS = [flaky_child_wf, parent_retries_child_wf, echo_child_wf, parent_of_named_child_wf,
             child_each_generation_wf, tight_loop_wf, drain_one_per_generation_wf]
ACTIVITIES = [bump]


def test_child_retried_under_its_own_id_runs_again(client: wf.DaprWorkflowClient) -> None:
    key = new_id("k")
    iid = client.schedule_new_workflow(parent_retries_child_wf, input=key, instance_id=new_id("retry"))
    st = complete(client, iid)
    assert assert_completed(st) == {"child": f"{iid}-child", "attempt": 2}
    assert ATTEMPTS[key] == 2


def test_finished_top_level_id_is_recreated_as_a_child(client: wf.DaprWorkflowClient) -> None:
    taken = new_id("taken")
    client.schedule_new_workflow(echo_child_wf, input="first run", instance_id=taken)
    assert assert_completed(complete(client, taken)) == {"child": taken, "value": "first run"}
    parent = client.schedule_new_workflow(parent_of_named_child_wf, input={"child_id": taken, "value": "second run"},
                                          instance_id=new_id("p"))
    assert assert_completed(complete(client, parent)) == {"child": taken, "value": "second run"}
    assert output_of(complete(client, taken)) == {"child": taken, "value": "second run"}


def test_child_with_the_same_generated_id_runs_in_every_generation(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(child_each_generation_wf, input=0, instance_id=new_id("gen"))
    assert assert_completed(complete(client, iid)) == {"child": f"{iid}:0001", "value": 3}
    assert ATTEMPTS[f"echo-{iid}:0001"] == 4


def test_rescheduled_finished_parent_runs_its_children_again(client: wf.DaprWorkflowClient) -> None:
    iid = new_id("again")
    child = f"{iid}-kid"
    for value in ("one", "two", "three"):
        client.schedule_new_workflow(parent_of_named_child_wf, input={"child_id": child, "value": value},
                                     instance_id=iid)
        assert assert_completed(complete(client, iid)) == {"child": child, "value": value}
    assert ATTEMPTS[f"echo-{child}"] == 3


def test_purged_child_id_is_reused_by_a_rescheduled_parent(client: wf.DaprWorkflowClient) -> None:
    iid = new_id("purged")
    child = f"{iid}-kid"
    client.schedule_new_workflow(parent_of_named_child_wf, input={"child_id": child, "value": 1}, instance_id=iid)
    assert_completed(complete(client, iid))
    client.purge_workflow(child)
    client.schedule_new_workflow(parent_of_named_child_wf, input={"child_id": child, "value": 2}, instance_id=iid)
    assert assert_completed(complete(client, iid)) == {"child": child, "value": 2}
    client.purge_workflow(iid)  # recursive: the child goes too
    client.schedule_new_workflow(parent_of_named_child_wf, input={"child_id": child, "value": 3}, instance_id=iid)
    assert assert_completed(complete(client, iid)) == {"child": child, "value": 3}


def test_more_continue_as_new_than_one_turn_allows(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(tight_loop_wf, input=0, instance_id=new_id("tight"))
    assert assert_completed(complete(client, iid)) == 45


def test_events_raised_while_suspended_drain_one_per_generation(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(drain_one_per_generation_wf, input={"got": [], "want": 25},
                                       instance_id=new_id("drain"))
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    client.pause_workflow(iid)
    wait_for_status(client, iid, wf.WorkflowStatus.SUSPENDED)
    for i in range(25):
        client.raise_workflow_event(iid, "item", data=f"e{i}")  # (the SDK sends no data for a falsy 0)
    client.resume_workflow(iid)
    assert assert_completed(complete(client, iid)) == [f"e{i}" for i in range(25)]


def test_rerun_without_a_new_instance_id_picks_one(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    source = client.schedule_new_workflow(echo_child_wf, input="x", instance_id=new_id("rr"))
    assert_completed(complete(client, source))
    history = server.http_get(f"/durahub/v1/instances/{source}").json()["history"]
    scheduled = next(e["event_id"] for e in history if e["kind"] == "taskScheduled")
    r = server.http_post(f"/durahub/v1/instances/{source}/rerun", json={"event_id": scheduled})
    assert r.status_code == 202, r.text
    new = r.json()["new_instance_id"]
    assert new and new != source
    assert assert_completed(complete(client, new)) == {"child": new, "value": "x"}


RELEASE: dict[str, threading.Event] = {}


def hold(ctx: wf.WorkflowActivityContext, key: str) -> str:
    RELEASE.setdefault(key, threading.Event()).wait(60)
    return key


def holding_grandchild_wf(ctx: wf.DaprWorkflowContext, key: str):
    result = yield ctx.call_activity(hold, input=key)
    return result


def fire_and_forget_child_wf(ctx: wf.DaprWorkflowContext, args: dict):
    ctx.call_child_workflow(holding_grandchild_wf, input=args["key"], instance_id=args["grandchild"])
    # The Python SDK drops actions not yet sent when a workflow completes: end one turn later.
    yield ctx.create_timer(timedelta(milliseconds=10))
    return "started"


def parent_of_fire_and_forget_wf(ctx: wf.DaprWorkflowContext, args: dict):
    result = yield ctx.call_child_workflow(fire_and_forget_child_wf, input=args, instance_id=args["child"])
    return result


WORKFLOWS += [holding_grandchild_wf, fire_and_forget_child_wf, parent_of_fire_and_forget_wf]
ACTIVITIES += [hold]


def test_finished_id_with_a_running_grandchild_is_not_reused(client: wf.DaprWorkflowClient) -> None:
    """Like daprd (reuseid/grandchild): an id is reusable only once its whole tree has finished."""
    iid = new_id("tree")
    args = {"key": iid, "child": f"{iid}-child", "grandchild": f"{iid}-grandchild"}
    client.schedule_new_workflow(parent_of_fire_and_forget_wf, input=args, instance_id=iid)
    assert assert_completed(complete(client, iid)) == "started"
    wait_for_status(client, args["grandchild"], wf.WorkflowStatus.RUNNING)
    with pytest.raises(Exception) as info:
        client.schedule_new_workflow(parent_of_fire_and_forget_wf, input=args, instance_id=iid)
    text = str(info.value)
    assert "cannot recreate workflow with ID" in text and args["child"] in text and args["grandchild"] in text
    RELEASE.setdefault(iid, threading.Event()).set()
    assert_completed(complete(client, args["grandchild"]))
    client.schedule_new_workflow(parent_of_fire_and_forget_wf, input=args, instance_id=iid)
    assert assert_completed(complete(client, iid)) == "started"
    assert_completed(complete(client, args["grandchild"]))


def wait_go_wf(ctx: wf.DaprWorkflowContext, _):
    value = yield ctx.wait_for_external_event("go")
    return value


def test_a_full_inbox_batch_of_dropped_events_does_not_strand_what_follows(server_factory) -> None:
    """One turn reads at most 1,000 inbox events; when all of them are dropped (resumes of a running instance),
    the events behind them still get their turn."""
    srv = server_factory()
    client = make_client(srv)
    with running_runtime(srv, workflows=[wait_go_wf]):
        iid = client.schedule_new_workflow(wait_go_wf, instance_id=new_id("batch"))
        wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    wait_until(lambda: srv.connected_workers() == 0)
    for _ in range(1000):  # queued while no worker is connected, so one turn meets them all
        client.resume_workflow(iid)
    client.raise_workflow_event(iid, "go", data="went")
    with running_runtime(srv, workflows=[wait_go_wf]):
        assert assert_completed(complete(client, iid)) == "went"
    client.close()
