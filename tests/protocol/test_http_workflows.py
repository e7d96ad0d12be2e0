"""Dapr workflow HTTP API (spec §5): /v1.0/workflows/{component}/... driven with httpx, the
workflows themselves executed by the SDK worker."""

from __future__ import annotations

import json

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
from testsupport.sdk import new_id
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(60), pytest.mark.usefixtures("runtime")]


def http_wf(ctx: wf.DaprWorkflowContext, order: dict):
    ctx.set_custom_status("waiting")
    decision = yield ctx.wait_for_external_event("decision")
    return {"order": order, "decision": decision}


WORKFLOWS = [http_wf]

BASE = "/v1.0/workflows/dapr"


def _get(server: DurahubServer, iid: str, prefix: str = "/v1.0") -> dict:
    r = server.http_get(f"{prefix}/workflows/dapr/{iid}")
    assert r.status_code == 200, r.text
    return r.json()


def _wait_http_status(server: DurahubServer, iid: str, status: str, timeout: float = 15) -> dict:
    def check():
        body = _get(server, iid)
        return body if body.get("runtimeStatus") == status else None

    return wait_until(check, timeout=timeout, message=f"{iid} never reached {status} over HTTP")


def test_start_raise_get_over_http(server: DurahubServer) -> None:
    iid = new_id("http")
    r = server.http_post(f"{BASE}/http_wf/start", params={"instanceID": iid}, content=b'{"item": "book"}')
    assert r.status_code == 202, r.text
    assert r.json() == {"instanceID": iid}
    body = wait_until(
        lambda: (
            (b := _get(server, iid)).get("properties", {}).get("dapr.workflow.custom_status") == "waiting"
            and b
        ),
        timeout=15,
        message="workflow started over HTTP never ran",
    )
    assert body["instanceID"] == iid
    assert body["workflowName"] == "http_wf"
    assert body["runtimeStatus"] == "RUNNING"
    assert json.loads(body["properties"]["dapr.workflow.input"]) == {"item": "book"}

    r = server.http_post(f"{BASE}/{iid}/raiseEvent/decision", content=b'"yes"')
    assert r.status_code == 202, r.text
    body = _wait_http_status(server, iid, "COMPLETED")
    out = json.loads(body["properties"]["dapr.workflow.output"])
    assert out == {"order": {"item": "book"}, "decision": "yes"}
    assert "createdAt" in body and "lastUpdatedAt" in body


def test_start_generates_id_when_missing(server: DurahubServer) -> None:
    r = server.http_post(f"{BASE}/http_wf/start", content=b"{}")
    assert r.status_code == 202, r.text
    iid = r.json()["instanceID"]
    assert iid
    _wait_http_status(server, iid, "RUNNING")
    r = server.http_post(f"{BASE}/{iid}/terminate")
    assert r.status_code == 202, r.text
    _wait_http_status(server, iid, "TERMINATED")


def test_pause_resume_terminate_purge_over_http(server: DurahubServer) -> None:
    iid = new_id("http")
    assert (
        server.http_post(f"{BASE}/http_wf/start", params={"instanceID": iid}, content=b"1").status_code == 202
    )
    _wait_http_status(server, iid, "RUNNING")
    assert server.http_post(f"{BASE}/{iid}/pause").status_code == 202
    _wait_http_status(server, iid, "SUSPENDED")
    assert server.http_post(f"{BASE}/{iid}/resume").status_code == 202
    _wait_http_status(server, iid, "RUNNING")
    # purge of a running instance fails
    r = server.http_post(f"{BASE}/{iid}/purge")
    assert r.status_code == 500, r.text
    assert r.json()["errorCode"] == "ERR_PURGE_WORKFLOW"
    assert server.http_post(f"{BASE}/{iid}/terminate").status_code == 202
    _wait_http_status(server, iid, "TERMINATED")
    assert server.http_post(f"{BASE}/{iid}/purge").status_code == 202
    r = server.http_get(f"{BASE}/{iid}")
    assert r.status_code == 404


def test_alpha_and_beta_prefixes(server: DurahubServer) -> None:
    iid = new_id("http")
    r = server.http_post(
        "/v1.0-beta1/workflows/dapr/http_wf/start", params={"instanceID": iid}, content=b'{"p": 1}'
    )
    assert r.status_code == 202, r.text
    _wait_http_status(server, iid, "RUNNING")
    assert _get(server, iid, prefix="/v1.0-alpha1")["instanceID"] == iid
    r = server.http_post(f"/v1.0-alpha1/workflows/dapr/{iid}/terminate")
    assert r.status_code == 202, r.text
    _wait_http_status(server, iid, "TERMINATED")


def test_http_errors(server: DurahubServer) -> None:
    missing = new_id("nope")
    r = server.http_get(f"{BASE}/{missing}")
    assert r.status_code == 404, r.text
    assert r.json() == {
        "errorCode": "ERR_INSTANCE_ID_NOT_FOUND",
        "message": f"unable to find workflow with the provided instance ID: {missing}",
    }
    r = server.http_post(f"{BASE}/{missing}/terminate")
    assert r.status_code == 404, r.text
    assert r.json()["errorCode"] == "ERR_INSTANCE_ID_NOT_FOUND"

    r = server.http_post(f"{BASE}/http_wf/start", params={"instanceID": "x" * 65})
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "ERR_INSTANCE_ID_TOO_LONG"
    r = server.http_post(f"{BASE}/http_wf/start", params={"instanceID": "bad.id!"})
    assert r.status_code == 400, r.text
    assert r.json()["errorCode"] == "ERR_INSTANCE_ID_INVALID"

    # duplicate start over an active id
    iid = new_id("http")
    assert server.http_post(f"{BASE}/http_wf/start", params={"instanceID": iid}).status_code == 202
    _wait_http_status(server, iid, "RUNNING")
    r = server.http_post(f"{BASE}/http_wf/start", params={"instanceID": iid})
    assert r.status_code == 500, r.text
    assert r.json()["errorCode"] == "ERR_START_WORKFLOW"
    server.http_post(f"{BASE}/{iid}/terminate")
