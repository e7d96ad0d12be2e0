"""Purchase-order approval (seed 004): auto-approve, approve, reject and timeout paths."""

from __future__ import annotations

import time
import uuid

import pytest
from example_harness import ExampleApp

MODULE = "examples.purchase_approval.app:app"
TIMEOUT_SECONDS = 1.5


@pytest.fixture(scope="module")
def po(launch) -> ExampleApp:
    return launch(
        MODULE, PURCHASE_APPROVAL_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS), PURCHASE_ACTIVITY_SECONDS="0.1"
    )


def start(app: ExampleApp, cost: float, quantity: int, product: str = "Widget") -> tuple[str, dict]:
    order_id = f"order{uuid.uuid4().hex[:10]}"
    r = app.post(
        "/start-purchase-order",
        json={"order_id": order_id, "cost": cost, "product": product, "quantity": quantity},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["instance_id"] == f"po_{order_id}"
    return order_id, body


def awaiting(app: ExampleApp, iid: str) -> dict:
    return app.wait_status(f"/status/{iid}", {"awaiting_approval"}, key="custom_status", timeout=5)


def test_auto_approved_under_1000(po: ExampleApp) -> None:
    order_id, body = start(po, 499.99, 2)
    assert body["requires_approval"] is False
    done = po.wait_status(f"/status/{body['instance_id']}", "COMPLETED", timeout=5)
    assert done["output"]["status"] == "Auto-Approved"
    assert done["output"]["order_id"] == order_id
    late = po.post(f"/signal-approval/{body['instance_id']}", json={"approver_name": "X", "approved": True})
    assert late.status_code == 409 and "COMPLETED" in late.json()["detail"]


def test_scenario1_approval(po: ExampleApp) -> None:
    order_id, body = start(po, 500, 2)  # exactly 1000: needs approval
    iid = body["instance_id"]
    assert body["requires_approval"] is True and f"/signal-approval/{iid}" in body["message"]
    awaiting(po, iid)
    r = po.post(f"/signal-approval/{iid}", json={"approver_name": "ManagerX", "approved": True})
    assert r.status_code == 200, r.text
    done = po.wait_status(f"/status/{iid}", "COMPLETED", timeout=5)
    assert done["output"] == {"status": "Approved by ManagerX", "order_id": order_id, "total": 1000}
    assert done["custom_status"] == "approved"


def test_scenario2_rejection_and_second_decision_conflict(po: ExampleApp) -> None:
    order_id, body = start(po, 600, 2, "Gadget")
    iid = body["instance_id"]
    awaiting(po, iid)
    r = po.post(f"/signal-approval/{iid}", json={"approver_name": "ManagerY", "approved": False})
    assert r.status_code == 200
    done = po.wait_status(f"/status/{iid}", "COMPLETED", timeout=5)
    assert done["output"]["status"] == "Rejected by ManagerY"
    assert done["custom_status"] == "rejected"
    again = po.post(f"/signal-approval/{iid}", json={"approver_name": "ManagerY", "approved": True})
    assert again.status_code == 409


def test_scenario3_timeout_cancels(po: ExampleApp) -> None:
    t0 = time.monotonic()
    order_id, body = start(po, 700, 2, "Gizmo")
    iid = body["instance_id"]
    awaiting(po, iid)
    time.sleep(TIMEOUT_SECONDS / 3)
    assert po.get(f"/status/{iid}").json()["runtime_status"] == "RUNNING"
    done = po.wait_status(f"/status/{iid}", "COMPLETED", timeout=TIMEOUT_SECONDS + 5)
    assert time.monotonic() - t0 >= TIMEOUT_SECONDS
    assert done["output"]["status"] == "Cancelled due to timeout"
    assert done["custom_status"] == "cancelled"
    late = po.post(f"/signal-approval/{iid}", json={"approver_name": "Slow", "approved": True})
    assert late.status_code == 409


def test_signal_before_the_wait_starts_is_kept(po: ExampleApp) -> None:
    """Approving while the approval request is still being sent still approves."""
    order_id, body = start(po, 1000, 1)
    r = po.post(f"/signal-approval/{body['instance_id']}", json={"approver_name": "Early", "approved": True})
    assert r.status_code == 200
    done = po.wait_status(f"/status/{body['instance_id']}", "COMPLETED", timeout=5)
    assert done["output"]["status"] == "Approved by Early"


def test_duplicate_404_and_validation(po: ExampleApp) -> None:
    order_id, body = start(po, 2000, 1)
    dup = po.post("/start-purchase-order", json={"order_id": order_id, "cost": 1, "product": "p", "quantity": 1})
    assert dup.status_code == 409 and body["instance_id"] in dup.json()["detail"]
    assert po.get("/status/po_nothing_here").status_code == 404
    r = po.post("/signal-approval/po_nothing_here", json={"approver_name": "A", "approved": True})
    assert r.status_code == 404
    r = po.post(f"/signal-approval/{body['instance_id']}", json={"approver_name": "", "approved": "maybe"})
    assert r.status_code == 422
    assert {tuple(e["loc"]) for e in r.json()["detail"]} == {("body", "approver_name"), ("body", "approved")}
    for payload, field in [
        ({"order_id": "o1", "cost": -1, "product": "p", "quantity": 1}, "cost"),
        ({"order_id": "o1", "cost": 1, "product": "p", "quantity": 0}, "quantity"),
        ({"order_id": "o 1", "cost": 1, "product": "p", "quantity": 1}, "order_id"),
        ({"order_id": "o1", "cost": 1, "product": "", "quantity": 1}, "product"),
    ]:
        r = po.post("/start-purchase-order", json=payload)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], (payload, r.text)
    # Approve the pending one so it does not linger.
    po.post(f"/signal-approval/{body['instance_id']}", json={"approver_name": "A", "approved": False})


def test_openapi(po: ExampleApp) -> None:
    paths = po.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/health", "/start-purchase-order", "/signal-approval/{instance_id}", "/status/{instance_id}"}
    assert {"404", "409", "422"} <= set(paths["/signal-approval/{instance_id}"]["post"]["responses"])
