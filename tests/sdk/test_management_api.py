"""1.19 client management API: list_workflow_instance_ids (paged), get_workflow_history,
rerun_workflow_from_event. Skipped with the 1.18 SDK, whose client lacks these methods."""

from __future__ import annotations

import threading

import dapr.ext.workflow as wf
import grpc
import pytest

from testsupport.sdk import HAS_MANAGEMENT_API, assert_completed, complete, new_id, wait_for_custom_status

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.usefixtures("runtime"),
    pytest.mark.skipif(not HAS_MANAGEMENT_API, reason="this SDK's client has no management API (1.19+)"),
]

_calls: dict[str, list[str]] = {}
_lock = threading.Lock()


def _record(ctx: wf.WorkflowActivityContext, what: str) -> None:
    with _lock:
        _calls.setdefault(ctx.workflow_id, []).append(what)


def calls_for(iid: str) -> list[str]:
    with _lock:
        return list(_calls.get(iid, []))


def inc(ctx: wf.WorkflowActivityContext, x: int) -> int:
    _record(ctx, f"inc:{x}")
    return x + 1


def double(ctx: wf.WorkflowActivityContext, x: int) -> int:
    _record(ctx, f"double:{x}")
    return x * 2


def chain_wf(ctx: wf.DaprWorkflowContext, x: int):
    a = yield ctx.call_activity(inc, input=x)
    b = yield ctx.call_activity(double, input=a)
    c = yield ctx.call_activity(inc, input=b)
    return [a, b, c]


def waiting_wf(ctx: wf.DaprWorkflowContext, _):
    ctx.set_custom_status("waiting")
    v = yield ctx.wait_for_external_event("go")
    return v


WORKFLOWS = [chain_wf, waiting_wf]
ACTIVITIES = [inc, double]

T = wf.WorkflowHistoryEventType if HAS_MANAGEMENT_API else None


def test_list_instance_ids_paged(client: wf.DaprWorkflowClient) -> None:
    ids = [client.schedule_new_workflow(chain_wf, input=i, instance_id=new_id("list")) for i in range(5)]
    for iid in ids:
        assert_completed(complete(client, iid))

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = client.list_workflow_instance_ids(page_size=2, continuation_token=token)
        assert len(page.instance_ids) <= 2, page
        seen.extend(page.instance_ids)
        pages += 1
        assert pages < 1000, "pagination does not terminate"
        if not page.continuation_token:
            break
        token = page.continuation_token
    assert len(seen) == len(set(seen)), f"duplicates across pages: {seen}"
    assert set(ids) <= set(seen)
    assert pages >= 3
    # The iterator helper sees the same set.
    assert set(ids) <= set(client.iter_workflow_instance_ids(page_size=3))
    # Purged instances disappear from the listing.
    client.purge_workflow(ids[0])
    assert ids[0] not in set(client.iter_workflow_instance_ids(page_size=100))


def test_get_workflow_history(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(chain_wf, input=3, instance_id=new_id("hist"))
    assert assert_completed(complete(client, iid)) == [4, 8, 9]
    events = client.get_workflow_history(iid)
    types = [e.event_type for e in events]
    assert types == [
        T.WORKFLOW_STARTED,
        T.EXECUTION_STARTED,
        T.TASK_SCHEDULED,
        T.WORKFLOW_STARTED,
        T.TASK_COMPLETED,
        T.TASK_SCHEDULED,
        T.WORKFLOW_STARTED,
        T.TASK_COMPLETED,
        T.TASK_SCHEDULED,
        T.WORKFLOW_STARTED,
        T.TASK_COMPLETED,
        T.EXECUTION_COMPLETED,
    ], [t.name for t in types]
    started = events[1]
    assert started.name == "chain_wf"
    scheduled = [e for e in events if e.event_type == T.TASK_SCHEDULED]
    assert [(e.event_id, e.name) for e in scheduled] == [(1, "inc"), (2, "double"), (3, "inc")]
    completed = [e for e in events if e.event_type == T.TASK_COMPLETED]
    assert [e.task_scheduled_id for e in completed] == [1, 2, 3]
    assert all(e.event_id == -1 for e in completed)
    timestamps = [e.timestamp for e in events]
    assert timestamps[0] <= timestamps[-1]


def test_get_history_of_unknown_instance_is_not_found(client: wf.DaprWorkflowClient) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        client.get_workflow_history(new_id("nohist"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_rerun_from_event_with_new_input(client: wf.DaprWorkflowClient) -> None:
    src = client.schedule_new_workflow(chain_wf, input=3, instance_id=new_id("rerun-src"))
    assert assert_completed(complete(client, src)) == [4, 8, 9]
    scheduled = [e for e in client.get_workflow_history(src) if e.event_type == T.TASK_SCHEDULED]
    assert all(e.is_rerunnable for e in scheduled)
    second = scheduled[1]  # double(4)

    new = client.rerun_workflow_from_event(src, second.event_id, new_instance_id=new_id("rerun"), input=10)
    st = complete(client, new)
    assert assert_completed(st) == [4, 20, 21]
    # Only the rerun activity and the ones after it ran again.
    assert calls_for(new) == ["double:10", "inc:20"]
    # The source instance is untouched.
    assert assert_completed(complete(client, src)) == [4, 8, 9]


def test_rerun_from_event_keeping_input(client: wf.DaprWorkflowClient) -> None:
    src = client.schedule_new_workflow(chain_wf, input=1, instance_id=new_id("rerun-src"))
    assert assert_completed(complete(client, src)) == [2, 4, 5]
    third = [e for e in client.get_workflow_history(src) if e.event_type == T.TASK_SCHEDULED][2]
    new = client.rerun_workflow_from_event(src, third.event_id)
    assert new and new != src
    assert assert_completed(complete(client, new)) == [2, 4, 5]
    assert calls_for(new) == ["inc:4"]


def test_rerun_errors(client: wf.DaprWorkflowClient) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        client.rerun_workflow_from_event(new_id("nosuch"), 1)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND

    running = client.schedule_new_workflow(waiting_wf, input=None, instance_id=new_id("rerun-run"))
    wait_for_custom_status(client, running, "waiting")
    with pytest.raises(grpc.RpcError) as exc:
        client.rerun_workflow_from_event(running, 1)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    client.terminate_workflow(running, output="x")

    src = client.schedule_new_workflow(chain_wf, input=0, instance_id=new_id("rerun-src"))
    assert_completed(complete(client, src))
    other = client.schedule_new_workflow(chain_wf, input=0, instance_id=new_id("rerun-other"))
    assert_completed(complete(client, other))
    with pytest.raises(grpc.RpcError) as exc:
        client.rerun_workflow_from_event(src, 1, new_instance_id=other)
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as exc:
        client.rerun_workflow_from_event(src, 1, new_instance_id=src)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
