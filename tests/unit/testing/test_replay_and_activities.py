"""`durahub.testing.replay` (a recorded history against current code, over the wire) and `run_activity` (an
activity with a real `WorkflowActivityContext`)."""

from __future__ import annotations

import json

import dapr.ext.workflow as wf
import httpx
import pytest

from durahub.testing import WorkflowEnvironment
from durahub.testing.activity import run_activity
from durahub.testing.replay import ReplayMismatch, assert_replays, replay

pytestmark = pytest.mark.timeout(120)

shipping = wf.WorkflowRuntime()


@shipping.activity(name="reserve")
def reserve(ctx: wf.WorkflowActivityContext, item: str) -> str:
    return f"reserved {item} for {ctx.workflow_id} (task {ctx.task_id})"


@shipping.activity(name="charge")
def charge(ctx: wf.WorkflowActivityContext, amount: float) -> float:
    return round(amount * 1.2, 2)


@shipping.activity(name="notify")
def notify(ctx: wf.WorkflowActivityContext) -> str:
    return "sent"


@shipping.workflow(name="ship_wf")
def ship_wf(ctx: wf.DaprWorkflowContext, order: dict):
    reserved = yield ctx.call_activity(reserve, input=order["item"])
    charged = yield ctx.call_activity(charge, input=order["amount"])
    yield ctx.call_activity(notify)
    return {"reserved": reserved, "charged": charged}


# The same workflow name, with two of its steps swapped: what a careless deploy does to running instances.
reordered = wf.WorkflowRuntime()


@reordered.workflow(name="ship_wf")
def ship_wf_reordered(ctx: wf.DaprWorkflowContext, order: dict):
    reserved = yield ctx.call_activity(reserve, input=order["item"])
    yield ctx.call_activity(notify)
    charged = yield ctx.call_activity(charge, input=order["amount"])
    return {"reserved": reserved, "charged": charged}


@pytest.fixture(scope="module")
def recorded() -> dict:
    """A finished run of ship_wf as `GET /durahub/v1/instances/{id}` (and `durahub workflow export`) give it."""
    with WorkflowEnvironment.start_time_skipping() as env:
        env.start(shipping)
        env.client.schedule_new_workflow(ship_wf, input={"item": "book", "amount": 10.0}, instance_id="ship-1")
        state = env.client.wait_for_workflow_completion("ship-1", timeout_in_seconds=60)
        assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED
        exported = httpx.get(f"{env.http_url}/durahub/v1/instances/ship-1", timeout=10).json()
        assert exported["history"] == env.history("ship-1")
        return exported


def test_replay_passes_against_unchanged_code(recorded: dict) -> None:
    result = replay(recorded, shipping)
    assert result.ok and result.turns == 4
    assert_replays(json.dumps(recorded), shipping)  # the export's text works as well


def test_replay_names_the_turn_a_reordered_workflow_breaks(recorded: dict) -> None:
    result = replay(recorded["history"], reordered)
    assert result.mismatch is not None
    # Turn 1 scheduled `reserve` in both; turn 2 (reserve's result in) is where the code now goes elsewhere.
    assert result.mismatch.turn == 2
    [expected], [actual] = result.mismatch.expected, result.mismatch.actual
    assert expected.startswith("taskScheduled#") and expected.endswith("(charge)")
    assert actual.startswith("taskScheduled#") and actual.endswith("(notify)")
    with pytest.raises(ReplayMismatch, match="turn 2 differs"):
        assert_replays(recorded, reordered)


def test_run_activity_gives_a_real_context() -> None:
    assert run_activity(reserve, "pen", instance_id="wf-7", task_id=3) == "reserved pen for wf-7 (task 3)"
    assert run_activity(charge, 5.0) == 6.0
    assert run_activity(notify) == "sent"  # declared without an input


def test_run_activity_runs_async_activities() -> None:
    async def lookup(ctx: wf.WorkflowActivityContext, key: str) -> str:
        return f"{ctx.workflow_id}:{key}"

    assert run_activity(lookup, "k", instance_id="i") == "i:k"
