"""Worker (GetWorkItems stream) lifecycle with the server staying up: work queued while no
worker is connected, a worker replaced mid-flight, two workers sharing the load."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import (
    HAS_MANAGEMENT_API,
    assert_completed,
    complete,
    make_client,
    make_runtime,
    new_id,
    running_runtime,
    state_of,
)
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(120)]

_done: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


def executed() -> int:
    with _lock:
        return sum(_done.values())


def step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    time.sleep(0.3)
    with _lock:
        _done[f"{ctx.workflow_id}/{ctx.task_id}"] += 1
    return x + 1


def chain_wf(ctx: wf.DaprWorkflowContext, x: int):
    a = yield ctx.call_activity(step, input=x)
    b = yield ctx.call_activity(step, input=a)
    c = yield ctx.call_activity(step, input=b)
    return c


def fan_wf(ctx: wf.DaprWorkflowContext, n: int):
    results = yield wf.when_all([ctx.call_activity(step, input=i) for i in range(n)])
    return sum(results)


RT = {"workflows": [chain_wf, fan_wf], "activities": [step], "maximum_thread_pool_workers": 32}


def _assert_clean_history(client: wf.DaprWorkflowClient, iid: str) -> None:
    if not HAS_MANAGEMENT_API:
        return
    T = wf.WorkflowHistoryEventType
    events = client.get_workflow_history(iid)
    results = collections.Counter(e.task_scheduled_id for e in events if e.event_type == T.TASK_COMPLETED)
    assert all(v == 1 for v in results.values()), f"{iid}: duplicate results {results}"
    assert sum(1 for e in events if e.event_type == T.EXECUTION_COMPLETED) == 1


def test_work_waits_for_a_worker(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory()
    client = make_client(srv)
    iid = new_id("noworker")
    result: dict[str, object] = {}

    def start() -> None:
        try:
            result["id"] = client.schedule_new_workflow(chain_wf, input=0, instance_id=iid)
        except Exception as e:  # reported below
            result["error"] = e

    t = threading.Thread(target=start, daemon=True)
    t.start()
    time.sleep(1.0)
    # No worker: the instance cannot have run its first turn.
    st = state_of(client, iid)
    assert st is None or st.runtime_status == wf.WorkflowStatus.PENDING, st.runtime_status
    with running_runtime(srv, **RT):
        t.join(timeout=30)
        assert not t.is_alive(), "schedule_new_workflow still blocked after a worker connected"
        assert "error" not in result, result
        assert assert_completed(complete(client, iid)) == 3
    client.close()


def test_worker_replaced_midflight(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory()
    client = make_client(srv)
    rt = make_runtime(srv, **RT)
    try:
        base = executed()
        ids = [
            client.schedule_new_workflow(chain_wf, input=10 * i, instance_id=new_id("swap"))
            for i in range(10)
        ]
        wait_until(lambda: executed() - base >= 5, timeout=20, message="no activity ran")
    finally:
        rt.shutdown()
    assert executed() - base < 30, "all work finished before the worker went away"
    with running_runtime(srv, **RT):
        for i, iid in enumerate(ids):
            assert assert_completed(complete(client, iid, timeout=60)) == 10 * i + 3
        for iid in ids:
            _assert_clean_history(client, iid)
    client.close()


def test_two_workers_share_the_load(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory()
    client = make_client(srv)
    with running_runtime(srv, **RT), running_runtime(srv, **RT):
        wait_until(lambda: srv.connected_workers() == 2, timeout=10, message="two workers not counted")
        ids = [client.schedule_new_workflow(fan_wf, input=20, instance_id=new_id("two")) for _ in range(5)]
        chains = [
            client.schedule_new_workflow(chain_wf, input=i, instance_id=new_id("two")) for i in range(10)
        ]
        for iid in ids:
            assert assert_completed(complete(client, iid, timeout=60)) == sum(range(1, 21))
        for i, iid in enumerate(chains):
            assert assert_completed(complete(client, iid, timeout=60)) == i + 3
        for iid in ids + chains:
            _assert_clean_history(client, iid)
    client.close()
