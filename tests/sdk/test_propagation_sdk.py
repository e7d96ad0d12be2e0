"""History propagation (Dapr 1.18) through the official SDK: what an activity or child workflow called with
`propagation=` reads from `ctx.get_propagated_history()`, on every turn and across continue-as-new."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf
import httpx
import pytest

from testsupport.sdk import complete, describe, new_id
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("runtime")]

OWN_HISTORY, LINEAGE = wf.PropagationScope.OWN_HISTORY, wf.PropagationScope.LINEAGE


def summary(history: wf.PropagatedHistory | None) -> dict[str, Any] | None:
    """What a callee saw, as JSON: the chunks (oldest ancestor first) and the activities in each."""
    if history is None:
        return None
    names = sorted({e.taskScheduled.name for e in history.events if e.HasField("taskScheduled")})
    return {
        "scope": history.scope.name,
        "app_ids": history.get_app_ids(),
        "workflows": [
            {
                "app_id": w.app_id,
                "instance_id": w.instance_id,
                "name": w.name,
                "activities": [
                    [a.name, a.completed, a.output] for n in names for a in w.get_activities_by_name(n)
                ],
            }
            for w in history.get_workflows()
        ],
    }


def greet(ctx: wf.WorkflowActivityContext, name: str) -> str:
    return f"hello {name}"


def echo(ctx: wf.WorkflowActivityContext, value: Any) -> Any:
    return value


def report_history(ctx: wf.WorkflowActivityContext, _: Any) -> dict[str, Any] | None:
    return summary(ctx.get_propagated_history())


def activity_caller_wf(ctx: wf.DaprWorkflowContext, scope: str | None):
    yield ctx.call_activity(greet, input="a")
    propagation = wf.PropagationScope[scope] if scope else None
    return (yield ctx.call_activity(report_history, propagation=propagation))


def chain_root_wf(ctx: wf.DaprWorkflowContext, scope: str):
    yield ctx.call_activity(greet, input="root")
    return (yield ctx.call_child_workflow(chain_middle_wf, input=scope, instance_id=f"{ctx.instance_id}-middle",
                                          propagation=wf.PropagationScope[scope]))


def chain_middle_wf(ctx: wf.DaprWorkflowContext, scope: str):
    received = summary(ctx.get_propagated_history())
    yield ctx.call_activity(greet, input="middle")
    leaf = yield ctx.call_child_workflow(chain_leaf_wf, instance_id=f"{ctx.instance_id}-leaf",
                                         propagation=wf.PropagationScope[scope])
    return {"middle": received, "leaf": leaf}


def chain_leaf_wf(ctx: wf.DaprWorkflowContext, _: Any):
    return summary(ctx.get_propagated_history())


def every_turn_parent_wf(ctx: wf.DaprWorkflowContext, _: Any):
    yield ctx.call_activity(greet, input="parent")
    return (yield ctx.call_child_workflow(every_turn_child_wf, instance_id=f"{ctx.instance_id}-child",
                                          propagation=OWN_HISTORY))


def every_turn_child_wf(ctx: wf.DaprWorkflowContext, _: Any):
    # Each activity's input is what the turn that scheduled it saw: turns 1 and 2; the return value, turn 3.
    first = yield ctx.call_activity(echo, input=summary(ctx.get_propagated_history()))
    second = yield ctx.call_activity(echo, input=summary(ctx.get_propagated_history()))
    return [first, second, summary(ctx.get_propagated_history())]


def can_parent_wf(ctx: wf.DaprWorkflowContext, scope: str):
    yield ctx.call_activity(greet, input="parent")
    return (yield ctx.call_child_workflow(can_child_wf, input="gen1", instance_id=f"{ctx.instance_id}-child",
                                          propagation=wf.PropagationScope[scope]))


def can_child_wf(ctx: wf.DaprWorkflowContext, generation: str):
    if generation == "gen1":
        yield ctx.call_activity(greet, input="gen1")
        ctx.continue_as_new("gen2")
        return None
    return summary(ctx.get_propagated_history())


def can_root_wf(ctx: wf.DaprWorkflowContext, generation: str):
    if generation == "gen1":
        seen = yield ctx.call_activity(report_history, propagation=LINEAGE)
        ctx.continue_as_new({"gen1_activity_saw": seen})
        return None
    return {"gen1_activity_saw": generation["gen1_activity_saw"], "gen2": summary(ctx.get_propagated_history())}


def plain_parent_wf(ctx: wf.DaprWorkflowContext, _: Any):
    child = yield ctx.call_child_workflow(chain_leaf_wf, instance_id=f"{ctx.instance_id}-child")
    activity = yield ctx.call_activity(report_history)
    return {"child": child, "activity": activity}


WORKFLOWS = [
    activity_caller_wf, chain_root_wf, chain_middle_wf, chain_leaf_wf, every_turn_parent_wf,
    every_turn_child_wf, can_parent_wf, can_child_wf, can_root_wf, plain_parent_wf,
]
ACTIVITIES = [greet, echo, report_history]


@pytest.fixture(scope="module")
def app_id(server: DurahubServer) -> str:
    """The engine's app id, which names every chunk it produces."""
    return str(httpx.get(f"{server.http_url}/v1.0/metadata", timeout=10).json()["id"])


def run(client: wf.DaprWorkflowClient, workflow: Any, input: Any) -> tuple[str, Any]:
    iid = new_id("prop")
    client.schedule_new_workflow(workflow, input=input, instance_id=iid)
    st = complete(client, iid)
    assert st.runtime_status == wf.WorkflowStatus.COMPLETED, describe(st)
    # A workflow that returns None has no output.
    return iid, json.loads(st.serialized_output) if st.serialized_output else None


def chunk(app_id: str, instance_id: str, name: str, *activities: list[Any]) -> dict[str, Any]:
    return {"app_id": app_id, "instance_id": instance_id, "name": name, "activities": list(activities)}


@pytest.mark.parametrize("scope", ["OWN_HISTORY", "LINEAGE"])
def test_an_activity_sees_its_callers_history_up_to_its_own_call(
    client: wf.DaprWorkflowClient, app_id: str, scope: str
) -> None:
    iid, seen = run(client, activity_caller_wf, scope)
    assert seen == {
        "scope": scope,
        "app_ids": [app_id],
        "workflows": [
            chunk(app_id, iid, "activity_caller_wf",
                  ["greet", True, '"hello a"'], ["report_history", False, None])
        ],
    }


def test_lineage_gives_the_grandchild_the_root_chunk_then_the_childs(
    client: wf.DaprWorkflowClient, app_id: str
) -> None:
    iid, seen = run(client, chain_root_wf, "LINEAGE")
    root = chunk(app_id, iid, "chain_root_wf", ["greet", True, '"hello root"'])
    assert seen["middle"] == {"scope": "LINEAGE", "app_ids": [app_id], "workflows": [root]}
    middle = chunk(app_id, f"{iid}-middle", "chain_middle_wf", ["greet", True, '"hello middle"'])
    assert seen["leaf"] == {"scope": "LINEAGE", "app_ids": [app_id], "workflows": [root, middle]}


def test_own_history_gives_the_grandchild_the_childs_chunk_only(
    client: wf.DaprWorkflowClient, app_id: str
) -> None:
    iid, seen = run(client, chain_root_wf, "OWN_HISTORY")
    root = chunk(app_id, iid, "chain_root_wf", ["greet", True, '"hello root"'])
    assert seen["middle"] == {"scope": "OWN_HISTORY", "app_ids": [app_id], "workflows": [root]}
    middle = chunk(app_id, f"{iid}-middle", "chain_middle_wf", ["greet", True, '"hello middle"'])
    assert seen["leaf"] == {"scope": "OWN_HISTORY", "app_ids": [app_id], "workflows": [middle]}


def test_a_child_sees_its_incoming_history_on_every_turn(client: wf.DaprWorkflowClient, app_id: str) -> None:
    iid, seen = run(client, every_turn_parent_wf, None)
    parent = chunk(app_id, iid, "every_turn_parent_wf", ["greet", True, '"hello parent"'])
    expected = {"scope": "OWN_HISTORY", "app_ids": [app_id], "workflows": [parent]}
    assert seen == [expected, expected, expected]


def test_continue_as_new_with_lineage_adds_the_prior_generation(
    client: wf.DaprWorkflowClient, app_id: str
) -> None:
    iid, seen = run(client, can_parent_wf, "LINEAGE")
    parent = chunk(app_id, iid, "can_parent_wf", ["greet", True, '"hello parent"'])
    gen1 = chunk(app_id, f"{iid}-child", "can_child_wf", ["greet", True, '"hello gen1"'])
    assert seen == {"scope": "LINEAGE", "app_ids": [app_id], "workflows": [parent, gen1]}


def test_continue_as_new_with_own_history_keeps_only_the_prior_generation(
    client: wf.DaprWorkflowClient, app_id: str
) -> None:
    iid, seen = run(client, can_parent_wf, "OWN_HISTORY")
    gen1 = chunk(app_id, f"{iid}-child", "can_child_wf", ["greet", True, '"hello gen1"'])
    assert seen == {"scope": "OWN_HISTORY", "app_ids": [app_id], "workflows": [gen1]}


def test_continue_as_new_of_a_root_passes_nothing_on(client: wf.DaprWorkflowClient, app_id: str) -> None:
    iid, seen = run(client, can_root_wf, "gen1")
    assert seen["gen1_activity_saw"] == {
        "scope": "LINEAGE",
        "app_ids": [app_id],
        "workflows": [chunk(app_id, iid, "can_root_wf", ["report_history", False, None])],
    }
    assert seen["gen2"] is None


def test_without_propagation_callees_see_none(client: wf.DaprWorkflowClient) -> None:
    _, seen = run(client, plain_parent_wf, None)
    assert seen == {"child": None, "activity": None}
    _, seen = run(client, activity_caller_wf, None)
    assert seen is None


def test_a_rerun_dispatches_the_call_again_with_history_of_the_new_instance(server: DurahubServer, client,
                                                                             app_id: str) -> None:
    """daprd's rerun: the re-driven activity gets its history rebuilt from the rerun instance."""
    source, first = run(client, activity_caller_wf, "OWN_HISTORY")
    assert first["workflows"][0]["instance_id"] == source
    history = server.http_get(f"/durahub/v1/instances/{source}").json()["history"]
    call = next(e for e in history if e["kind"] == "taskScheduled" and e["details"]["name"] == "report_history")
    rerun_id = new_id("rerun")
    r = server.http_post(f"/durahub/v1/instances/{source}/rerun",
                         json={"event_id": call["event_id"], "new_instance_id": rerun_id})
    assert r.status_code == 202, r.text
    st = complete(client, rerun_id)
    again = json.loads(st.serialized_output)
    assert again["scope"] == "OWN_HISTORY" and again["app_ids"] == [app_id]
    assert [w["instance_id"] for w in again["workflows"]] == [rerun_id]
    assert again["workflows"][0]["activities"] == first["workflows"][0]["activities"]


def unregistered_child_parent_wf(ctx: wf.DaprWorkflowContext, _: Any):
    try:
        yield ctx.call_child_workflow("no_such_workflow", instance_id=f"{ctx.instance_id}-child",
                                      retry_policy=wf.RetryPolicy(max_number_of_attempts=2,
                                                                  first_retry_interval=timedelta(milliseconds=50)))
    except wf.TaskFailedError as e:
        return {"failed": e.details.error_type}
    return "no error"


WORKFLOWS.append(unregistered_child_parent_wf)


def test_a_child_workflow_nobody_registered_fails_the_parents_task(client) -> None:
    """The worker fails it (OrchestratorNotRegisteredError): the child ends FAILED, the parent's task fails, its
    retry policy applies (the same child id is re-created), then the error surfaces."""
    _, out = run(client, unregistered_child_parent_wf, None)
    assert out == {"failed": "OrchestratorNotRegisteredError"}, out
