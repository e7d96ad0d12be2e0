"""`durahub serve --time-skipping` driven by the official SDK (1.19 and the legacy 1.18.3 alike): long timers,
retry backoffs and event timeouts end as soon as the engine is idle while a client waits; activities still take
their real time; a wait nothing can end fails naming what the workflow waits on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import dapr.ext.workflow as wf
import grpc
import pytest

from testsupport.databases import BACKEND
from testsupport.plugin import track, untrack
from testsupport.sdk import new_id
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime"),
              pytest.mark.skipif(BACKEND == "postgres", reason="time skipping runs on a SQLite store only")]

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurahubServer]:
    """This module's server runs with a virtual clock (overrides the suite's `server`)."""
    base = tmp_path_factory.mktemp("time_skipping")
    s = DurahubServer(base / "durahub.db", base / "durahub.log", extra_args=["--time-skipping"])
    track(s)
    try:
        s.start()
        yield s
    finally:
        try:
            s.dispose()
        finally:
            untrack(s)


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def month_timer_wf(ctx: wf.DaprWorkflowContext, days: int):
    before = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(days=days))
    return {"before": _iso(before), "after": _iso(ctx.current_utc_datetime)}


_attempts: dict[str, int] = {}


def flaky(ctx: wf.WorkflowActivityContext, fail_times: int) -> int:
    n = _attempts[ctx.workflow_id] = _attempts.get(ctx.workflow_id, 0) + 1
    if n <= fail_times:
        raise RuntimeError(f"transient failure #{n}")
    return n


BACKOFF = wf.RetryPolicy(first_retry_interval=timedelta(minutes=5), max_number_of_attempts=4,
                         backoff_coefficient=3.0)


def backoff_wf(ctx: wf.DaprWorkflowContext, fail_times: int):
    start = ctx.current_utc_datetime
    attempts = yield ctx.call_activity(flaky, input=fail_times, retry_policy=BACKOFF)
    return {"attempts": attempts, "minutes": (ctx.current_utc_datetime - start).total_seconds() / 60}


def approval_wf(ctx: wf.DaprWorkflowContext, timeout_seconds: float):
    approval = ctx.wait_for_external_event("approval")
    timeout = ctx.create_timer(timedelta(seconds=timeout_seconds))
    winner = yield wf.when_any([approval, timeout])
    return "approved" if winner is approval else "timed out"


def forever_wf(ctx: wf.DaprWorkflowContext, _: None):
    yield ctx.wait_for_external_event("go_ahead")
    return "went ahead"


def real_sleep(ctx: wf.WorkflowActivityContext, seconds: float) -> str:
    time.sleep(seconds)
    return "activity"


def race_wf(ctx: wf.DaprWorkflowContext, seconds: float):
    work = ctx.call_activity(real_sleep, input=seconds)
    deadline = ctx.create_timer(timedelta(hours=1))
    winner = yield wf.when_any([work, deadline])
    return work.get_result() if winner is work else "timer"


WORKFLOWS = [month_timer_wf, backoff_wf, approval_wf, forever_wf, race_wf]
ACTIVITIES = [flaky, real_sleep]


def _run(client: wf.DaprWorkflowClient, workflow: object, payload: object) -> tuple[wf.WorkflowState, float]:
    iid = new_id("ts")
    started = time.monotonic()
    client.schedule_new_workflow(workflow, input=payload, instance_id=iid)
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
    elapsed = time.monotonic() - started
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED, state
    print(f"{getattr(workflow, '__name__', workflow)}: {elapsed:.3f}s wall")  # for the report, not asserted
    return state, elapsed


def test_a_30_day_timer_fires_once_the_client_waits(client: wf.DaprWorkflowClient) -> None:
    import json

    state, _ = _run(client, month_timer_wf, 30)
    times = json.loads(state.serialized_output)
    workflow_time = datetime.fromisoformat(times["after"]) - datetime.fromisoformat(times["before"])
    assert workflow_time >= timedelta(days=30)


def test_retry_backoffs_of_minutes_are_skipped(client: wf.DaprWorkflowClient) -> None:
    import json

    state, _ = _run(client, backoff_wf, 3)
    result = json.loads(state.serialized_output)
    assert result["attempts"] == 4
    assert result["minutes"] >= 5 + 15 + 45  # three backoffs, each 3x the previous


def test_an_event_timeout_fires_when_no_event_comes(client: wf.DaprWorkflowClient) -> None:
    import json

    state, _ = _run(client, approval_wf, 24 * 3600)
    assert json.loads(state.serialized_output) == "timed out"


def test_an_event_raised_before_the_wait_wins_over_the_timeout(client: wf.DaprWorkflowClient) -> None:
    import json

    iid = new_id("ts")
    client.schedule_new_workflow(approval_wf, input=30, instance_id=iid)
    client.raise_workflow_event(iid, "approval", data={"ok": True})
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
    assert state is not None and json.loads(state.serialized_output) == "approved"


def test_a_blocked_wait_fails_naming_the_awaited_event(client: wf.DaprWorkflowClient) -> None:
    iid = new_id("ts")
    client.schedule_new_workflow(forever_wf, instance_id=iid)
    with pytest.raises(grpc.RpcError) as raised:
        client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
    assert raised.value.code() == grpc.StatusCode.ABORTED
    assert "external event 'go_ahead'" in raised.value.details()
    assert iid in raised.value.details()
    # The instance itself is untouched: the event still lets it finish.
    client.raise_workflow_event(iid, "go_ahead")
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED


def test_an_activity_that_sleeps_for_real_is_not_skipped(client: wf.DaprWorkflowClient) -> None:
    import json

    state, elapsed = _run(client, race_wf, 0.5)
    assert json.loads(state.serialized_output) == "activity"  # the hour-long timer was not skipped past it
    assert elapsed >= 0.5  # the activity's own sleep is real time
