"""The sticky worker accelerator (src/durahub/sticky) in a real WorkflowRuntime against a real server: long
chains run with one generator, mixed patterns give the results they give without it, and the paths back to a
full replay (the entry evicted, the engine killed and restarted, the engine replaced under the worker by one
that reuses the instance id) give correct results.

The accelerator is turned on in this process for this module (and off again after it, unless the whole run is
sticky: DURAHUB_TEST_STICKY=1). Loaded by file path (testsupport.sticky): this also runs in the legacy-SDK venv.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf
import pytest

from testsupport import sticky
from testsupport.sdk import (
    assert_completed,
    complete,
    make_client,
    new_id,
    retry_unavailable,
    running_runtime,
    wait_for_custom_status,
    wait_for_status,
)
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(180)]

_lock = threading.Lock()
STARTS: dict[str, int] = {}  # instance id -> generators built for it in this process
NEW_STEPS: dict[str, list[int]] = {}  # instance id -> step results the workflow got while not replaying


def _started(ctx: wf.DaprWorkflowContext) -> None:
    with _lock:
        STARTS[ctx.instance_id] = STARTS.get(ctx.instance_id, 0) + 1


def step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


def chain_wf(ctx: wf.DaprWorkflowContext, n: int) -> Any:
    _started(ctx)
    x = 0
    for _ in range(n):
        x = yield ctx.call_activity(step, input=x)
        if not ctx.is_replaying:
            with _lock:
                NEW_STEPS.setdefault(ctx.instance_id, []).append(x)
        ctx.set_custom_status(f"step {x}")
    return x


def child_wf(ctx: wf.DaprWorkflowContext, x: int) -> Any:
    y = yield ctx.call_activity(step, input=x)
    return y * 10


def mixed_wf(ctx: wf.DaprWorkflowContext, _: Any) -> Any:
    _started(ctx)
    fanned = yield wf.when_all([ctx.call_activity(step, input=i) for i in range(5)])
    child = yield ctx.call_child_workflow(child_wf, input=sum(fanned))
    yield ctx.create_timer(timedelta(milliseconds=200))
    ctx.set_custom_status("waiting")
    approval = ctx.wait_for_external_event("approve")
    timeout = ctx.create_timer(timedelta(seconds=60))
    winner = yield wf.when_any([approval, timeout])
    if winner is timeout:
        return {"timed_out": True}
    try:
        yield ctx.call_activity(flaky, input=approval.get_result(),
                                retry_policy=wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=50),
                                                            max_number_of_attempts=3))
    except Exception as exc:  # noqa: BLE001 - the workflow reports the activity's failure
        failed = str(exc)
    return {"fanned": fanned, "child": child, "approval": approval.get_result(), "failed": "boom" in failed}


ATTEMPTS: dict[str, int] = {}


def flaky(ctx: wf.DaprWorkflowContext, x: Any) -> Any:
    with _lock:
        ATTEMPTS[ctx.workflow_id] = ATTEMPTS.get(ctx.workflow_id, 0) + 1
    raise RuntimeError("boom")


def waiting_wf(ctx: wf.DaprWorkflowContext, tag: str) -> Any:
    _started(ctx)
    first = yield ctx.wait_for_external_event("next")
    second = yield ctx.wait_for_external_event("next")
    return f"{tag}:{first}:{second}"


RT: dict[str, Any] = {"workflows": [chain_wf, child_wf, mixed_wf, waiting_wf], "activities": [step, flaky]}


@pytest.fixture(scope="module")
def cache() -> Iterator[Any]:
    from dapr.ext.workflow._durabletask import worker

    pkg = sticky.package()
    was_patched = pkg.cache() is not None
    c = pkg.patch(worker)
    assert c is not None, "the installed SDK's worker does not look like the one the accelerator patches"
    yield c
    if not was_patched:
        pkg.unpatch(worker)


def test_a_long_chain_runs_on_one_generator(server: DurahubServer, cache: Any) -> None:
    with running_runtime(server, **RT):
        client = make_client(server)
        iid = new_id("chain")
        before = cache.stats.as_dict()
        client.schedule_new_workflow(chain_wf, input=60, instance_id=iid)
        st = complete(client, iid, timeout=60)
        assert assert_completed(st) == 60
        assert st.serialized_custom_status == "step 60"
        after = cache.stats.as_dict()
    assert STARTS[iid] == 1, "every turn after the first should have reused the generator"
    assert NEW_STEPS[iid] == list(range(1, 61)), "each result reaches the workflow once, not replaying"
    assert after["sticky_turns"] - before["sticky_turns"] >= 60


def test_mixed_patterns_give_the_same_results(server: DurahubServer, cache: Any) -> None:
    with running_runtime(server, **RT):
        client = make_client(server)
        iid = new_id("mixed")
        client.schedule_new_workflow(mixed_wf, instance_id=iid)
        wait_for_custom_status(client, iid, "waiting", timeout=30)
        client.pause_workflow(iid)
        wait_for_status(client, iid, wf.WorkflowStatus.SUSPENDED)
        client.raise_workflow_event(iid, "approve", data="yes")  # buffered while suspended
        client.resume_workflow(iid)
        out = assert_completed(complete(client, iid, timeout=60))
    assert out == {"fanned": [1, 2, 3, 4, 5], "child": 160, "approval": "yes", "failed": True}
    assert ATTEMPTS[iid] == 3
    assert STARTS[iid] == 1


def test_evicted_entries_replay_in_full(server: DurahubServer, cache: Any) -> None:
    size, cache.size = cache.size, 1
    try:
        with running_runtime(server, **RT):
            client = make_client(server)
            ids = [new_id("evict") for _ in range(3)]
            for iid in ids:
                client.schedule_new_workflow(waiting_wf, input=iid[-4:], instance_id=iid)
            for iid in ids:
                wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
            evictions = cache.stats.evictions
            for n in (1, 2):
                for iid in ids:
                    client.raise_workflow_event(iid, "next", data=n)
            for iid in ids:
                assert assert_completed(complete(client, iid)) == f"{iid[-4:]}:1:2"
        assert cache.stats.evictions > evictions or sum(STARTS[i] for i in ids) > 3
    finally:
        cache.size = size


def test_engine_killed_and_restarted_mid_workflow(server_factory: Any, cache: Any) -> None:
    srv: DurahubServer = server_factory()
    with running_runtime(srv, **RT):
        client = make_client(srv)
        iid = new_id("restart")
        client.schedule_new_workflow(waiting_wf, input="r", instance_id=iid)
        wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
        client.raise_workflow_event(iid, "next", data="a")
        srv.restart(hard=True)  # kill -9, same database and ports; the runtime reconnects
        retry_unavailable(lambda: client.raise_workflow_event(iid, "next", data="b"), timeout=30)
        assert assert_completed(complete(client, iid, timeout=60)) == "r:a:b"


def test_engine_replaced_under_the_worker_reusing_the_id(server_factory: Any, cache: Any) -> None:
    """The worker holds an entry for an instance; the engine behind its port is replaced by one on a new
    database where the same id starts again: the first turn's history does not match, it replays in full."""
    srv: DurahubServer = server_factory()
    if srv.backend != "sqlite":
        pytest.skip("replaces the SQLite file under the engine")
    iid = new_id("reused")
    with running_runtime(srv, **RT):
        client = make_client(srv)
        client.schedule_new_workflow(waiting_wf, input="old", instance_id=iid)
        wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
        client.raise_workflow_event(iid, "next", data="x")
        wait_until_started_twice = STARTS[iid]
        srv.kill()
        for suffix in ("", "-wal", "-shm"):
            srv.db_path.with_name(srv.db_path.name + suffix).unlink(missing_ok=True)
        mismatches = cache.stats.mismatches
        srv.start()
        retry_unavailable(lambda: client.schedule_new_workflow(waiting_wf, input="new", instance_id=iid), timeout=30)
        for data in ("p", "q"):
            client.raise_workflow_event(iid, "next", data=data)
        assert assert_completed(complete(client, iid, timeout=60)) == "new:p:q"
    assert cache.stats.mismatches > mismatches
    assert STARTS[iid] > wait_until_started_twice
