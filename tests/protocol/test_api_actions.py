"""The operations on one instance under /durahub/v1 (`api/actions.py`): start, raise, suspend, resume, terminate,
purge, with durahub's JSON errors. (The schema fuzz of test_api_extensions.py covers them too.)"""

from __future__ import annotations

import json

import dapr.ext.workflow as wf
import pytest

from testsupport.sdk import new_id, wait_for_status
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(90), pytest.mark.usefixtures("runtime")]
API = "/durahub/v1"


def gate_wf(ctx: wf.DaprWorkflowContext, x: object):
    got = yield ctx.wait_for_external_event("go")
    return {"input": x, "got": got}


WORKFLOWS = [gate_wf]


def test_start_raise_suspend_resume(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("act")
    r = server.http_post(f"{API}/instances", json={"workflow_name": "gate_wf", "instance_id": iid, "input": "7"})
    assert r.status_code == 202 and r.json() == {"instance_id": iid}
    again = server.http_post(f"{API}/instances", json={"workflow_name": "gate_wf", "instance_id": iid})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
    generated = server.http_post(f"{API}/instances", json={"workflow_name": "gate_wf", "start_at": "2999-01-01T00:00:00Z"})
    assert generated.status_code == 202 and len(generated.json()["instance_id"]) == 36  # a UUID
    later = server.http_get(f"{API}/instances/{generated.json()['instance_id']}").json()
    assert later["status"] == "PENDING" and later["history"] == []

    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    assert server.http_post(f"{API}/instances/{iid}/suspend", json={"reason": "hold"}).status_code == 202
    wait_for_status(client, iid, wf.WorkflowStatus.SUSPENDED)
    assert server.http_post(f"{API}/instances/{iid}/resume").status_code == 202  # the body may be left out
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    raised = server.http_post(f"{API}/instances/{iid}/raise", json={"event_name": "go", "input": '"yes"'})
    assert raised.status_code == 202 and raised.json() == {"instance_id": iid}
    done = wait_for_status(client, iid, wf.WorkflowStatus.COMPLETED)
    assert json.loads(done.serialized_output) == {"input": 7, "got": "yes"}
    history = server.http_get(f"{API}/instances/{iid}").json()["history"]
    assert next(e for e in history if e["kind"] == "executionSuspended")["details"] == {"input": "hold"}


def test_terminate_and_purge(server: DurahubServer, client: wf.DaprWorkflowClient) -> None:
    iid = new_id("act")
    assert server.http_post(f"{API}/instances", json={"workflow_name": "gate_wf", "instance_id": iid}).status_code == 202
    wait_for_status(client, iid, wf.WorkflowStatus.RUNNING)
    refused = server.http_post(f"{API}/instances/{iid}/purge")
    assert refused.status_code == 409 and "not yet completed" in refused.json()["detail"]
    r = server.http_post(f"{API}/instances/{iid}/terminate", json={"output": '"stopped"'})
    assert r.status_code == 202
    assert json.loads(wait_for_status(client, iid, wf.WorkflowStatus.TERMINATED).serialized_output) == "stopped"
    assert server.http_post(f"{API}/instances/{iid}/purge").json() == {"count": 1}
    assert server.http_get(f"{API}/instances/{iid}").status_code == 404

    active = new_id("act")
    server.http_post(f"{API}/instances", json={"workflow_name": "gate_wf", "instance_id": active})
    wait_for_status(client, active, wf.WorkflowStatus.RUNNING)
    assert server.http_post(f"{API}/instances/{active}/purge", json={"force": True}).json() == {"count": 1}


@pytest.mark.parametrize("action", ["raise", "suspend", "resume", "terminate", "purge"])
def test_unknown_instance_is_404(server: DurahubServer, action: str) -> None:
    body = {"event_name": "go"} if action == "raise" else {}
    r = server.http_post(f"{API}/instances/{new_id('nope')}/{action}", json=body)
    assert r.status_code == 404 and "detail" in r.json()


def test_invalid_requests_are_422(server: DurahubServer) -> None:
    assert server.http_post(f"{API}/instances", json={}).status_code == 422
    assert server.http_post(f"{API}/instances", json={"workflow_name": ""}).status_code == 422
    assert server.http_post(f"{API}/instances/x/raise", json={}).status_code == 422
    assert server.http_post(f"{API}/instances", json={"workflow_name": "w", "input": "a\u0000b"}).status_code == 422


def test_app_id_names_the_instances_app(server: DurahubServer) -> None:
    iid = new_id("app")
    started = server.http_post(f"{API}/instances", params={"appID": "shop"},
                               json={"workflow_name": "gate_wf", "instance_id": iid, "start_at": "2999-01-01T00:00:00Z"})
    assert started.status_code == 202
    assert server.http_get(f"{API}/instances/{iid}").status_code == 404  # not in the engine's own app
    assert server.http_get(f"{API}/instances/{iid}", params={"appID": "shop"}).json()["app_id"] == "shop"
    assert server.http_post(f"{API}/instances/{iid}/suspend").status_code == 404
    assert server.http_post(f"{API}/instances/{iid}/purge", params={"appID": "shop"},
                            json={"force": True}).json() == {"count": 1}
    assert server.http_post(f"{API}/instances", params={"appID": "not an app"},
                            json={"workflow_name": "gate_wf"}).status_code == 422
