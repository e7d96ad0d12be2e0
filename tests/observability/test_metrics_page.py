"""`GET /metrics` after known workloads: Dapr's `dapr_runtime_workflow_*` series with its names, labels and
status values, durahub's own series, and an exposition that Prometheus's `promtool check metrics` parses."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import dapr.ext.workflow as wf
import grpc
import httpx
import pytest

from testsupport.process import free_port, wait_until
from testsupport.sdk import complete, new_id, wait_for_status
from testsupport.server import DurahubServer

parser = pytest.importorskip("prometheus_client.parser")

DAPR_SERIES = [
    "dapr_runtime_workflow_operation_count", "dapr_runtime_workflow_operation_latency",
    "dapr_runtime_workflow_execution_count", "dapr_runtime_workflow_execution_latency",
    "dapr_runtime_workflow_scheduling_latency",
    "dapr_runtime_workflow_activity_operation_count", "dapr_runtime_workflow_activity_operation_latency",
    "dapr_runtime_workflow_activity_execution_count", "dapr_runtime_workflow_activity_execution_latency",
]
# Dapr's default latency buckets (ms).
DAPR_BUCKETS = ["1", "2", "3", "4", "5", "6", "8", "10", "13", "16", "20", "25", "30", "40", "50", "65", "80",
                "100", "130", "160", "200", "250", "300", "400", "500", "650", "800", "1000", "2000", "5000",
                "10000", "20000", "50000", "100000", "+Inf"]


def ok(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


def broken(ctx: wf.WorkflowActivityContext, x: int) -> int:
    raise ValueError("no")


def hello(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(ok, input=x))


def failing(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(broken, input=x))


def waiter(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    return (yield ctx.wait_for_external_event("go"))


WORKFLOWS = [hello, failing, waiter]
ACTIVITIES = [ok, broken]


def scrape(url: str) -> str:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return r.text


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in parser.text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """A sample's value (0 when absent). prometheus_client's parser reports counters as `<name>_total`; the
    exposition's own names are checked on the text itself."""
    key = frozenset(labels.items())
    return found.get((name, key), found.get((name + "_total", key), 0.0))


def test_dapr_series_after_known_workloads(server: DurahubServer, runtime: wf.WorkflowRuntime,
                                           client: wf.DaprWorkflowClient) -> None:
    base = {"app_id": "durahub", "namespace": "default"}
    for _ in range(2):
        complete(client, client.schedule_new_workflow(hello, input=1, instance_id=new_id("hello")))
    failed = client.schedule_new_workflow(failing, input=1, instance_id=new_id("failing"))
    assert complete(client, failed).runtime_status == wf.WorkflowStatus.FAILED
    raised = client.schedule_new_workflow(waiter, input=1, instance_id=new_id("raised"))
    wait_for_status(client, raised, wf.WorkflowStatus.RUNNING)
    client.raise_workflow_event(raised, "go", data=1)
    complete(client, raised)
    stopped = client.schedule_new_workflow(waiter, input=1, instance_id=new_id("stopped"))
    wait_for_status(client, stopped, wf.WorkflowStatus.RUNNING)
    client.terminate_workflow(stopped)
    complete(client, stopped)
    client.purge_workflow(stopped)

    text = scrape(f"{server.http_url}/metrics")
    found = samples(text)
    for name in DAPR_SERIES:
        assert f"# TYPE {name} " in text, name
    assert "_total" not in text.replace("durahub_lease_takeovers_total", "")  # Dapr's names, as daprd has them
    op = "dapr_runtime_workflow_operation_count"
    assert value(found, op, **base, operation="create_workflow", status="success") == 5
    assert value(found, op, **base, operation="add_event", status="success") == 1
    assert value(found, op, **base, operation="purge_workflow", status="success") == 1
    assert value(found, op, **base, operation="get_workflow", status="success") >= 1
    ex = "dapr_runtime_workflow_execution_count"
    assert value(found, ex, **base, workflow_name="hello", status="success") == 2
    assert value(found, ex, **base, workflow_name="failing", status="failed") == 1
    assert value(found, ex, **base, workflow_name="waiter", status="success") == 1
    assert value(found, ex, **base, workflow_name="waiter", status="terminated") == 1
    act = "dapr_runtime_workflow_activity_execution_count"
    assert value(found, act, **base, activity_name="ok", status="success") == 2
    assert value(found, act, **base, activity_name="broken", status="failed") == 1
    assert value(found, "dapr_runtime_workflow_activity_operation_count", **base, activity_name="ok",
                 status="success") == 2
    assert value(found, "dapr_runtime_workflow_execution_latency_count", **base, workflow_name="hello",
                 status="success") == 2
    assert value(found, "dapr_runtime_workflow_scheduling_latency_count", **base, workflow_name="hello") == 2
    # Dapr's buckets, exactly.
    les = [dict(labels)["le"] for (name, labels) in found
           if name == "dapr_runtime_workflow_execution_latency_bucket"
           and dict(labels).get("workflow_name") == "hello"]
    assert sorted(les, key=lambda b: float(b)) == DAPR_BUCKETS
    ratio = [dict(labels)["le"] for (name, labels) in found if name == "dapr_runtime_workflow_payload_size_ratio_bucket"
             and dict(labels).get("workflow_name") == "hello"]
    assert sorted(ratio, key=float) == ["0.1", "0.25", "0.5", "0.75", "0.9", "0.95", "0.99", "1", "1.5", "2",
                                        "+Inf"]
    # durahub's own: what the store and the engine hold now.
    assert value(found, "durahub_instances", status="COMPLETED") == 3
    assert value(found, "durahub_instances", status="FAILED") == 1
    assert value(found, "durahub_connected_workers", app_id="durahub") >= 1
    assert value(found, "durahub_pending_activities") == 0
    assert value(found, "durahub_turn_latency_ms_count", app_id="durahub") >= 10
    assert value(found, "durahub_store_commit_latency_ms_count") >= 10


def test_pending_work_is_visible(server_factory: Callable[..., DurahubServer]) -> None:
    """Work nobody takes (no worker connected): an instance pending, its age growing, no worker."""
    srv = server_factory()
    iid = new_id("queued")
    r = httpx.post(f"{srv.http_url}/v1.0/workflows/dapr/nobody/start?instanceID={iid}", json=1, timeout=10)
    assert r.status_code == 202

    def aged() -> Any:
        found = samples(scrape(f"{srv.http_url}/metrics"))
        return found if value(found, "durahub_oldest_pending_work_age_seconds") > 0.2 else None

    found = wait_until(aged, timeout=10)
    assert value(found, "durahub_instances", status="PENDING") == 1
    assert value(found, "durahub_connected_workers", app_id="durahub") == 0


def test_namespace_label_comes_from_the_namespace_variable(server_factory: Callable[..., DurahubServer],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """As daprd: NAMESPACE (set on the sidecar in Kubernetes) is every Dapr series' `namespace` label."""
    monkeypatch.setenv("NAMESPACE", "shop-prod")
    srv = server_factory()
    r = httpx.post(f"{srv.http_url}/v1.0/workflows/dapr/nobody/start?instanceID={new_id('ns')}", json=1, timeout=10)
    assert r.status_code == 202
    found = samples(scrape(f"{srv.http_url}/metrics"))
    op = "dapr_runtime_workflow_operation_count"
    assert value(found, op, app_id="durahub", namespace="shop-prod", operation="create_workflow", status="success") == 1
    assert value(found, op, app_id="durahub", namespace="default", operation="create_workflow", status="success") == 0


def test_metrics_port_and_promtool(server_factory: Callable[..., DurahubServer]) -> None:
    port = free_port()
    srv = server_factory(extra_args=["--metrics-port", str(port)])
    httpx.post(f"{srv.http_url}/v1.0/workflows/dapr/nobody/start?instanceID={new_id('m')}", json=1, timeout=10)
    text = scrape(f"http://127.0.0.1:{port}/metrics")
    assert "dapr_runtime_workflow_operation_count{" in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    run = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    # Exit 1 is a parse error. Exit 3 is lint findings: the only ones allowed are on Dapr's own counter names,
    # which end in _count without _total (kept for Dapr's dashboards, as daprd exports them).
    assert run.returncode in (0, 3), run.stderr.decode() + run.stdout.decode()
    findings = [line for line in (run.stdout + run.stderr).decode().splitlines() if line.strip()]
    dapr_counters = {"dapr_runtime_workflow_operation_count", "dapr_runtime_workflow_execution_count",
                     "dapr_runtime_workflow_activity_operation_count",
                     "dapr_runtime_workflow_activity_execution_count"}
    assert all(line.split()[0] in dapr_counters for line in findings), findings


def next_item(call: Any, kind: str) -> Any:
    """The stream's next work item of `kind` (health pings and other items are skipped)."""
    for item in call:
        if item.WhichOneof("request") == kind:
            return item
    raise AssertionError(f"the stream ended before a {kind}")


def start_raw(stub: Any, pb: Any, iid: str) -> None:
    """Start `raw_wf` scheduled for now, so StartInstance returns without waiting for a first turn (the test
    plays the worker itself)."""
    start = pb.CreateInstanceRequest(instanceId=iid, name="raw_wf")
    start.scheduledStartTimestamp.FromMicroseconds(int(time.time() * 1e6))
    stub.StartInstance(start, timeout=10)


@pytest.mark.timeout(120)
def test_activity_of_a_worker_that_went_away_is_recoverable(server_factory: Callable[..., DurahubServer]) -> None:
    """As daprd: an activity attempt whose worker vanished counts as `recoverable`, its retry as `success`."""
    from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
    from dapr.ext.workflow._durabletask.internal import protos as pb

    srv = server_factory()
    iid = new_id("vanished")
    address = f"127.0.0.1:{srv.grpc_port}"
    # A channel per worker: closing one ends its stream (the SDK's grpc instrumentation hides cancel()).
    with grpc.insecure_channel(address) as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        start_raw(stub, pb, iid)
        first = stub.GetWorkItems(pb.GetWorkItemsRequest())
        turn = next_item(first, "workflowRequest")
        answer = pb.WorkflowResponse(instanceId=iid, completionToken=turn.completionToken)
        answer.actions.add(id=1).scheduleTask.name = "act"
        stub.CompleteOrchestratorTask(answer, timeout=10)
        next_item(first, "activityRequest")
    # the first worker has gone away holding the activity
    with grpc.insecure_channel(address) as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        item = next_item(stub.GetWorkItems(pb.GetWorkItemsRequest()), "activityRequest")
        done = pb.ActivityResponse(instanceId=iid, taskId=item.activityRequest.taskId,
                                   completionToken=item.completionToken)
        done.result.value = "1"
        stub.CompleteActivityTask(done, timeout=10)
    found = samples(scrape(f"{srv.http_url}/metrics"))
    act = "dapr_runtime_workflow_activity_execution_count"
    base = {"app_id": "durahub", "namespace": "default", "activity_name": "act"}
    assert value(found, act, **base, status="recoverable") == 1
    assert value(found, act, **base, status="success") == 1
    assert value(found, "dapr_runtime_workflow_activity_operation_count", **base, status="success") == 2


@pytest.mark.timeout(120)
def test_turn_of_a_worker_that_went_away_is_recoverable(server_factory: Callable[..., DurahubServer]) -> None:
    """As daprd: a workflow turn whose worker vanished before answering counts as a `recoverable` execution;
    the turn runs again on the next worker and the execution ends as `success`."""
    from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
    from dapr.ext.workflow._durabletask.internal import protos as pb

    srv = server_factory()
    iid = new_id("dropped")
    address = f"127.0.0.1:{srv.grpc_port}"
    with grpc.insecure_channel(address) as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        start_raw(stub, pb, iid)
        next_item(stub.GetWorkItems(pb.GetWorkItemsRequest()), "workflowRequest")
    # the first worker has gone away holding the turn: the engine hands it to the next one
    with grpc.insecure_channel(address) as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        items = stub.GetWorkItems(pb.GetWorkItemsRequest())  # open until the turn's answer is in
        turn = next_item(items, "workflowRequest")
        answer = pb.WorkflowResponse(instanceId=iid, completionToken=turn.completionToken)
        answer.actions.add(id=1).completeWorkflow.workflowStatus = pb.ORCHESTRATION_STATUS_COMPLETED
        stub.CompleteOrchestratorTask(answer, timeout=10)
        wait_until(lambda: httpx.get(f"{srv.http_url}/v1.0/workflows/dapr/{iid}", timeout=10).json()
                   .get("runtimeStatus") == "COMPLETED", timeout=30)
    found = samples(scrape(f"{srv.http_url}/metrics"))
    execution = "dapr_runtime_workflow_execution_count"
    base = {"app_id": "durahub", "namespace": "default", "workflow_name": "raw_wf"}
    assert value(found, execution, **base, status="recoverable") == 1
    assert value(found, execution, **base, status="success") == 1
