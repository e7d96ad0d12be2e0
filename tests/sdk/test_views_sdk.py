"""The views of durahub.core.views over real histories: workflows run by the official SDK against a real server,
their histories read back over gRPC (GetInstanceHistory), then summarised, drawn and merged."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta

import dapr.ext.workflow as wf
import grpc
import pytest

from testsupport.process import wait_until
from testsupport.sdk import assert_completed, complete, new_id
from testsupport.server import DurahubServer

pytest.importorskip("durahub", reason="the views are durahub's own functions (the 1.19 venv)")

from durahub.core import views  # noqa: E402
from durahub.protos import pb, taskhub_grpc  # noqa: E402

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]

HOSTILE = "<img src=x onerror=alert(1)>"
RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=5,
                       backoff_coefficient=1.0)

_failures: dict[str, int] = {}
_gates: dict[str, threading.Event] = {}
_lock = threading.Lock()


def _gate(instance_id: str) -> threading.Event:
    with _lock:
        return _gates.setdefault(instance_id, threading.Event())


# ---------------------------------------------------------------------------- activities


def first(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


def second(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x * 2


def gated(ctx: wf.WorkflowActivityContext, x: int) -> int:
    _gate(ctx.workflow_id).wait(60)  # released by the test once the workflow went on without it
    return x


def flaky(ctx: wf.WorkflowActivityContext, x: int) -> int:
    with _lock:
        _failures[ctx.workflow_id] = _failures.get(ctx.workflow_id, 0) + 1
        failures = _failures[ctx.workflow_id]
    if failures <= 2:
        raise ValueError(f"boom {failures}")
    return x


# ---------------------------------------------------------------------------- workflows


def chain_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    a = yield ctx.call_activity(first, input=x)
    b = yield ctx.call_activity(second, input=a)
    return b


def fan_wf(ctx: wf.DaprWorkflowContext, n: int):  # type: ignore[no-untyped-def]
    parts = yield wf.when_all([ctx.call_activity(first, input=i) for i in range(n)])
    total = yield ctx.call_activity(second, input=sum(parts))
    return total


def race_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    winner = ctx.call_activity(first, input=x)
    loser = ctx.call_activity(gated, input=x)
    yield wf.when_any([winner, loser])
    y = yield ctx.call_activity(second, input=x)
    yield ctx.wait_for_external_event("go")
    return y


def retry_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    y = yield ctx.call_activity(flaky, input=x, retry_policy=RETRY)
    return y


def child_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    y = yield ctx.call_activity(first, input=x)
    return y


def parent_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    y = yield ctx.call_child_workflow(child_wf, input=x)
    return y


def timer_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    yield ctx.create_timer(timedelta(milliseconds=200))
    return x


def approval_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    decision = yield ctx.wait_for_external_event("approve")
    try:
        extra = yield ctx.wait_for_external_event("extra", timeout=timedelta(milliseconds=300))
    except TimeoutError:
        extra = "timed out"
    return [decision, extra]


def looping_wf(ctx: wf.DaprWorkflowContext, n: int):  # type: ignore[no-untyped-def]
    if n < 2:
        yield ctx.call_activity(first, input=n)
        ctx.continue_as_new(n + 1)
        return None
    y = yield ctx.call_activity(second, input=n)
    return y


def failing_wf(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    yield ctx.call_activity(first, input=x)
    raise RuntimeError(HOSTILE)


WORKFLOWS = [chain_wf, fan_wf, race_wf, retry_wf, child_wf, parent_wf, timer_wf, approval_wf, looping_wf,
             (failing_wf, HOSTILE)]
ACTIVITIES = [first, second, gated, flaky]


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def stub(server: DurahubServer) -> Iterator[taskhub_grpc.TaskHubSidecarServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield taskhub_grpc.TaskHubSidecarServiceStub(channel)
    channel.close()


def history(stub: taskhub_grpc.TaskHubSidecarServiceStub, instance_id: str) -> list[pb.HistoryEvent]:
    return list(stub.GetInstanceHistory(pb.GetInstanceHistoryRequest(instanceId=instance_id), timeout=10).events)


def run(client: wf.DaprWorkflowClient, workflow: object, value: object) -> str:
    iid = new_id("views")
    client.schedule_new_workflow(workflow, input=value, instance_id=iid)  # type: ignore[arg-type]
    return iid


def shape(g: views.Graph) -> set[tuple[str, str]]:
    """Edges by node label (start is the workflow's name, end its outcome)."""
    labels = {n.id: n.label for n in g.nodes}
    return {(labels[e.source], labels[e.target]) for e in g.edges}


def now_us() -> int:
    return time.time_ns() // 1000


# ---------------------------------------------------------------------------- tests


def test_chain(client: wf.DaprWorkflowClient, stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, chain_wf, 1)
    assert assert_completed(complete(client, iid)) == 4
    events = history(stub, iid)
    g = views.graph(events)
    assert shape(g) == {("chain_wf", "first"), ("first", "second"), ("second", "completed")}
    assert [n.status for n in g.nodes] == ["started", "completed", "completed", "completed"]
    assert all(n.duration_us is not None and n.duration_us >= 0 for n in g.nodes[1:])
    t = views.timeline(events)
    assert [(b.name, b.lane, b.status) for b in t.bars] == [("first", 0, "completed"), ("second", 0, "completed")]
    assert len(t.turns) == 3
    assert views.summary(events, now_us()).activities == []


def test_fan_out_fan_in_of_three(client: wf.DaprWorkflowClient,
                                 stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, fan_wf, 3)
    assert assert_completed(complete(client, iid)) == 12
    g = views.graph(history(stub, iid))
    fan = [n for n in g.nodes if n.label == "first"]
    total = next(n for n in g.nodes if n.label == "second")
    edges = {(e.source, e.target) for e in g.edges}
    assert len(fan) == 3
    assert all(("start", n.id) in edges and (n.id, total.id) in edges for n in fan)
    assert (total.id, "end") in edges and len(edges) == 7 and not any(e.late for e in g.edges)
    bars = views.timeline(history(stub, iid)).bars
    assert len(bars) == 4 and all(b.status == "completed" for b in bars)


def test_when_any_loser_completing_later_is_drawn_late(client: wf.DaprWorkflowClient,
                                                       stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, race_wf, 5)

    def awaited() -> list[str]:
        return [e.name for e in views.summary(history(stub, iid), now_us()).events]

    wait_until(lambda: awaited() == ["go"], message="the workflow never waited for 'go'")
    s = views.summary(history(stub, iid), now_us())
    assert [(a.name, a.attempt) for a in s.activities] == [("gated", 1)]
    _gate(iid).set()
    wait_until(lambda: not views.summary(history(stub, iid), now_us()).activities,
               message="the loser's result never arrived")
    client.raise_workflow_event(iid, "go", data=True)
    assert assert_completed(complete(client, iid)) == 10
    g = views.graph(history(stub, iid))
    loser = next(n for n in g.nodes if n.label == "gated")
    assert loser.status == "completed"
    assert {(e.source, e.target) for e in g.edges if e.late} == {(loser.id, "end")}
    assert shape(g) >= {("race_wf", "first"), ("race_wf", "gated"), ("first", "second"), ("second", "go"),
                        ("go", "completed"), ("gated", "completed")}


def test_retry_that_fails_twice_then_succeeds(client: wf.DaprWorkflowClient,
                                              stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, retry_wf, 7)
    assert assert_completed(complete(client, iid)) == 7
    events = history(stub, iid)
    g = views.graph(events)
    assert [n.id for n in g.nodes] == ["start", g.nodes[1].id, "end"]
    node = g.nodes[1]
    assert (node.label, node.attempts, node.status, node.failure) == ("flaky", 3, "completed", "ValueError: boom 2")
    [bar] = views.timeline(events).bars
    assert [(s.kind, s.status) for s in bar.segments] == [
        ("attempt", "failed"), ("backoff", "completed"), ("attempt", "failed"), ("backoff", "completed"),
        ("attempt", "completed")]
    # Mid-way, as the summary saw it: after the second failure, waiting for the third attempt.
    second_failure = next(i for i, e in enumerate(events)
                          if e.HasField("taskFailed") and "boom 2" in e.taskFailed.failureDetails.errorMessage)
    partial = events[: second_failure + 2]  # the failure and the retry timer the workflow set in answer
    assert partial[-1].timerCreated.HasField("activityRetry")
    [pending] = views.summary(partial, now_us()).activities
    assert (pending.attempt, pending.last_failure) == (3, "ValueError: boom 2") and pending.retry_at_us
    assert [t.origin for t in views.summary(partial, now_us()).timers] == ["activityRetry"]


def test_child_workflow(client: wf.DaprWorkflowClient, stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, parent_wf, 1)
    assert assert_completed(complete(client, iid)) == 2
    g = views.graph(history(stub, iid))
    child = next(n for n in g.nodes if n.kind == "child")
    assert child.label == "child_wf" and child.status == "completed" and child.instance_id
    assert shape(g) == {("parent_wf", "child_wf"), ("child_wf", "completed")}
    child_graph = views.graph(history(stub, child.instance_id))
    assert shape(child_graph) == {("child_wf", "first"), ("first", "completed")}


def test_timer(client: wf.DaprWorkflowClient, stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, timer_wf, 3)
    assert assert_completed(complete(client, iid)) == 3
    events = history(stub, iid)
    [bar] = views.timeline(events).bars
    assert (bar.kind, bar.status) == ("timer", "fired") and bar.fire_at_us is not None
    assert bar.end_us is not None and bar.end_us >= bar.fire_at_us
    assert shape(views.graph(events)) == {("timer_wf", "timer"), ("timer", "completed")}


def test_external_events_with_and_without_timeout(client: wf.DaprWorkflowClient,
                                                  stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, approval_wf, 0)
    wait_until(lambda: views.summary(history(stub, iid), now_us()).events, message="never waited for 'approve'")
    s = views.summary(history(stub, iid), now_us())
    assert [(e.name, e.timeout_at_us) for e in s.events] == [("approve", None)]  # the SDK's indefinite sentinel
    assert [(t.origin, t.fire_at_us) for t in s.timers] == [("externalEvent", None)]
    client.raise_workflow_event(iid, "approve", data="yes")
    assert assert_completed(complete(client, iid)) == ["yes", "timed out"]
    g = views.graph(history(stub, iid))
    assert [(n.label, n.status) for n in g.nodes if n.kind == "event"] == [("approve", "received"),
                                                                          ("extra", "timed_out")]
    assert shape(g) == {("approval_wf", "approve"), ("approve", "extra"), ("extra", "completed")}


def test_continue_as_new_keeps_the_last_generation(client: wf.DaprWorkflowClient,
                                                   stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, looping_wf, 0)
    assert assert_completed(complete(client, iid)) == 4
    g = views.graph(history(stub, iid))
    assert shape(g) == {("looping_wf", "second"), ("second", "completed")}


def test_failed_workflow_and_its_drawings(client: wf.DaprWorkflowClient,
                                          stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    iid = run(client, HOSTILE, 1)
    st = complete(client, iid)
    assert st.runtime_status == wf.WorkflowStatus.FAILED
    events = history(stub, iid)
    g = views.graph(events)
    end = g.nodes[-1]
    assert (end.id, end.status) == ("end", "failed") and end.failure is not None and HOSTILE in end.failure
    assert g.nodes[0].label == HOSTILE
    svg = views.to_svg(g)
    root = ET.fromstring(svg)
    assert "<img" not in svg and HOSTILE in "".join(e.text or "" for e in root.iter())
    assert "<img" not in views.to_mermaid(g)
    assert views.summary(events, now_us()).failure == f"RuntimeError: {HOSTILE}"


def test_map_of_several_runs(client: wf.DaprWorkflowClient, stub: taskhub_grpc.TaskHubSidecarServiceStub) -> None:
    ids = [run(client, chain_wf, i) for i in range(3)]
    for iid in ids:
        assert_completed(complete(client, iid))
    m = views.workflow_map([views.graph(history(stub, iid)) for iid in ids])
    nodes = {n.id: n for n in m.nodes}
    assert m.runs == 3 and nodes["activity:first"].count == 3 and nodes["activity:first"].failure_rate == 0
    assert {(e.source, e.target, e.count, e.share) for e in m.edges} == {
        ("start", "activity:first", 3, 1.0), ("activity:first", "activity:second", 3, 1.0),
        ("activity:second", "end:completed", 3, 1.0)}
