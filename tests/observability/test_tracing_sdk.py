"""Traces end to end: a real OTLP receiver on 127.0.0.1, a durahub server exporting to it, and an app using the
official SDK with opentelemetry-sdk and opentelemetry-instrumentation-grpc (in its own process) exporting to
it too. Each scenario must come out as one trace from the app's client span through the create, orchestration
and activity spans into the user's span inside the activity, with daprd's span names and attributes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.proto")
pytest.importorskip("opentelemetry.instrumentation.grpc")

from testsupport.otlp import OtlpReceiver, ReceivedSpan  # noqa: E402
from testsupport.process import wait_until  # noqa: E402
from testsupport.server import DurahubServer, server_env  # noqa: E402

APP = Path(__file__).with_name("traced_app.py")
SERVER, CLIENT, PRODUCER, INTERNAL = 2, 3, 4, 1
ERROR = 2


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def traced_server(server_factory: Callable[..., DurahubServer], receiver: OtlpReceiver,
                  monkeypatch: pytest.MonkeyPatch) -> DurahubServer:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # export batches every 50 ms, not every 5 s
    return server_factory(extra_args=["--otlp-endpoint", receiver.endpoint])


def run_app(server: DurahubServer, receiver: OtlpReceiver, scenario: str, tmp: Path,
            stop_file: Path | None = None) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    result = tmp / f"{scenario}.json"
    env = server_env()
    env.update(server.sdk_env())
    args = [sys.executable, str(APP), scenario, receiver.endpoint, str(result)]
    if stop_file is not None:
        args.append(str(stop_file))
    log = open(tmp / f"{scenario}-app.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: result.exists() or proc.poll() is not None, timeout=60)
    except Exception:
        proc.kill()
        raise
    if not result.exists():
        raise AssertionError(f"app failed: {(tmp / f'{scenario}-app.log').read_text()}")
    return proc, json.loads(result.read_text())


def finish(proc: subprocess.Popen[bytes], tmp: Path, scenario: str) -> None:
    try:
        rc = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, (tmp / f"{scenario}-app.log").read_text()


def in_trace(spans: list[ReceivedSpan], trace_id: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id]


def one(spans: list[ReceivedSpan], name: str, **where: object) -> ReceivedSpan:
    found = [s for s in spans if s.name == name and all(getattr(s, k) == v for k, v in where.items())]
    assert len(found) == 1, f"{name} {where}: {len(found)} found among {sorted(s.name for s in spans)}"
    return found[0]


def children(spans: list[ReceivedSpan], parent: ReceivedSpan, name: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.parent_span_id == parent.span_id and s.name == name]


def assert_create_path(spans: list[ReceivedSpan], workflow: str, instance_id: str) -> ReceivedSpan:
    """client-span → (gRPC client span) → StartInstance server span → create_orchestration → orchestration;
    returns the orchestration span."""
    client = one(spans, "client-span")
    server = one(spans, "/TaskHubSidecarService/StartInstance", kind=SERVER)
    by_id = {s.span_id: s for s in spans}
    ancestor = by_id.get(server.parent_span_id)
    while ancestor is not None and ancestor is not client:
        ancestor = by_id.get(ancestor.parent_span_id)
    assert ancestor is client, "the server span does not descend from the client's span"
    create = one(spans, f"create_orchestration||{workflow}")
    assert create.parent_span_id == server.span_id and create.kind == CLIENT
    assert create.attributes == {"durabletask.type": "orchestration", "durabletask.task.name": workflow,
                                 "durabletask.task.instance_id": instance_id}
    orchestration = one(spans, f"orchestration||{workflow}")
    assert orchestration.parent_span_id == create.span_id and orchestration.kind == SERVER
    assert orchestration.attributes["durabletask.task.instance_id"] == instance_id
    assert orchestration.attributes["durabletask.type"] == "orchestration"
    return orchestration


def assert_activities(spans: list[ReceivedSpan], orchestration: ReceivedSpan, count: int,
                      name: str = "work") -> list[ReceivedSpan]:
    """`count` activity spans under the orchestration, each holding the SDK's span and the user's span."""
    activities = children(spans, orchestration, f"activity||{name}")
    assert len(activities) == count, sorted(s.name for s in spans)
    for act in activities:
        assert act.kind == SERVER and act.attributes["durabletask.type"] == "activity"
        assert act.attributes["durabletask.task.name"] == name
        assert act.attributes["durabletask.task.instance_id"] == orchestration.attributes["durabletask.task.instance_id"]
        assert isinstance(act.attributes["durabletask.task.task_id"], int)
        [sdk_span] = children(spans, act, f"activity: {name}")
        [user] = children(spans, sdk_span, "user-span")
        assert user.service == "traced-app"
    return activities


def complete_trace(receiver: OtlpReceiver, trace_id: str, orchestration: str, users: int) -> list[ReceivedSpan]:
    def ready(spans: list[ReceivedSpan]) -> bool:
        mine = in_trace(spans, trace_id)
        return any(s.name == orchestration for s in mine) and sum(s.name == "user-span" for s in mine) >= users

    return in_trace(receiver.wait_for(ready), trace_id)


def test_chain_is_one_trace_into_the_user_span(traced_server: DurahubServer, receiver: OtlpReceiver,
                                               tmp_path: Path) -> None:
    proc, ids = run_app(traced_server, receiver, "chain", tmp_path)
    finish(proc, tmp_path, "chain")
    spans = complete_trace(receiver, ids["trace_id"], "orchestration||chain", 3)
    orchestration = assert_create_path(spans, "chain", ids["instance_id"])
    assert orchestration.attributes["durabletask.runtime_status"] == "COMPLETED"
    assert orchestration.status_code != ERROR
    activities = assert_activities(spans, orchestration, 3)
    assert sorted(a.attributes["durabletask.task.task_id"] for a in activities) == [1, 2, 3]  # the event ids
    # The orchestration span covers its activities.
    assert all(orchestration.start_ns <= a.start_ns and a.end_ns <= orchestration.end_ns for a in activities)
    # The history carries the trace fields: the start event its parent and its span id, each scheduled task
    # the orchestration span.
    history = httpx.get(f"{traced_server.http_url}/durahub/v1/instances/{ids['instance_id']}",
                        timeout=10).json()["history"]
    started = next(e["details"] for e in history if e["kind"] == "executionStarted")
    assert started["workflowSpanID"] == orchestration.span_id
    assert started["parentTraceContext"]["traceParent"].split("-")[1] == ids["trace_id"]
    scheduled = [e["details"] for e in history if e["kind"] == "taskScheduled"]
    assert [t["parentTraceContext"]["traceParent"].split("-")[2] for t in scheduled] == [orchestration.span_id] * 3


def test_fan_out(traced_server: DurahubServer, receiver: OtlpReceiver, tmp_path: Path) -> None:
    proc, ids = run_app(traced_server, receiver, "fanout", tmp_path)
    finish(proc, tmp_path, "fanout")
    spans = complete_trace(receiver, ids["trace_id"], "orchestration||fanout", 3)
    assert_activities(spans, assert_create_path(spans, "fanout", ids["instance_id"]), 3)


def test_child_workflow_nests_under_its_parent(traced_server: DurahubServer, receiver: OtlpReceiver,
                                               tmp_path: Path) -> None:
    proc, ids = run_app(traced_server, receiver, "child", tmp_path)
    finish(proc, tmp_path, "child")

    def ready(spans: list[ReceivedSpan]) -> bool:
        names = [s.name for s in in_trace(spans, ids["trace_id"])]
        return "orchestration||parent" in names and "user-span" in names

    spans = in_trace(receiver.wait_for(ready), ids["trace_id"])
    parent = assert_create_path(spans, "parent", ids["instance_id"])
    [child] = children(spans, parent, "orchestration||child")
    assert child.attributes["durabletask.task.instance_id"] == f"{ids['instance_id']}-child"
    assert not any(s.name == "create_orchestration||child" for s in spans)  # as daprd: children have none
    assert_activities(spans, child, 1)


def test_timer_span(traced_server: DurahubServer, receiver: OtlpReceiver, tmp_path: Path) -> None:
    proc, ids = run_app(traced_server, receiver, "timer", tmp_path)
    finish(proc, tmp_path, "timer")
    spans = complete_trace(receiver, ids["trace_id"], "orchestration||timer", 1)
    orchestration = assert_create_path(spans, "timer", ids["instance_id"])
    [timer] = children(spans, orchestration, "timer")
    assert timer.kind == INTERNAL
    assert timer.attributes["durabletask.type"] == "timer"
    assert timer.attributes["durabletask.task.instance_id"] == ids["instance_id"]
    assert timer.attributes["durabletask.fire_at"].endswith("Z")
    assert timer.end_ns - timer.start_ns >= 150_000_000  # from creation to firing (a 200 ms timer)
    assert_activities(spans, orchestration, 1)


def test_external_event(traced_server: DurahubServer, receiver: OtlpReceiver, tmp_path: Path) -> None:
    proc, ids = run_app(traced_server, receiver, "event", tmp_path)
    finish(proc, tmp_path, "event")
    spans = complete_trace(receiver, ids["trace_id"], "orchestration||event", 1)
    orchestration = assert_create_path(spans, "event", ids["instance_id"])
    raised = one(spans, "orchestration_event||go")
    assert raised.kind == PRODUCER
    assert raised.attributes["durabletask.event.name"] == "go"
    assert raised.attributes["durabletask.event.instance_id"] == ids["instance_id"]
    assert ("Received external event", {"name": "go", "size": 1}) in orchestration.events
    assert_activities(spans, orchestration, 1)


def test_failure_sets_error_status(traced_server: DurahubServer, receiver: OtlpReceiver, tmp_path: Path) -> None:
    proc, ids = run_app(traced_server, receiver, "failure", tmp_path)
    finish(proc, tmp_path, "failure")
    spans = complete_trace(receiver, ids["trace_id"], "orchestration||failing", 1)
    orchestration = assert_create_path(spans, "failing", ids["instance_id"])
    assert orchestration.attributes["durabletask.runtime_status"] == "FAILED"
    assert orchestration.status_code == ERROR and "boom" in orchestration.status_message
    [activity] = assert_activities(spans, orchestration, 1, name="fail")
    assert activity.status_code == ERROR and "boom" in activity.status_message


def test_continue_as_new_starts_a_fresh_trace(traced_server: DurahubServer, receiver: OtlpReceiver,
                                              tmp_path: Path) -> None:
    proc, ids = run_app(traced_server, receiver, "continue_as_new", tmp_path)
    finish(proc, tmp_path, "continue_as_new")

    def generations(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
        return [s for s in spans if s.name == "orchestration||looping"
                and s.attributes.get("durabletask.task.instance_id") == ids["instance_id"]]

    spans = receiver.wait_for(lambda ss: len(generations(ss)) >= 2 and
                              sum(s.name == "user-span" for s in ss if s.trace_id in
                                  {g.trace_id for g in generations(ss)}) >= 2)
    gens = sorted(generations(spans), key=lambda s: s.start_ns)
    assert [g.attributes["durabletask.runtime_status"] for g in gens] == ["CONTINUED_AS_NEW", "COMPLETED"]
    assert gens[0].trace_id == ids["trace_id"]  # the first generation is in the caller's trace
    assert gens[1].trace_id != gens[0].trace_id  # the next one is a root of its own (dapr/dapr#10064)
    for g in gens:
        assert_activities(in_trace(spans, g.trace_id), g, 1)


def test_orchestration_span_survives_kill_and_restart(traced_server: DurahubServer, receiver: OtlpReceiver,
                                                      tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    proc, ids = run_app(traced_server, receiver, "restart", tmp_path, stop_file=stop)
    iid = ids["instance_id"]
    try:
        def waiting_for_event() -> bool:
            r = httpx.get(f"{traced_server.http_url}/durahub/v1/instances/{iid}", timeout=10)
            return r.status_code == 200 and any(e["kind"] == "taskCompleted" for e in r.json().get("history", []))

        wait_until(waiting_for_event, timeout=30)
        # Spans are exported in batches: one still in the engine's memory at kill -9 is lost (as with daprd).
        # This test is about the orchestration span surviving the restart, so the first activity's span is let
        # out before the kill.
        receiver.wait_for(lambda ss: any(s.name == "activity||work" and s.trace_id == ids["trace_id"] for s in ss))
        traced_server.kill()  # kill -9
        traced_server.start()
        r = httpx.post(f"{traced_server.http_url}/v1.0/workflows/dapr/{iid}/raiseEvent/go", json=1, timeout=10)
        assert r.status_code == 202
        wait_until(lambda: httpx.get(f"{traced_server.http_url}/v1.0/workflows/dapr/{iid}",
                                     timeout=10).json().get("runtimeStatus") == "COMPLETED", timeout=30)
    finally:
        stop.touch()
        finish(proc, tmp_path, "restart")
    spans = complete_trace(receiver, ids["trace_id"], "orchestration||restartable", 2)
    orchestration = assert_create_path(spans, "restartable", iid)
    # Both activities, before and after the restart, ran under the one orchestration span...
    assert_activities(spans, orchestration, 2)
    # ...whose id is the workflowSpanID persisted on the execution's start event.
    history = httpx.get(f"{traced_server.http_url}/durahub/v1/instances/{iid}", timeout=10).json()["history"]
    started = next(e for e in history if e["kind"] == "executionStarted")
    assert orchestration.span_id in json.dumps(started)


def test_no_tracing_without_an_endpoint(server_factory: Callable[..., DurahubServer], receiver: OtlpReceiver,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing off: the engine writes no trace field, so the SDK's activity span starts its own trace."""
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    plain = server_factory()
    proc, ids = run_app(plain, receiver, "chain", tmp_path)
    finish(proc, tmp_path, "chain")
    spans = receiver.wait_for(lambda ss: len([s for s in ss if s.name == "activity: work"
                                              and s.attributes.get("dapr.ext.workflow._durabletask.task.instance_id",
                                                                   ids["instance_id"]) == ids["instance_id"]]) >= 3)
    mine = in_trace(spans, ids["trace_id"])
    assert not any(s.name.startswith(("create_orchestration", "orchestration", "activity||")) for s in mine)
    history = httpx.get(f"{plain.http_url}/durahub/v1/instances/{ids['instance_id']}", timeout=10).json()
    assert "parentTraceContext" not in json.dumps(history) and "workflowSpanID" not in json.dumps(history)
    assert os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") is None
