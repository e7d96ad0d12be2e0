"""Edge cases of the orchestration protocol seen through the SDK (spec §3, §9): the workflow
clock, timers (sub-second, absolute, while suspended, external-event timeouts), when_any
losers, fire-and-forget activities, continue-as-new loops, payload sizes, None payloads, and
many concurrent blocking calls (starts and long-poll waits)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import (
    HAS_MANAGEMENT_API,
    assert_completed,
    complete,
    describe,
    new_id,
    output_of,
    state_of,
    status_of,
    wait_for_custom_status,
)

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]

_ran: dict[str, list[str]] = {}
_lock = threading.Lock()


def _record(ctx: wf.WorkflowActivityContext, what: str) -> None:
    with _lock:
        _ran.setdefault(ctx.workflow_id, []).append(what)


def ran(iid: str) -> list[str]:
    with _lock:
        return list(_ran.get(iid, []))


# ---------------------------------------------------------------------------- activities


def note(ctx: wf.WorkflowActivityContext, what: str) -> str:
    _record(ctx, what)
    return what


def sleep_then(ctx: wf.WorkflowActivityContext, spec: dict) -> str:
    time.sleep(spec["sleep"])
    _record(ctx, spec["name"])
    return spec["name"]


def returns_none(ctx: wf.WorkflowActivityContext, _) -> None:
    _record(ctx, "none")
    return None


def echo(ctx: wf.WorkflowActivityContext, x):
    return x


# ----------------------------------------------------------------------------- workflows


def clock_wf(ctx: wf.DaprWorkflowContext, _):
    t1 = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=0.3))
    t2 = ctx.current_utc_datetime
    yield ctx.create_timer(t2 + timedelta(seconds=0.3))  # absolute fire time
    t3 = ctx.current_utc_datetime
    return [t1.isoformat(), t2.isoformat(), t3.isoformat()]


def sleep_wf(ctx: wf.DaprWorkflowContext, seconds: float):
    ctx.set_custom_status("sleeping")
    yield ctx.create_timer(timedelta(seconds=seconds))
    return "woke"


def many_timers_wf(ctx: wf.DaprWorkflowContext, n: int):
    timers = [ctx.create_timer(timedelta(milliseconds=100 + 20 * i)) for i in range(n)]
    yield wf.when_all(timers)
    return n


def event_timeout_wf(ctx: wf.DaprWorkflowContext, seconds: float):
    try:
        v = yield ctx.wait_for_external_event("never", timeout=timedelta(seconds=seconds))
    except Exception as e:  # the SDK raises TimeoutError
        return {"timeout": type(e).__name__}
    return {"event": v}


def race_wf(ctx: wf.DaprWorkflowContext, _):
    fast = ctx.call_activity(sleep_then, input={"sleep": 0.05, "name": "fast"})
    slow = ctx.call_activity(sleep_then, input={"sleep": 1.0, "name": "slow"})
    winner = yield wf.when_any([fast, slow])
    return winner.get_result()


def fire_and_forget_wf(ctx: wf.DaprWorkflowContext, _):
    ctx.call_activity(note, input="alert")  # never awaited, still dispatched
    yield ctx.create_timer(timedelta(seconds=0.5))
    return "done"


def can_loop_wf(ctx: wf.DaprWorkflowContext, n: int):
    """Continue-as-new several times in a row without waiting on anything."""
    if n >= 5:
        return n
    ctx.continue_as_new(n + 1)


def big_payload_wf(ctx: wf.DaprWorkflowContext, data: str):
    back = yield ctx.call_activity(echo, input=data)
    return {"len": len(back), "same": back == data, "tail": back[-10:]}


def none_wf(ctx: wf.DaprWorkflowContext, inp):
    r = yield ctx.call_activity(returns_none, input=inp)
    return None if r is None and inp is None else "unexpected"


def unicode_wf(ctx: wf.DaprWorkflowContext, s: str):
    r = yield ctx.call_activity(echo, input=s)
    ev = yield ctx.wait_for_external_event("ünïcødé")
    return {"r": r, "ev": ev}


def gate_wf(ctx: wf.DaprWorkflowContext, tag: str):
    ctx.set_custom_status("waiting")
    v = yield ctx.wait_for_external_event("go")
    return f"{tag}:{v}"


def quick_wf(ctx: wf.DaprWorkflowContext, x: int):
    r = yield ctx.call_activity(echo, input=x)
    return r * 2


WORKFLOWS = [
    clock_wf,
    sleep_wf,
    many_timers_wf,
    event_timeout_wf,
    race_wf,
    fire_and_forget_wf,
    can_loop_wf,
    big_payload_wf,
    none_wf,
    unicode_wf,
    gate_wf,
    quick_wf,
]
ACTIVITIES = [note, sleep_then, returns_none, echo]
RUNTIME_KWARGS = {"maximum_thread_pool_workers": 16}


# --------------------------------------------------------------------------------- tests


def test_workflow_clock_is_real_time_and_timers_wait(client: wf.DaprWorkflowClient) -> None:
    before = datetime.now(UTC)
    iid = client.schedule_new_workflow(clock_wf, input=None, instance_id=new_id("clock"))
    out = assert_completed(complete(client, iid))
    t1, t2, t3 = (datetime.fromisoformat(s) for s in out)
    t1, t2, t3 = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (t1, t2, t3))
    # current_utc_datetime comes from each turn's workflowStarted event (spec §9.2).
    assert abs((t1 - before).total_seconds()) < 30, f"workflow clock {t1} vs real {before}"
    assert (t2 - t1).total_seconds() >= 0.29, out
    assert (t3 - t2).total_seconds() >= 0.29, out
    assert (t3 - t1).total_seconds() < 10, out


def test_timer_does_not_advance_while_suspended(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(sleep_wf, input=0.3, instance_id=new_id("susp-timer"))
    wait_for_custom_status(client, iid, "sleeping")
    client.pause_workflow(iid)
    time.sleep(1.0)  # the timer fires meanwhile; its event is buffered, not acted upon
    st = state_of(client, iid)
    assert st is not None and st.runtime_status == wf.WorkflowStatus.SUSPENDED, describe(st)
    client.resume_workflow(iid)
    assert assert_completed(complete(client, iid)) == "woke"


def test_many_parallel_timers(client: wf.DaprWorkflowClient) -> None:
    t0 = time.monotonic()
    iid = client.schedule_new_workflow(many_timers_wf, input=50, instance_id=new_id("timers"))
    assert assert_completed(complete(client, iid)) == 50
    assert time.monotonic() - t0 >= 0.9  # the longest timer is 1.08 s


def test_external_event_timeout(client: wf.DaprWorkflowClient) -> None:
    t0 = time.monotonic()
    iid = client.schedule_new_workflow(event_timeout_wf, input=0.5, instance_id=new_id("evt-timeout"))
    out = assert_completed(complete(client, iid))
    assert "Timeout" in out["timeout"], out
    assert time.monotonic() - t0 >= 0.45


def test_external_event_beats_its_timeout(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(event_timeout_wf, input=30, instance_id=new_id("evt-ok"))
    client.raise_workflow_event(iid, "never", data={"came": True})
    assert assert_completed(complete(client, iid)) == {"event": {"came": True}}


def test_when_any_loser_result_is_ignored(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(race_wf, input=None, instance_id=new_id("race"))
    st = complete(client, iid)
    assert assert_completed(st) == "fast"
    # The slow activity still runs; its late result must not disturb the finished instance.
    wait_until(lambda: "slow" in ran(iid), timeout=10, message="slow activity never ran")
    time.sleep(0.5)
    after = state_of(client, iid)
    assert after is not None and after.runtime_status == wf.WorkflowStatus.COMPLETED, describe(after)
    assert output_of(after) == "fast"
    if HAS_MANAGEMENT_API:
        T = wf.WorkflowHistoryEventType
        types = [e.event_type for e in client.get_workflow_history(iid)]
        assert types[-1] == T.EXECUTION_COMPLETED, [t.name for t in types]
        assert types.count(T.EXECUTION_COMPLETED) == 1


def test_fire_and_forget_activity_is_dispatched(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(fire_and_forget_wf, input=None, instance_id=new_id("ff"))
    assert assert_completed(complete(client, iid)) == "done"
    wait_until(lambda: ran(iid) == ["alert"], timeout=5, message="fire-and-forget activity never ran")


def test_continue_as_new_tight_loop(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(can_loop_wf, input=0, instance_id=new_id("can-loop"))
    st = complete(client, iid)
    assert assert_completed(st) == 5
    assert st.serialized_input == "5"


def test_large_payload_roundtrip(client: wf.DaprWorkflowClient) -> None:
    data = ("0123456789abcdef" * 65536)[:1_000_000] + "END-MARKER"  # ~1 MB, below the 4 MiB limit
    iid = client.schedule_new_workflow(big_payload_wf, input=data, instance_id=new_id("big"))
    out = assert_completed(complete(client, iid, timeout=60))
    assert out == {"len": len(data), "same": True, "tail": "END-MARKER"[-10:]}


def test_none_input_and_output(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(none_wf, instance_id=new_id("none"))
    st = complete(client, iid)
    assert st.runtime_status == wf.WorkflowStatus.COMPLETED, describe(st)
    assert st.serialized_input is None
    assert st.serialized_output is None
    assert st.serialized_custom_status is None
    assert ran(iid) == ["none"]


def test_unicode_payloads_and_event_names(client: wf.DaprWorkflowClient) -> None:
    s = "naïve café – 日本語 – 🚀"
    iid = client.schedule_new_workflow(unicode_wf, input=s, instance_id=new_id("uni"))
    client.raise_workflow_event(iid, "ünïcødé", data={"emoji": "✅"})
    assert assert_completed(complete(client, iid)) == {"r": s, "ev": {"emoji": "✅"}}


def test_many_concurrent_starts(client: wf.DaprWorkflowClient) -> None:
    """StartInstance blocks until the first turn ran; many at once must not starve the server."""
    n = 100
    ids = [new_id("conc") for _ in range(n)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        started = list(
            pool.map(
                lambda p: client.schedule_new_workflow(quick_wf, input=p[1], instance_id=p[0]),
                zip(ids, range(n), strict=True),
            )
        )
    assert started == ids
    for i, iid in enumerate(ids):
        assert assert_completed(complete(client, iid)) == 2 * i


def test_many_concurrent_long_poll_waiters(client: wf.DaprWorkflowClient) -> None:
    """More blocked WaitForInstanceCompletion calls than a small server thread pool."""
    n = 48
    ids = [client.schedule_new_workflow(gate_wf, input=str(i), instance_id=new_id("wait")) for i in range(n)]
    for iid in ids:
        wait_for_custom_status(client, iid, "waiting")
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [
            pool.submit(client.wait_for_workflow_completion, iid, timeout_in_seconds=60) for iid in ids
        ]
        time.sleep(0.5)  # let every waiter block on the server
        assert all(status_of(client, iid) == wf.WorkflowStatus.RUNNING for iid in ids)
        for iid in ids:
            client.raise_workflow_event(iid, "go", data="ok")
        results = [f.result(timeout=90) for f in futures]
    for i, st in enumerate(results):
        assert st is not None
        assert assert_completed(st) == f"{i}:ok"
