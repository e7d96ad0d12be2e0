"""Dapr's workflow HTTP API (spec §5): every route and every error row on all three prefixes, and the seed
documents' exact `curl` sequences (run with the real curl binary) against a real engine and SDK worker."""

from __future__ import annotations

import json
import shutil
import subprocess

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import new_id
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("runtime")]
PREFIXES = ["/v1.0-alpha1", "/v1.0-beta1", "/v1.0"]


def price(ctx: wf.WorkflowActivityContext, order: dict) -> float:
    return round(order["Quantity"] * order["TotalCost"], 2)


def OrderProcessingWorkflow(ctx: wf.DaprWorkflowContext, order: dict):  # noqa: N802 - the seeds' name
    """003's async request-reply order (completes by itself) or 002's order (waits for a review event)."""
    if isinstance(order, dict) and "Name" in order:
        total = yield ctx.call_activity(price, input=order)
        return {"item": order["Name"], "total": total}
    ctx.set_custom_status("awaiting review")
    review = yield ctx.wait_for_external_event("DocumentReviewedEvent")
    return {"order": order, "review": review}


WORKFLOWS = [OrderProcessingWorkflow]
ACTIVITIES = [price]


def curl(server: DurahubServer, *args: str) -> tuple[int, str]:
    """Run a seed's curl line against this server (port 3500 in the documents)."""
    argv = [a.replace("http://localhost:3500", server.http_url) for a in args]
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *argv], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def _get(server: DurahubServer, iid: str, prefix: str = "/v1.0") -> dict:
    r = server.http_get(f"{prefix}/workflows/dapr/{iid}")
    assert r.status_code == 200, r.text
    return r.json()


def _wait(server: DurahubServer, iid: str, status: str, prefix: str = "/v1.0") -> dict:
    return wait_until(lambda: (b := _get(server, iid, prefix))["runtimeStatus"] == status and b, timeout=20,
                      message=f"{iid} never reached {status}")


@needs_curl
def test_seed_async_request_reply_curl_sequence(server: DurahubServer) -> None:
    iid = f"12345678{new_id('')[-6:]}"
    code, body = curl(server, "-X", "POST",
                      f"http://localhost:3500/v1.0-beta1/workflows/dapr/OrderProcessingWorkflow/start?instanceID={iid}",
                      "-d", '{"Name":"Paperclips","Quantity":1,"TotalCost":9.95}')
    assert code == 202 and json.loads(body) == {"instanceID": iid}

    def poll() -> dict | None:
        code, body = curl(server, f"http://localhost:3500/v1.0-beta1/workflows/dapr/{iid}")
        assert code == 200
        doc = json.loads(body)
        assert doc["instanceID"] == iid and doc["workflowName"] == "OrderProcessingWorkflow"
        assert json.loads(doc["properties"]["dapr.workflow.input"]) == {"Name": "Paperclips", "Quantity": 1,
                                                                         "TotalCost": 9.95}
        return doc if doc["runtimeStatus"] == "COMPLETED" else None

    doc = wait_until(poll, timeout=20, message="async order never completed")
    assert json.loads(doc["properties"]["dapr.workflow.output"]) == {"item": "Paperclips", "total": 9.95}
    assert doc["createdAt"].endswith("Z") and doc["lastUpdatedAt"] >= doc["createdAt"]


@needs_curl
def test_seed_management_curl_sequence(server: DurahubServer) -> None:
    suffix = new_id("")[-6:]
    order = f"order-12345-{suffix}"
    code, body = curl(server, "-X", "POST", "-H", "Content-Type: application/json", "-d",
                      '{"input": {"customer_id": "cust-789", "items": [{"id": "item-abc", "quantity": 2}]}}',
                      f"http://localhost:3500/v1.0-alpha1/workflows/dapr/OrderProcessingWorkflow/start?instanceID={order}")
    assert code == 202 and json.loads(body) == {"instanceID": order}
    doc = _wait(server, order, "RUNNING", "/v1.0-alpha1")
    assert "awaiting review" in doc["properties"]["dapr.workflow.custom_status"]

    assert curl(server, "-X", "POST", f"http://localhost:3500/v1.0-alpha1/workflows/dapr/{order}/pause")[0] == 202
    _wait(server, order, "SUSPENDED", "/v1.0-alpha1")
    assert curl(server, "-X", "POST", f"http://localhost:3500/v1.0-alpha1/workflows/dapr/{order}/resume")[0] == 202
    _wait(server, order, "RUNNING", "/v1.0-alpha1")
    code, _ = curl(server, "-X", "POST", "-H", "Content-Type: application/json", "-d",
                   '{"approved": true, "comments": "Looks good!", "approver_id": "manager_jane"}',
                   f"http://localhost:3500/v1.0-alpha1/workflows/dapr/{order}/raiseEvent/DocumentReviewedEvent")
    assert code == 202
    doc = _wait(server, order, "COMPLETED", "/v1.0-alpha1")
    assert json.loads(doc["properties"]["dapr.workflow.output"]) == {
        "order": {"input": {"customer_id": "cust-789", "items": [{"id": "item-abc", "quantity": 2}]}},
        "review": {"approved": True, "comments": "Looks good!", "approver_id": "manager_jane"},
    }
    assert curl(server, "-X", "POST", f"http://localhost:3500/v1.0-alpha1/workflows/dapr/{order}/purge")[0] == 202
    code, body = curl(server, f"http://localhost:3500/v1.0-alpha1/workflows/dapr/{order}")
    assert code == 404 and json.loads(body)["errorCode"] == "ERR_INSTANCE_ID_NOT_FOUND"

    campaign = f"campaign-fall-sale-002-{suffix}"
    assert server.http_post("/v1.0-alpha1/workflows/dapr/OrderProcessingWorkflow/start",
                            params={"instanceID": campaign}, content=b"{}").status_code == 202
    _wait(server, campaign, "RUNNING")
    code, _ = curl(server, "-X", "POST", f"http://localhost:3500/v1.0-alpha1/workflows/dapr/{campaign}/terminate")
    assert code == 202
    _wait(server, campaign, "TERMINATED")


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_route_on_every_prefix(server: DurahubServer, prefix: str) -> None:
    iid = new_id("route")
    base = f"{prefix}/workflows/dapr"
    r = server.http_post(f"{base}/OrderProcessingWorkflow/start", params={"instanceID": iid}, content=b'{"n": 1}')
    assert r.status_code == 202 and r.json() == {"instanceID": iid}
    assert r.headers["location"].endswith(f"{prefix}/workflows/dapr/{iid}")
    _wait(server, iid, "RUNNING", prefix)
    for op, status in (("pause", "SUSPENDED"), ("resume", "RUNNING")):
        r = server.http_post(f"{base}/{iid}/{op}")
        assert r.status_code == 202 and r.json() == {}
        _wait(server, iid, status, prefix)
    r = server.http_post(f"{base}/{iid}/raiseEvent/DocumentReviewedEvent", content=b'"ok"')
    assert r.status_code == 202
    done = _wait(server, iid, "COMPLETED", prefix)
    assert json.loads(done["properties"]["dapr.workflow.output"]) == {"order": {"n": 1}, "review": "ok"}
    # Operations on a finished instance are accepted and change nothing.
    for op in ("pause", "resume", "terminate", "raiseEvent/late"):
        assert server.http_post(f"{base}/{iid}/{op}").status_code == 202
    assert _get(server, iid, prefix)["runtimeStatus"] == "COMPLETED"
    assert server.http_post(f"{base}/{iid}/purge").status_code == 202
    assert server.http_get(f"{base}/{iid}").status_code == 404

    term = new_id("term")
    assert server.http_post(f"{base}/OrderProcessingWorkflow/start", params={"instanceID": term}).status_code == 202
    _wait(server, term, "RUNNING", prefix)
    assert server.http_post(f"{base}/{term}/terminate").status_code == 202
    _wait(server, term, "TERMINATED", prefix)


def _error(r, status: int, code: str, message: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["errorCode"] == code, body
    if message is not None:
        assert body["message"] == message, body


@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_error_row_on_every_prefix(server: DurahubServer, prefix: str) -> None:
    base = f"{prefix}/workflows/dapr"
    ghost = new_id("ghost")
    _error(server.http_get(f"{base}/{ghost}"), 404, "ERR_INSTANCE_ID_NOT_FOUND",
           f"unable to find workflow with the provided instance ID: {ghost}")
    _error(server.http_post(f"{base}/{ghost}/terminate"), 404, "ERR_INSTANCE_ID_NOT_FOUND")
    _error(server.http_post(f"{base}/{ghost}/purge"), 404, "ERR_INSTANCE_ID_NOT_FOUND")
    _error(server.http_post(f"{base}/{ghost}/raiseEvent/e"), 500, "ERR_RAISE_EVENT_WORKFLOW")
    _error(server.http_post(f"{base}/{ghost}/pause"), 500, "ERR_PAUSE_WORKFLOW")
    _error(server.http_post(f"{base}/{ghost}/resume"), 500, "ERR_RESUME_WORKFLOW")
    _error(server.http_post(f"{base}/OrderProcessingWorkflow/start", params={"instanceID": "x" * 65}), 400,
           "ERR_INSTANCE_ID_TOO_LONG", "workflow instance ID exceeds the max length of 64 characters")
    _error(server.http_post(f"{base}/OrderProcessingWorkflow/start", params={"instanceID": "bad.id"}), 400,
           "ERR_INSTANCE_ID_INVALID",
           "workflow instance ID 'bad.id' is invalid: only alphanumeric and underscore characters are allowed")
    _error(server.http_post(f"{base}//start"), 400, "ERR_WORKFLOW_NAME_MISSING", "workflow name is not configured")
    _error(server.http_get(f"{base}/"), 400, "ERR_INSTANCE_ID_PROVIDED_MISSING", "no instance ID was provided")
    _error(server.http_post(f"{base}//pause"), 400, "ERR_INSTANCE_ID_PROVIDED_MISSING")
    for ghost_op in ("pause", "resume", "terminate", "purge", "raiseEvent/e"):
        assert server.http_get(f"{base}/{ghost}").status_code == 404, ghost_op  # nothing was created

    running = new_id("busy")
    assert server.http_post(f"{base}/OrderProcessingWorkflow/start", params={"instanceID": running},
                            content=b'{"v": 1}').status_code == 202
    before = _wait(server, running, "RUNNING", prefix)
    _error(server.http_post(f"{base}/{running}/raiseEvent/"), 400, "ERR_WORKFLOW_EVENT_NAME_MISSING",
           "missing workflow event name")
    r = server.http_post(f"{base}/OrderProcessingWorkflow/start", params={"instanceID": running}, content=b"{}")
    _error(r, 500, "ERR_START_WORKFLOW")
    assert f"an active workflow with ID '{running}' already exists" in r.json()["message"]
    r = server.http_post(f"{base}/{running}/purge")
    _error(r, 500, "ERR_PURGE_WORKFLOW")
    assert "has not yet completed" in r.json()["message"]
    big = b'"' + b"x" * (4 * 1024 * 1024 + 10) + b'"'
    r = server.http_post(f"{base}/{running}/raiseEvent/DocumentReviewedEvent", content=big)
    assert r.status_code == 413 and r.json()["errorCode"] == "ERR_BODY_TOO_LARGE"
    r = server.http_post(f"{base}/OrderProcessingWorkflow/start", params={"instanceID": new_id("big")}, content=big)
    assert r.status_code == 413
    after = _get(server, running, prefix)
    assert after["runtimeStatus"] == "RUNNING" and after["properties"] == before["properties"]
    assert server.http_post(f"{base}/{running}/terminate").status_code == 202
