"""Durability: the server is killed (SIGKILL) or stopped mid-flight and restarted on the same
database file and ports while the app's WorkflowRuntime stays up and reconnects."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import (
    HAS_MANAGEMENT_API,
    assert_completed,
    complete,
    describe,
    make_client,
    new_id,
    retry_unavailable,
    running_runtime,
    state_of,
)
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(180)]

_executions: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


def executions() -> int:
    with _lock:
        return sum(_executions.values())


def slow_step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    time.sleep(0.5)
    with _lock:
        _executions[f"{ctx.workflow_id}/{ctx.task_id}"] += 1
    return x + 1


def chain3_wf(ctx: wf.DaprWorkflowContext, x: int):
    a = yield ctx.call_activity(slow_step, input=x)
    b = yield ctx.call_activity(slow_step, input=a)
    c = yield ctx.call_activity(slow_step, input=b)
    return {"start": x, "end": c}


def sleeper_wf(ctx: wf.DaprWorkflowContext, seconds: float):
    yield ctx.create_timer(timedelta(seconds=seconds))
    ev = yield ctx.wait_for_external_event("go")
    return {"slept": seconds, "event": ev}


RT = {"workflows": [chain3_wf, sleeper_wf], "activities": [slow_step], "maximum_thread_pool_workers": 64}


def _check_history_has_no_duplicate_results(client: wf.DaprWorkflowClient, iid: str) -> None:
    if not HAS_MANAGEMENT_API:
        return
    T = wf.WorkflowHistoryEventType
    events = client.get_workflow_history(iid)
    scheduled = [e.event_id for e in events if e.event_type == T.TASK_SCHEDULED]
    results = collections.Counter(
        e.task_scheduled_id for e in events if e.event_type in (T.TASK_COMPLETED, T.TASK_FAILED)
    )
    assert scheduled == [1, 2, 3], f"{iid}: taskScheduled ids {scheduled}"
    dups = {k: v for k, v in results.items() if v > 1}
    assert not dups, f"{iid}: several results for taskScheduledId {dups}"
    assert set(results) == {1, 2, 3}, f"{iid}: results for {sorted(results)}"
    assert sum(1 for e in events if e.event_type == T.EXECUTION_STARTED) == 1
    assert sum(1 for e in events if e.event_type == T.EXECUTION_COMPLETED) == 1


def _run_crash_scenario(
    server_factory: Callable[..., DurahubServer], n: int, *, hard: bool, crash_after: int
) -> None:
    srv = server_factory()
    client = make_client(srv)
    with running_runtime(srv, **RT):
        base = executions()
        ids = {}
        for i in range(n):
            iid = client.schedule_new_workflow(chain3_wf, input=i * 10, instance_id=new_id(f"crash{i}"))
            ids[iid] = i * 10
        # Crash while activities are in flight: some steps done, most not.
        wait_until(lambda: executions() - base >= crash_after, timeout=30, message="activities never ran")
        if hard:
            srv.kill()
        else:
            srv.stop()
        done_before = executions() - base
        assert done_before < 3 * n, "everything finished before the crash; the test proves nothing"
        time.sleep(0.3)
        srv.start()

        deadline = time.monotonic() + 120
        for iid, start in ids.items():
            remaining = max(1, int(deadline - time.monotonic()))
            st = complete(client, iid, timeout=remaining)
            assert st.runtime_status == wf.WorkflowStatus.COMPLETED, describe(st)
            assert assert_completed(st) == {"start": start, "end": start + 3}, describe(st)
        for iid in ids:
            _check_history_has_no_duplicate_results(client, iid)
    client.close()


def test_kill9_midflight_50_workflows_all_complete(server_factory: Callable[..., DurahubServer]) -> None:
    _run_crash_scenario(server_factory, 50, hard=True, crash_after=20)


def test_graceful_stop_midflight_workflows_complete(server_factory: Callable[..., DurahubServer]) -> None:
    _run_crash_scenario(server_factory, 10, hard=False, crash_after=5)


def test_timer_and_raised_event_survive_kill9(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory()
    client = make_client(srv)
    with running_runtime(srv, **RT):
        t0 = time.monotonic()
        iid = client.schedule_new_workflow(sleeper_wf, input=2.5, instance_id=new_id("sleeper"))
        # The event is raised while the workflow sleeps; once RaiseEvent returned it is durable.
        client.raise_workflow_event(iid, "go", data="before-crash")
        srv.kill()
        srv.start()
        st = complete(client, iid, timeout=60)
        assert assert_completed(st) == {"slept": 2.5, "event": "before-crash"}
        assert time.monotonic() - t0 >= 2.3, "timer fired early"
    client.close()


def test_completed_state_survives_kill9(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory()
    client = make_client(srv)
    with running_runtime(srv, **RT):
        iid = client.schedule_new_workflow(chain3_wf, input=1, instance_id=new_id("done"))
        before = complete(client, iid)
        assert assert_completed(before) == {"start": 1, "end": 4}
    srv.kill()
    srv.start()
    after = retry_unavailable(lambda: state_of(client, iid))
    assert after is not None, "completed instance lost after kill -9"
    assert after.runtime_status == wf.WorkflowStatus.COMPLETED, describe(after)
    assert after.serialized_output == before.serialized_output
    assert after.serialized_input == before.serialized_input
    assert after.created_at == before.created_at
    client.close()
