"""Workflow management API (seed 002): every lifecycle operation against a real durahub."""

from __future__ import annotations

import time
import uuid

import pytest
from example_harness import ExampleApp

MODULE = "examples.management_api.app:app"


@pytest.fixture(scope="module")
def mgmt(launch) -> ExampleApp:
    # A short greeting (0.6 s in 3 steps) keeps the "activity running" window observable.
    return launch(MODULE, MANAGEMENT_GREETING_SECONDS="0.6", MANAGEMENT_GREETING_STEPS="3")


def suffix() -> str:
    return uuid.uuid4().hex[:12]


def start(app: ExampleApp, sfx: str, user: str = "Ada") -> str:
    r = app.post(f"/workflows/start/{sfx}", params={"user_name": user})
    assert r.status_code == 200, r.text
    assert r.json() == {"message": "Workflow scheduled successfully", "instance_id": f"iwf-{sfx}"}
    return f"iwf-{sfx}"


def wait_waiting(app: ExampleApp, iid: str) -> dict:
    return app.wait_status(f"/workflows/{iid}/status", {"waiting for approvalEvent"}, key="custom_status")


def test_start_raise_event_completes_with_event_data(mgmt: ExampleApp) -> None:
    iid = start(mgmt, suffix(), "Grace")
    st = mgmt.get(f"/workflows/{iid}/status").json()
    assert st["runtime_status"] in {"RUNNING", "PENDING"}
    assert st["workflow_name"] == "interactive_hello_workflow" and st["input"] == "Grace"
    wait_waiting(mgmt, iid)
    assert mgmt.get(f"/workflows/{iid}/status").json()["runtime_status"] == "RUNNING"
    data = {"approved": True, "comments": "Looks good!", "approver_id": "manager_jane"}
    r = mgmt.post(f"/workflows/{iid}/raise_event/approvalEvent", json=data)
    assert r.status_code == 200, r.text
    assert "approvalEvent" in r.json()["message"]
    done = mgmt.wait_status(f"/workflows/{iid}/status", "COMPLETED", timeout=10)
    assert done["output"] == {"initial_greeting": "Hello, Grace!", "event_data": data, "status": "Approved"}
    # The event is now pointless: 409, not a silent discard.
    late = mgmt.post(f"/workflows/{iid}/raise_event/approvalEvent", json=data)
    assert late.status_code == 409 and "COMPLETED" in late.json()["detail"]


def test_other_event_names_do_not_complete_it(mgmt: ExampleApp) -> None:
    iid = start(mgmt, suffix())
    wait_waiting(mgmt, iid)
    assert mgmt.post(f"/workflows/{iid}/raise_event/otherEvent", json={"x": 1}).status_code == 200
    time.sleep(0.5)
    assert mgmt.get(f"/workflows/{iid}/status").json()["runtime_status"] == "RUNNING"
    assert mgmt.post(f"/workflows/{iid}/raise_event/approvalEvent", json=[1, 2]).status_code == 200
    done = mgmt.wait_status(f"/workflows/{iid}/status", "COMPLETED", timeout=10)
    assert done["output"]["event_data"] == [1, 2]


def test_pause_resume_and_event_while_paused(mgmt: ExampleApp) -> None:
    iid = start(mgmt, suffix())
    wait_waiting(mgmt, iid)
    assert mgmt.post(f"/workflows/{iid}/resume").status_code == 409  # not paused
    r = mgmt.post(f"/workflows/{iid}/pause")
    assert r.status_code == 200 and "paused" in r.json()["message"]
    mgmt.wait_status(f"/workflows/{iid}/status", "SUSPENDED", timeout=5)
    again = mgmt.post(f"/workflows/{iid}/pause")
    assert again.status_code == 409 and "SUSPENDED" in again.json()["detail"]
    # An event raised while paused is kept, not applied.
    assert mgmt.post(f"/workflows/{iid}/raise_event/approvalEvent", json={"ok": 1}).status_code == 200
    time.sleep(0.5)
    held = mgmt.get(f"/workflows/{iid}/status").json()
    assert held["runtime_status"] == "SUSPENDED" and held["output"] is None
    assert mgmt.post(f"/workflows/{iid}/purge").status_code == 409  # not finished
    r = mgmt.post(f"/workflows/{iid}/resume")
    assert r.status_code == 200 and "resumed" in r.json()["message"]
    done = mgmt.wait_status(f"/workflows/{iid}/status", "COMPLETED", timeout=10)
    assert done["output"]["event_data"] == {"ok": 1}


def test_pause_during_the_activity(mgmt: ExampleApp) -> None:
    iid = start(mgmt, suffix())
    assert mgmt.post(f"/workflows/{iid}/pause").status_code == 200
    mgmt.wait_status(f"/workflows/{iid}/status", "SUSPENDED", timeout=5)
    time.sleep(1.0)  # the greeting activity finishes meanwhile; the workflow must not move on
    assert mgmt.get(f"/workflows/{iid}/status").json()["custom_status"] == "greeting"
    assert mgmt.post(f"/workflows/{iid}/resume").status_code == 200
    wait_waiting(mgmt, iid)


def test_terminate_then_purge_then_404_and_409(mgmt: ExampleApp) -> None:
    iid = start(mgmt, suffix())
    wait_waiting(mgmt, iid)
    r = mgmt.post(f"/workflows/{iid}/terminate")
    assert r.status_code == 200 and "terminated" in r.json()["message"]
    st = mgmt.wait_status(f"/workflows/{iid}/status", "TERMINATED", timeout=5)
    assert st["output"] is None
    for action in ("pause", "resume", "terminate"):
        c = mgmt.post(f"/workflows/{iid}/{action}")
        assert c.status_code == 409 and "TERMINATED" in c.json()["detail"], (action, c.text)

    r = mgmt.post(f"/workflows/{iid}/purge")
    assert r.status_code == 200 and "purged" in r.json()["message"]
    gone = mgmt.get(f"/workflows/{iid}/status")
    assert gone.status_code == 404 and "purged" in gone.json()["detail"]
    raised = mgmt.post(f"/workflows/{iid}/raise_event/approvalEvent", json={})
    assert raised.status_code == 409 and "purged" in raised.json()["detail"]
    for action in ("pause", "resume", "terminate", "purge"):
        c = mgmt.post(f"/workflows/{iid}/{action}")
        assert c.status_code == 409 and "purged" in c.json()["detail"], (action, c.text)


def test_purge_completed_instance_and_reuse_the_id(mgmt: ExampleApp) -> None:
    sfx = suffix()
    iid = start(mgmt, sfx)
    wait_waiting(mgmt, iid)
    mgmt.post(f"/workflows/{iid}/raise_event/approvalEvent", json={"n": 1})
    mgmt.wait_status(f"/workflows/{iid}/status", "COMPLETED", timeout=10)
    assert mgmt.post(f"/workflows/{iid}/purge").status_code == 200
    assert mgmt.get(f"/workflows/{iid}/status").status_code == 404
    # The same id can be started again after a purge.
    start(mgmt, sfx, "Again")
    st = mgmt.get(f"/workflows/{iid}/status")
    assert st.status_code == 200 and st.json()["input"] == "Again"


def test_duplicate_running_start_is_409(mgmt: ExampleApp) -> None:
    sfx = suffix()
    iid = start(mgmt, sfx)
    dup = mgmt.post(f"/workflows/start/{sfx}")
    assert dup.status_code == 409 and iid in dup.json()["detail"]
    mgmt.post(f"/workflows/{iid}/terminate")


def test_unknown_instance_is_404_everywhere(mgmt: ExampleApp) -> None:
    iid = f"iwf-missing-{suffix()}"
    assert mgmt.get(f"/workflows/{iid}/status").status_code == 404
    for action in ("pause", "resume", "terminate", "purge", "raise_event/approvalEvent"):
        r = mgmt.post(f"/workflows/{iid}/{action}", json={})
        assert r.status_code == 404, (action, r.text)
        assert iid in r.json()["detail"]


def test_validation_422(mgmt: ExampleApp) -> None:
    r = mgmt.post("/workflows/start/bad%20suffix")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "instance_id_suffix"]
    r = mgmt.post(f"/workflows/start/{suffix()}", params={"user_name": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "user_name"]
    r = mgmt.post("/workflows/iwf-x/raise_event/bad%20name", json={})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "event_name"]
    r = mgmt.get("/workflows/a%2Fb/status")
    assert r.status_code in (404, 422)


def test_openapi_lists_every_endpoint(mgmt: ExampleApp) -> None:
    paths = mgmt.get("/openapi.json").json()["paths"]
    assert set(paths) == {
        "/health",
        "/workflows/start/{instance_id_suffix}",
        "/workflows/{instance_id}/status",
        "/workflows/{instance_id}/pause",
        "/workflows/{instance_id}/resume",
        "/workflows/{instance_id}/terminate",
        "/workflows/{instance_id}/raise_event/{event_name}",
        "/workflows/{instance_id}/purge",
    }
    assert "requestBody" in paths["/workflows/{instance_id}/raise_event/{event_name}"]["post"]
    assert "409" in paths["/workflows/{instance_id}/purge"]["post"]["responses"]
