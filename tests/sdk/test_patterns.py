"""The workflow patterns users try first (seed 003): chaining with compensation, fan-out/fan-in,
async request-reply, monitor (timer + continue-as-new), human approval (event vs timer), and
external-event delivery rules."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from datetime import timedelta

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import (
    assert_completed,
    complete,
    describe,
    new_id,
    output_of,
    state_of,
    wait_for_custom_status,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]

# Per-instance record of activity invocations (the worker runs in this process).
_calls: dict[str, list[str]] = {}
_calls_lock = threading.Lock()


def _record(ctx: wf.WorkflowActivityContext, what: str) -> None:
    with _calls_lock:
        _calls.setdefault(ctx.workflow_id, []).append(what)


def calls_for(instance_id: str) -> list[str]:
    with _calls_lock:
        return list(_calls.get(instance_id, []))


# ---------------------------------------------------------------------------- activities


def inc(ctx: wf.WorkflowActivityContext, x: int) -> int:
    _record(ctx, f"inc:{x}")
    return x + 1


def double(ctx: wf.WorkflowActivityContext, x: int) -> int:
    _record(ctx, f"double:{x}")
    return x * 2


def explode(ctx: wf.WorkflowActivityContext, x: int) -> int:
    _record(ctx, f"explode:{x}")
    raise ValueError(f"cannot process {x}")


def compensate(ctx: wf.WorkflowActivityContext, x: int) -> str:
    _record(ctx, f"compensate:{x}")
    return f"undone {x}"


def square(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x * x


def slow_echo(ctx: wf.WorkflowActivityContext, x: object) -> object:
    time.sleep(0.3)
    return {"echo": x}


def check_status(ctx: wf.WorkflowActivityContext, i: int) -> str:
    _record(ctx, f"check:{i}")
    return "healthy" if i < 2 else "degraded"


def place_order(ctx: wf.WorkflowActivityContext, order: dict) -> str:
    _record(ctx, f"order:{order['item']}")
    return f"ordered {order['item']}"


# ----------------------------------------------------------------------------- workflows


def chain_wf(ctx: wf.DaprWorkflowContext, x: int):
    a = yield ctx.call_activity(inc, input=x)
    b = yield ctx.call_activity(double, input=a)
    c = yield ctx.call_activity(inc, input=b)
    return [a, b, c]


def compensating_wf(ctx: wf.DaprWorkflowContext, x: int):
    a = yield ctx.call_activity(inc, input=x)
    try:
        yield ctx.call_activity(explode, input=a)
    except wf.TaskFailedError as e:
        undone = yield ctx.call_activity(compensate, input=a)
        return {"a": a, "compensation": undone, "error": str(e), "error_type": e.details.error_type}
    return {"a": a, "compensation": None}


def compensate_then_fail_wf(ctx: wf.DaprWorkflowContext, x: int):
    try:
        yield ctx.call_activity(explode, input=x)
    except Exception:
        yield ctx.call_activity(compensate, input=x)
        raise
    return "unreachable"


def fan_out_wf(ctx: wf.DaprWorkflowContext, n: int):
    tasks = [ctx.call_activity(square, input=i) for i in range(n)]
    results = yield wf.when_all(tasks)
    return {"count": len(results), "sum": sum(results), "first": results[:3], "last": results[-1]}


def request_reply_wf(ctx: wf.DaprWorkflowContext, payload: dict):
    ctx.set_custom_status("working")
    res = yield ctx.call_activity(slow_echo, input=payload)
    ctx.set_custom_status("done")
    return res


def monitor_wf(ctx: wf.DaprWorkflowContext, job: dict):
    status = yield ctx.call_activity(check_status, input=job["iteration"])
    history = job["history"] + [status]
    if job["iteration"] + 1 >= job["max"]:
        return {"iterations": job["iteration"] + 1, "history": history}
    yield ctx.create_timer(timedelta(seconds=0.2))
    ctx.continue_as_new({"iteration": job["iteration"] + 1, "max": job["max"], "history": history})


def counter_wf(ctx: wf.DaprWorkflowContext, total: int):
    """Eternal-ish counter: one event per generation, unconsumed events carried over."""
    value = yield ctx.wait_for_external_event("add")
    total += value
    if total >= 10:
        return total
    ctx.continue_as_new(total, save_events=True)


def approval_wf(ctx: wf.DaprWorkflowContext, order: dict):
    approval = ctx.wait_for_external_event("approval")
    timeout = ctx.create_timer(timedelta(seconds=order["timeout"]))
    winner = yield wf.when_any([approval, timeout])
    if winner == timeout:
        return "timed-out"
    decision = approval.get_result()
    if not decision.get("approved"):
        return f"rejected by {decision['by']}"
    placed = yield ctx.call_activity(place_order, input=order)
    return f"{placed} (approved by {decision['by']})"


def early_event_after_timer_wf(ctx: wf.DaprWorkflowContext, _):
    yield ctx.create_timer(timedelta(seconds=1))
    ev = yield ctx.wait_for_external_event("go")
    return {"got": ev}


def early_event_after_activity_wf(ctx: wf.DaprWorkflowContext, _):
    echoed = yield ctx.call_activity(slow_echo, input="warmup")
    ev = yield ctx.wait_for_external_event("go")
    return {"echoed": echoed, "got": ev}


def same_name_events_wf(ctx: wf.DaprWorkflowContext, sleep_first: bool):
    if sleep_first:
        yield ctx.create_timer(timedelta(seconds=1))
    ctx.set_custom_status("waiting")
    first = yield ctx.wait_for_external_event("item")
    second = yield ctx.wait_for_external_event("item")
    third = yield ctx.wait_for_external_event("item")
    return [first, second, third]


WORKFLOWS = [
    chain_wf,
    compensating_wf,
    compensate_then_fail_wf,
    fan_out_wf,
    request_reply_wf,
    monitor_wf,
    counter_wf,
    approval_wf,
    early_event_after_timer_wf,
    early_event_after_activity_wf,
    same_name_events_wf,
]
ACTIVITIES = [inc, double, explode, compensate, square, slow_echo, check_status, place_order]
RUNTIME_KWARGS = {"maximum_thread_pool_workers": 16}


# --------------------------------------------------------------------------------- tests


def test_task_chaining(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(chain_wf, input=3, instance_id=new_id("chain"))
    st = complete(client, iid)
    assert assert_completed(st) == [4, 8, 9]
    assert st.name == "chain_wf"
    assert st.serialized_input == "3"
    assert calls_for(iid) == ["inc:3", "double:4", "inc:8"]


def test_chaining_with_compensation(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(compensating_wf, input=10, instance_id=new_id("comp"))
    out = assert_completed(complete(client, iid))
    assert out["a"] == 11
    assert out["compensation"] == "undone 11"
    assert "cannot process 11" in out["error"]
    assert out["error_type"] == "ValueError"
    assert calls_for(iid) == ["inc:10", "explode:11", "compensate:11"]


def test_compensation_then_reraise_fails_workflow(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(compensate_then_fail_wf, input=5, instance_id=new_id("comp-fail"))
    st = complete(client, iid)
    assert st.runtime_status == wf.WorkflowStatus.FAILED, describe(st)
    assert st.failure_details is not None
    assert "cannot process 5" in st.failure_details.message
    assert calls_for(iid) == ["explode:5", "compensate:5"]


@pytest.mark.timeout(240)
def test_fan_out_fan_in_1000(client: wf.DaprWorkflowClient) -> None:
    n = 1000
    iid = client.schedule_new_workflow(fan_out_wf, input=n, instance_id=new_id("fan"))
    st = complete(client, iid, timeout=180)
    out = assert_completed(st)
    assert out == {
        "count": n,
        "sum": sum(i * i for i in range(n)),
        "first": [0, 1, 4],
        "last": (n - 1) ** 2,
    }


def test_async_request_reply_polling(client: wf.DaprWorkflowClient) -> None:
    payload = {"order": 42, "items": ["a", "b"]}
    iid = client.schedule_new_workflow(request_reply_wf, input=payload, instance_id=new_id("rr"))
    # schedule_new_workflow returns once the instance has started: it is never PENDING here.
    first = state_of(client, iid)
    assert first is not None
    assert first.runtime_status in (wf.WorkflowStatus.RUNNING, wf.WorkflowStatus.COMPLETED), describe(first)
    assert first.instance_id == iid
    assert first.name == "request_reply_wf"

    def done():
        s = state_of(client, iid)
        assert s is not None
        return s if s.runtime_status == wf.WorkflowStatus.COMPLETED else None

    st = wait_until(done, timeout=30, interval=0.1, message="request-reply workflow never completed")
    assert output_of(st) == {"echo": payload}
    assert st.serialized_custom_status == "done"
    assert st.created_at <= st.last_updated_at


def test_monitor_timer_and_continue_as_new(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(
        monitor_wf, input={"iteration": 0, "max": 4, "history": []}, instance_id=new_id("monitor")
    )
    st = complete(client, iid)
    out = assert_completed(st)
    assert out == {"iterations": 4, "history": ["healthy", "healthy", "degraded", "degraded"]}
    assert calls_for(iid) == ["check:0", "check:1", "check:2", "check:3"]
    # The input of the state is the input of the last generation.
    assert json.loads(st.serialized_input) == {
        "iteration": 3,
        "max": 4,
        "history": ["healthy", "healthy", "degraded"],
    }


def test_continue_as_new_keeps_unconsumed_events(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(counter_wf, input=0, instance_id=new_id("counter"))
    for v in (1, 2, 3, 4):
        client.raise_workflow_event(iid, "add", data=v)
    st = complete(client, iid)
    assert assert_completed(st) == 10


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ({"approved": True, "by": "alice"}, "ordered laptop (approved by alice)"),
        ({"approved": False, "by": "bob"}, "rejected by bob"),
    ],
    ids=["approved", "rejected"],
)
def test_purchase_approval_decided(client: wf.DaprWorkflowClient, decision: dict, expected: str) -> None:
    iid = client.schedule_new_workflow(
        approval_wf, input={"item": "laptop", "timeout": 30}, instance_id=new_id("approve")
    )
    client.raise_workflow_event(iid, "approval", data=decision)
    st = complete(client, iid)
    assert assert_completed(st) == expected
    assert calls_for(iid) == (["order:laptop"] if decision["approved"] else [])


def test_purchase_approval_times_out(client: wf.DaprWorkflowClient) -> None:
    t0 = time.monotonic()
    iid = client.schedule_new_workflow(
        approval_wf, input={"item": "phone", "timeout": 1.5}, instance_id=new_id("approve-timeout")
    )
    st = complete(client, iid)
    elapsed = time.monotonic() - t0
    assert assert_completed(st) == "timed-out"
    # A durable timer must not fire early (e.g. a turn without a workflowStarted "now").
    assert elapsed >= 1.3, f"timer fired after {elapsed:.2f}s, expected ~1.5s"
    assert calls_for(iid) == []
    # A late approval for a finished instance is accepted or refused, but changes nothing.
    with contextlib.suppress(Exception):
        client.raise_workflow_event(iid, "approval", data={"approved": True, "by": "late"})
    time.sleep(0.3)
    assert assert_completed(state_of(client, iid)) == "timed-out"


def test_event_raised_before_wait_while_on_timer(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(early_event_after_timer_wf, input=None, instance_id=new_id("early-t"))
    client.raise_workflow_event(iid, "go", data={"n": 1})
    st = complete(client, iid)
    assert assert_completed(st) == {"got": {"n": 1}}


def test_event_raised_before_wait_while_in_activity(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(
        early_event_after_activity_wf, input=None, instance_id=new_id("early-a")
    )
    client.raise_workflow_event(iid, "go", data="now")
    st = complete(client, iid)
    assert assert_completed(st) == {"echoed": {"echo": "warmup"}, "got": "now"}


@pytest.mark.parametrize("sleep_first", [False, True], ids=["while-waiting", "before-waiting"])
def test_same_name_events_consumed_in_order(client: wf.DaprWorkflowClient, sleep_first: bool) -> None:
    iid = client.schedule_new_workflow(same_name_events_wf, input=sleep_first, instance_id=new_id("same"))
    if not sleep_first:
        wait_for_custom_status(client, iid, "waiting")
    for item in ("first", "second", "third"):
        client.raise_workflow_event(iid, "item", data=item)
    st = complete(client, iid)
    assert assert_completed(st) == ["first", "second", "third"]
