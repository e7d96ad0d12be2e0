"""Instance management through DaprWorkflowClient: pause/resume, terminate, purge, waits,
custom status, instance-id reuse, unknown instances, scheduled starts, failures."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta

import dapr.ext.workflow as wf
import grpc
import pytest

from testsupport.sdk import (
    assert_completed,
    complete,
    describe,
    new_id,
    output_of,
    state_of,
    status_of,
    wait_for_custom_status,
)

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("runtime")]


def shout(ctx: wf.WorkflowActivityContext, s: str) -> str:
    return s.upper()


def gated_wf(ctx: wf.DaprWorkflowContext, tag: str):
    """Sets custom status "waiting:<tag>", waits for "go", runs an activity."""
    ctx.set_custom_status(f"waiting:{tag}")
    ev = yield ctx.wait_for_external_event("go")
    loud = yield ctx.call_activity(shout, input=f"{tag}-{ev}")
    ctx.set_custom_status(f"done:{tag}")
    return loud


def quick_wf(ctx: wf.DaprWorkflowContext, x):
    r = yield ctx.call_activity(shout, input=str(x))
    return r


def failing_wf(ctx: wf.DaprWorkflowContext, msg: str):
    yield ctx.call_activity(shout, input=msg)
    raise ValueError(f"workflow failed: {msg}")


def staged_wf(ctx: wf.DaprWorkflowContext, _):
    ctx.set_custom_status("stage-1")
    yield ctx.wait_for_external_event("next")
    ctx.set_custom_status('{"stage": 2, "ok": true}')
    yield ctx.wait_for_external_event("next")
    return "finished"


WORKFLOWS = [gated_wf, quick_wf, failing_wf, staged_wf]
ACTIVITIES = [shout]


def _start_gated(client: wf.DaprWorkflowClient, tag: str = "x", iid: str | None = None) -> str:
    iid = client.schedule_new_workflow(gated_wf, input=tag, instance_id=iid or new_id("gated"))
    wait_for_custom_status(client, iid, f"waiting:{tag}")
    return iid


# ------------------------------------------------------------------------ suspend / resume


def test_pause_resume_then_complete(client: wf.DaprWorkflowClient) -> None:
    iid = _start_gated(client, "pr")
    assert status_of(client, iid) == wf.WorkflowStatus.RUNNING
    client.pause_workflow(iid)
    # pause_workflow returns once the instance is suspended.
    assert status_of(client, iid) == wf.WorkflowStatus.SUSPENDED
    client.pause_workflow(iid)  # pausing twice is harmless
    assert status_of(client, iid) == wf.WorkflowStatus.SUSPENDED
    client.resume_workflow(iid)
    assert status_of(client, iid) == wf.WorkflowStatus.RUNNING
    client.raise_workflow_event(iid, "go", data="now")
    st = complete(client, iid)
    assert assert_completed(st) == "PR-NOW"


def test_events_raised_while_suspended_are_delivered_after_resume(client: wf.DaprWorkflowClient) -> None:
    iid = _start_gated(client, "buf")
    client.pause_workflow(iid)
    assert status_of(client, iid) == wf.WorkflowStatus.SUSPENDED
    client.raise_workflow_event(iid, "go", data="later")
    time.sleep(0.7)
    st = state_of(client, iid)
    assert st is not None and st.runtime_status == wf.WorkflowStatus.SUSPENDED, describe(st)
    assert st.serialized_output is None
    client.resume_workflow(iid)
    st = complete(client, iid)
    assert assert_completed(st) == "BUF-LATER"


def test_resume_of_running_instance_is_harmless(client: wf.DaprWorkflowClient) -> None:
    iid = _start_gated(client, "rr")
    client.resume_workflow(iid)
    time.sleep(0.3)
    assert status_of(client, iid) == wf.WorkflowStatus.RUNNING
    client.raise_workflow_event(iid, "go", data="ok")
    assert assert_completed(complete(client, iid)) == "RR-OK"


# ------------------------------------------------------------------------------- terminate


def test_terminate_while_suspended_with_output(client: wf.DaprWorkflowClient) -> None:
    iid = _start_gated(client, "ts")
    client.pause_workflow(iid)
    assert status_of(client, iid) == wf.WorkflowStatus.SUSPENDED
    payload = {"reason": "cancelled by test", "code": 7}
    client.terminate_workflow(iid, output=payload)
    st = state_of(client, iid)
    assert st is not None and st.runtime_status == wf.WorkflowStatus.TERMINATED, describe(st)
    assert output_of(st) == payload
    # wait_for_workflow_completion sees the terminal state at once
    st2 = complete(client, iid, timeout=5)
    assert st2.runtime_status == wf.WorkflowStatus.TERMINATED


def test_terminate_running_instance(client: wf.DaprWorkflowClient) -> None:
    iid = _start_gated(client, "tr")
    client.terminate_workflow(iid, output="stopped")
    st = state_of(client, iid)
    assert st is not None and st.runtime_status == wf.WorkflowStatus.TERMINATED, describe(st)
    assert output_of(st) == "stopped"
    # Events for a terminated instance change nothing.
    with contextlib.suppress(grpc.RpcError):
        client.raise_workflow_event(iid, "go", data="too late")
    time.sleep(0.3)
    st = state_of(client, iid)
    assert st is not None and st.runtime_status == wf.WorkflowStatus.TERMINATED
    assert output_of(st) == "stopped"


# ---------------------------------------------------------------------------------- purge


def test_purge_completed_instance(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(quick_wf, input="p", instance_id=new_id("purge"))
    assert assert_completed(complete(client, iid)) == "P"
    client.purge_workflow(iid)
    assert client.get_workflow_state(iid) is None


def test_purge_refused_for_running_instance(client: wf.DaprWorkflowClient) -> None:
    iid = _start_gated(client, "pu")
    with pytest.raises(grpc.RpcError):
        client.purge_workflow(iid)
    st = state_of(client, iid)
    assert st is not None and st.runtime_status == wf.WorkflowStatus.RUNNING, describe(st)
    assert st.serialized_custom_status == "waiting:pu"
    # still fully functional
    client.raise_workflow_event(iid, "go", data="after")
    assert assert_completed(complete(client, iid)) == "PU-AFTER"


def test_purge_terminated_and_failed_instances(client: wf.DaprWorkflowClient) -> None:
    t = _start_gated(client, "pt")
    client.terminate_workflow(t, output="bye")
    f = client.schedule_new_workflow(failing_wf, input="oops", instance_id=new_id("fail"))
    assert complete(client, f).runtime_status == wf.WorkflowStatus.FAILED
    for iid in (t, f):
        client.purge_workflow(iid)
        assert client.get_workflow_state(iid) is None


# ---------------------------------------------------------------------------------- waits


def test_wait_for_completion_times_out(client: wf.DaprWorkflowClient) -> None:
    iid = _start_gated(client, "wt")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        client.wait_for_workflow_completion(iid, timeout_in_seconds=1)
    elapsed = time.monotonic() - t0
    assert 0.8 <= elapsed < 10, elapsed
    assert status_of(client, iid) == wf.WorkflowStatus.RUNNING
    client.raise_workflow_event(iid, "go", data="eventually")
    assert assert_completed(complete(client, iid)) == "WT-EVENTUALLY"


def test_wait_for_start_and_scheduled_start(client: wf.DaprWorkflowClient) -> None:
    t0 = time.monotonic()
    start_at = datetime.now(UTC) + timedelta(seconds=2)
    iid = client.schedule_new_workflow(
        quick_wf, input="later", instance_id=new_id("sched"), start_at=start_at
    )
    # A scheduled start does not wait for the instance to run.
    assert time.monotonic() - t0 < 1.5
    st = client.get_workflow_state(iid)
    assert st is not None, "a scheduled instance must be visible before it starts"
    assert st.runtime_status == wf.WorkflowStatus.PENDING, describe(st)
    started = client.wait_for_workflow_start(iid, timeout_in_seconds=15)
    assert started is not None
    assert started.runtime_status != wf.WorkflowStatus.PENDING
    st = complete(client, iid)
    assert assert_completed(st) == "LATER"
    assert time.monotonic() - t0 >= 1.7, "started before start_at"


def test_failed_workflow_reports_failure_details(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(failing_wf, input="bad input", instance_id=new_id("fail"))
    st = complete(client, iid)
    assert st.runtime_status == wf.WorkflowStatus.FAILED, describe(st)
    assert st.failure_details is not None
    assert "workflow failed: bad input" in st.failure_details.message
    assert st.failure_details.error_type == "ValueError"


# --------------------------------------------------------------------------- custom status


def test_custom_status_visible(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(staged_wf, input=None, instance_id=new_id("cs"))
    wait_for_custom_status(client, iid, "stage-1")
    client.raise_workflow_event(iid, "next", data=1)
    st = wait_for_custom_status(client, iid, '{"stage": 2, "ok": true}')
    assert st.runtime_status == wf.WorkflowStatus.RUNNING
    client.raise_workflow_event(iid, "next", data=2)
    st = complete(client, iid)
    assert assert_completed(st) == "finished"
    # The last custom status set stays visible after completion.
    assert st.serialized_custom_status == '{"stage": 2, "ok": true}'
    # fetch_payloads=False leaves payloads out
    light = client.get_workflow_state(iid, fetch_payloads=False)
    assert light is not None and light.runtime_status == wf.WorkflowStatus.COMPLETED
    assert light.serialized_output is None
    assert light.serialized_custom_status is None


# -------------------------------------------------------------------------- instance ids


def test_starting_an_active_instance_id_is_refused(client: wf.DaprWorkflowClient) -> None:
    iid = _start_gated(client, "dup")
    with pytest.raises(grpc.RpcError) as exc:
        client.schedule_new_workflow(gated_wf, input="other", instance_id=iid)
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS, exc.value
    # the running instance is untouched
    st = state_of(client, iid)
    assert st is not None and st.serialized_custom_status == "waiting:dup", describe(st)
    assert st.serialized_input == '"dup"'
    # a suspended instance is active too
    client.pause_workflow(iid)
    with pytest.raises(grpc.RpcError) as exc:
        client.schedule_new_workflow(quick_wf, input="other", instance_id=iid)
    assert exc.value.code() == grpc.StatusCode.ALREADY_EXISTS, exc.value
    client.terminate_workflow(iid, output="done")


def test_finished_instance_id_can_be_reused(client: wf.DaprWorkflowClient) -> None:
    iid = new_id("reuse")
    client.schedule_new_workflow(quick_wf, input="first", instance_id=iid)
    assert assert_completed(complete(client, iid)) == "FIRST"
    # Reuse with a different workflow and input.
    client.schedule_new_workflow(gated_wf, input="second", instance_id=iid)
    st = wait_for_custom_status(client, iid, "waiting:second")
    assert st.name == "gated_wf"
    assert st.serialized_output is None, "old output must be wiped on reuse"
    client.raise_workflow_event(iid, "go", data="x")
    assert assert_completed(complete(client, iid)) == "SECOND-X"
    # ... and a terminated one as well.
    client.schedule_new_workflow(gated_wf, input="third", instance_id=iid)
    wait_for_custom_status(client, iid, "waiting:third")
    client.terminate_workflow(iid, output="t")
    client.schedule_new_workflow(quick_wf, input="fourth", instance_id=iid)
    assert assert_completed(complete(client, iid)) == "FOURTH"


# ------------------------------------------------------------------------ unknown instance


def test_unknown_instance(client: wf.DaprWorkflowClient) -> None:
    missing = new_id("missing")
    assert client.get_workflow_state(missing) is None
    assert client.get_workflow_state(missing, fetch_payloads=False) is None
    with pytest.raises(grpc.RpcError):
        client.raise_workflow_event(missing, "go", data=1)
    with pytest.raises(grpc.RpcError):
        client.terminate_workflow(missing, output="x")
    with pytest.raises(grpc.RpcError):
        client.pause_workflow(missing)
    with pytest.raises(grpc.RpcError):
        client.resume_workflow(missing)
    with pytest.raises(grpc.RpcError):
        client.purge_workflow(missing)
    # none of the above created it
    assert client.get_workflow_state(missing) is None
