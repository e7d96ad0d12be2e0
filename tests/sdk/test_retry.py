"""RetryPolicy: retries are SDK logic driven by durable timers the server must honour."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import dapr.ext.workflow as wf
import pytest

from testsupport.sdk import assert_completed, complete, describe, new_id

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("runtime")]

_attempts: dict[str, list[float]] = {}
_lock = threading.Lock()


def _attempt(ctx: wf.WorkflowActivityContext) -> int:
    with _lock:
        times = _attempts.setdefault(ctx.workflow_id, [])
        times.append(time.monotonic())
        return len(times)


def attempts_of(instance_id: str) -> list[float]:
    with _lock:
        return list(_attempts.get(instance_id, []))


def flaky(ctx: wf.WorkflowActivityContext, fail_times: int) -> str:
    n = _attempt(ctx)
    if n <= fail_times:
        raise RuntimeError(f"transient failure #{n}")
    return f"ok after {n} attempts"


def flaky_child_wf(ctx: wf.DaprWorkflowContext, fail_times: int):
    r = yield ctx.call_activity(flaky, input=fail_times)
    return r


RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=300),
    max_number_of_attempts=3,
    backoff_coefficient=1.0,
)


def retry_wf(ctx: wf.DaprWorkflowContext, fail_times: int):
    r = yield ctx.call_activity(flaky, input=fail_times, retry_policy=RETRY)
    return r


def retry_exhausted_wf(ctx: wf.DaprWorkflowContext, fail_times: int):
    try:
        yield ctx.call_activity(flaky, input=fail_times, retry_policy=RETRY)
    except wf.TaskFailedError as e:
        return {"gave_up": e.details.message}
    return "unexpected success"


WORKFLOWS = [retry_wf, retry_exhausted_wf, flaky_child_wf]
ACTIVITIES = [flaky]


def test_activity_fails_twice_then_succeeds(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(retry_wf, input=2, instance_id=new_id("retry"))
    st = complete(client, iid)
    assert assert_completed(st) == "ok after 3 attempts"
    times = attempts_of(iid)
    assert len(times) == 3
    # Retries wait for the policy's durable timer (300 ms), they are not immediate.
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(g >= 0.2 for g in gaps), gaps


def test_retry_policy_gives_up_after_max_attempts(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(retry_exhausted_wf, input=10, instance_id=new_id("retry-x"))
    st = complete(client, iid)
    out = assert_completed(st)
    assert "transient failure #3" in out["gave_up"]
    assert len(attempts_of(iid)) == 3


def test_no_retry_policy_means_single_attempt(client: wf.DaprWorkflowClient) -> None:
    iid = client.schedule_new_workflow(flaky_child_wf, input=1, instance_id=new_id("noretry"))
    st = complete(client, iid)
    assert st.runtime_status == wf.WorkflowStatus.FAILED, describe(st)
    assert st.failure_details is not None and "transient failure #1" in st.failure_details.message
    time.sleep(0.5)
    assert len(attempts_of(iid)) == 1
