"""`durahub.testing.WorkflowEnvironment`: the example apps' workflows and the pattern scripts, run in process
through their own module-level `WorkflowRuntime`s (built at import with the default address), under time
skipping. Wall times are printed for the report (run with -s), never asserted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import dapr.ext.workflow as wf
import grpc
import pytest

from durahub.testing import WorkflowEnvironment
from examples.order_service import app as order_service
from examples.patterns import external_interaction, fan_out_fan_in, monitor, task_chaining
from examples.purchase_approval import app as purchase_approval

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def instant_example_activities(monkeypatch: pytest.MonkeyPatch) -> None:
    # The example apps' activities sleep to look busy (real time, never skipped): not in these tests.
    monkeypatch.setenv("PURCHASE_ACTIVITY_SECONDS", "0")
    monkeypatch.setenv("ORDER_ACTIVITY_SECONDS_SCALE", "0")


@pytest.fixture
def timed() -> Iterator[list[float]]:
    started = time.monotonic()
    marks: list[float] = []
    yield marks
    print(f" [{time.monotonic() - started:.3f}s wall]", end="")


def completed(env: WorkflowEnvironment, workflow: object, payload: object, instance_id: str) -> object:
    env.client.schedule_new_workflow(workflow, input=payload, instance_id=instance_id)
    state = env.client.wait_for_workflow_completion(instance_id, timeout_in_seconds=60)
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED, state
    return json.loads(state.serialized_output)


def order(order_id: str, cost: float = 600.0, quantity: int = 2, timeout_seconds: float = 30.0) -> dict[str, object]:
    return {"order_id": order_id, "cost": cost, "product": "Widget", "quantity": quantity,
            "approval_timeout_seconds": timeout_seconds}


# -- the example apps -----------------------------------------------------------------------------------------


def test_purchase_approval_times_out_after_30_seconds(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(purchase_approval.runtime)
    before = durahub_env.now()
    result = completed(durahub_env, purchase_approval.purchase_order_workflow, order("late"), "po_late")
    assert result == {"status": "Cancelled due to timeout", "order_id": "late", "total": 1200.0}
    assert durahub_env.now() - before >= timedelta(seconds=30)


def test_purchase_approval_approved_by_an_event(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(purchase_approval.runtime)
    iid = "po_fast"
    durahub_env.client.schedule_new_workflow(purchase_approval.purchase_order_workflow, input=order("fast"),
                                             instance_id=iid)
    durahub_env.raise_event(iid, purchase_approval.APPROVAL_EVENT, {"approver_name": "Ann", "approved": True})
    state = durahub_env.client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
    assert state is not None
    assert json.loads(state.serialized_output)["status"] == "Approved by Ann"


def test_order_service_workflow(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(order_service.runtime)
    result = completed(durahub_env, order_service.order_processing_workflow,
                       {"order_id": "A1", "amount": 10.0, "items": ["pen"]}, "order_A1")
    assert isinstance(result, dict) and result["order_id"] == "A1"


# -- the pattern scripts ----------------------------------------------------------------------------------------


def test_monitor_checks_hourly_without_waiting(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(monitor.runtime)
    pattern = ["healthy", "unhealthy", "unhealthy", "healthy", "healthy"]
    job = {"job_id": "j", "pattern": pattern, "max_checks": 5, "healthy_interval": 3600, "unhealthy_interval": 600,
           "checks": 0, "alerts": 0, "history": [], "is_healthy": True}
    before = durahub_env.now()
    result = completed(durahub_env, monitor.status_monitor_workflow, job, "monitor-j")
    assert result == {"job_id": "j", "checks": 5, "alerts": 1, "history": pattern, "is_healthy": True}
    assert durahub_env.now() - before >= timedelta(hours=1, minutes=20)  # 3600 + 600 + 600 + 3600 s of checks


def test_external_interaction_times_out_after_a_day(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(external_interaction.runtime)
    result = completed(durahub_env, external_interaction.purchase_order_workflow,
                       {"cost": 2500, "product": "P", "quantity": 1, "timeout_seconds": 86400}, "po-day")
    assert result == "Cancelled: no approval in time"


def test_task_chaining(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(task_chaining.runtime)
    assert completed(durahub_env, task_chaining.task_chain_workflow, {"value": 3}, "chain") == [4, 8, 64]


def test_fan_out_fan_in(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(fan_out_fan_in.runtime)
    fan = completed(durahub_env, fan_out_fan_in.batch_processing_workflow, {"items": 4, "item_seconds": 0}, "fan")
    assert fan == {"items": 4, "outputs": [2, 4, 6, 8], "total": 20}


# -- the clock, waits that cannot end, and the environment's helpers -----------------------------------------

rt = wf.WorkflowRuntime()  # the default address, like an app's module-level runtime


@rt.workflow(name="month_wf")
def month_wf(ctx: wf.DaprWorkflowContext, days: int):
    yield ctx.create_timer(timedelta(days=days))
    return ctx.current_utc_datetime.isoformat()


@rt.workflow(name="approval_wf")
def approval_wf(ctx: wf.DaprWorkflowContext, _: None):
    decision = yield ctx.wait_for_external_event("manager_approval")
    return decision


@rt.activity(name="nap")
def nap(ctx: wf.WorkflowActivityContext, seconds: float) -> str:
    time.sleep(seconds)
    return "nap"


@rt.workflow(name="nap_or_timer_wf")
def nap_or_timer_wf(ctx: wf.DaprWorkflowContext, seconds: float):
    work = ctx.call_activity(nap, input=seconds)
    winner = yield wf.when_any([work, ctx.create_timer(timedelta(minutes=10))])
    return "activity" if winner is work else "timer"


def test_a_30_day_timer(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(rt)
    start = durahub_env.now()
    fired_at = datetime.fromisoformat(str(completed(durahub_env, month_wf, 30, "month"))).replace(tzinfo=UTC)
    assert fired_at - start >= timedelta(days=30)


def test_a_blocked_wait_names_the_awaited_event(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(rt)
    durahub_env.client.schedule_new_workflow(approval_wf, instance_id="stuck")
    with pytest.raises(grpc.RpcError) as raised:
        durahub_env.client.wait_for_workflow_completion("stuck", timeout_in_seconds=30)
    assert "external event 'manager_approval'" in raised.value.details()
    assert [e.name for e in durahub_env.summary("stuck").events] == ["manager_approval"]
    assert "manager_approval" in durahub_env.waiting_on("stuck")
    durahub_env.raise_event("stuck", "manager_approval", {"ok": True})
    state = durahub_env.client.wait_for_workflow_completion("stuck", timeout_in_seconds=30)
    assert state is not None and json.loads(state.serialized_output) == {"ok": True}
    kinds = [e["kind"] for e in durahub_env.history("stuck")]
    assert kinds[0] == "workflowStarted" and "eventRaised" in kinds and kinds[-1] == "executionCompleted"


def test_a_real_activity_is_not_skipped(durahub_env: WorkflowEnvironment, timed: list[float]) -> None:
    durahub_env.start(rt)
    started = time.monotonic()
    assert completed(durahub_env, nap_or_timer_wf, 0.3, "nap") == "activity"
    assert time.monotonic() - started >= 0.3


def test_sleep_moves_the_clock_and_fires_timers(durahub_env: WorkflowEnvironment) -> None:
    durahub_env.start(rt)
    durahub_env.client.schedule_new_workflow(month_wf, input=2, instance_id="slept")
    before = durahub_env.now()
    durahub_env.sleep(timedelta(days=1))
    state = durahub_env.client.get_workflow_state("slept")
    assert state is not None and state.runtime_status == wf.WorkflowStatus.RUNNING
    durahub_env.sleep(timedelta(days=1))
    state = durahub_env.client.get_workflow_state("slept")
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED
    assert durahub_env.now() - before >= timedelta(days=2)


def test_start_local_runs_on_the_wall_clock(durahub_local_env: WorkflowEnvironment) -> None:
    assert abs(durahub_local_env.now() - datetime.now(UTC)) < timedelta(minutes=1)
    durahub_local_env.start(rt)
    assert completed(durahub_local_env, nap_or_timer_wf, 0.0, "local") == "activity"


def test_async_context_manager_and_a_start_time() -> None:
    async def main() -> object:
        start = datetime(2030, 1, 1, tzinfo=UTC)
        async with WorkflowEnvironment.start_time_skipping(start_time=start) as env:
            assert env.now() >= start
            env.start(rt)
            return await asyncio.to_thread(completed, env, month_wf, 1, "async")

    fired_at = datetime.fromisoformat(str(asyncio.run(main())))
    assert fired_at >= datetime(2030, 1, 2)


@rt.workflow(name="eternal_wf")
def eternal_wf(ctx: wf.DaprWorkflowContext, rounds: int):
    yield ctx.create_timer(timedelta(hours=6))
    ctx.continue_as_new(rounds + 1)


def test_an_eternal_monitor_hits_the_skipping_limit() -> None:
    with WorkflowEnvironment.start_time_skipping(max_skip=timedelta(days=2)) as env:
        env.start(rt)
        env.client.schedule_new_workflow(eternal_wf, input=0, instance_id="eternal")
        with pytest.raises(grpc.RpcError, match="time skipping stopped after") as raised:
            env.client.wait_for_workflow_completion("eternal", timeout_in_seconds=60)
        assert raised.value.code() == grpc.StatusCode.ABORTED
        assert "eternal" in raised.value.details()
        assert env.summary("eternal").status == "RUNNING"  # untouched: the test decides what to do with it
