"""Order service (seed 001) end to end: uvicorn app + real durahub server, driven over HTTP."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from example_harness import ExampleApp

MODULE = "examples.order_service.app:app"


def oid(prefix: str = "ORD") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10].upper()}"


@pytest.fixture(scope="module")
def fast(launch) -> ExampleApp:
    """Every activity instant."""
    return launch(MODULE, ORDER_ACTIVITY_SECONDS_SCALE="0")


@pytest.fixture(scope="module")
def slow(launch) -> ExampleApp:
    """The documented durations: 2 s / 2 s in parallel, then 1 s."""
    return launch(MODULE)


def start(app: ExampleApp, order_id: str, amount: float = 99.99, items=("laptop", "mouse")) -> dict:
    r = app.post("/workflow/start", json={"order_id": order_id, "amount": amount, "items": list(items)})
    assert r.status_code == 200, r.text
    return r.json()


def test_root_and_health(fast: ExampleApp) -> None:
    root = fast.get("/").json()
    assert root["name"] == "Order Service"
    assert "POST /workflow/start" in root["endpoints"].values()
    assert fast.get("/health").json() == {"status": "healthy", "workflow_runtime": "running"}


def test_documented_start_response_and_completed_output(fast: ExampleApp) -> None:
    order_id = oid()
    body = start(fast, order_id, 99.99, ["laptop", "mouse"])
    assert body["status"] == "started"
    assert body["instance_id"] == f"order_{order_id}"
    assert body["order_data"] == {"order_id": order_id, "amount": 99.99, "items": ["laptop", "mouse"]}
    assert "/workflow/status/" in body["message"]

    done = fast.wait_status(f"/workflow/status/order_{order_id}", "COMPLETED")
    assert done["instance_id"] == f"order_{order_id}"
    assert done["runtime_status"] == "COMPLETED"
    assert done["created_at"].endswith("Z") and done["last_updated"] == done["last_updated_at"]
    out = done["output"]
    assert out["workflow_status"] == "completed"
    assert out["order_id"] == order_id
    pr = out["process_result"]
    assert pr["order_id"] == order_id and pr["status"] == "processed"
    assert pr["total"] == pytest.approx(99.99 * 1.1)
    assert isinstance(pr["processed_at"], float)
    ir = out["inventory_result"]
    assert ir == {**ir, "order_id": order_id, "inventory_status": "available", "items_count": 2}
    conf = out["confirmation"]
    assert conf["confirmation_sent"] is True and conf["order_id"] == order_id
    assert conf["message"] == "Order confirmed with 2 items. Total: $109.99"
    assert out["execution_summary"] == {
        "parallel_activities": ["process_order", "check_inventory"],
        "sequential_activities": ["send_confirmation"],
        "total_activities": 3,
    }


def test_scenario1_lifecycle_running_then_completed_and_parallel_overlap(slow: ExampleApp) -> None:
    """Documented durations 2 s + 2 s (parallel) then 1 s: done in about 3 s, not 5."""
    order_id = oid("TEST")
    t0 = time.monotonic()
    start(slow, order_id, 150.00, ["item1", "item2"])
    first = slow.get(f"/workflow/status/order_{order_id}").json()
    assert first["runtime_status"] in {"RUNNING", "PENDING"}
    assert first["output"] is None
    done = slow.wait_status(f"/workflow/status/order_{order_id}", "COMPLETED", timeout=15, )
    elapsed = time.monotonic() - t0
    assert 3.0 <= elapsed < 4.0, f"order took {elapsed:.2f}s; expected 2 (parallel) + 1 + overhead"
    out = done["output"]
    # The two parallel activities really overlapped, and the confirmation came after both.
    pr, ir, conf = out["process_result"], out["inventory_result"], out["confirmation"]
    assert abs(pr["processed_at"] - ir["checked_at"]) < 1.0
    assert conf["confirmed_at"] - max(pr["processed_at"], ir["checked_at"]) >= 0.9
    assert pr["total"] == pytest.approx(165.0)
    assert conf["message"] == "Order confirmed with 2 items. Total: $165.00"


def test_scenario2_pause_and_resume(slow: ExampleApp) -> None:
    order_id = oid("TEST")
    iid = f"order_{order_id}"
    start(slow, order_id, 200.00, ["monitor"])
    r = slow.post(f"/workflow/pause/{iid}")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "paused", "instance_id": iid, "message": f"Workflow {iid} paused"}
    slow.wait_status(f"/workflow/status/{iid}", "SUSPENDED", timeout=5)
    # Pausing again is a state conflict, not a silent no-op.
    again = slow.post(f"/workflow/pause/{iid}")
    assert again.status_code == 409 and "SUSPENDED" in again.json()["detail"]
    # Longer than the whole workflow would take: still suspended, no output.
    time.sleep(3.5)
    held = slow.get(f"/workflow/status/{iid}").json()
    assert held["runtime_status"] == "SUSPENDED" and held["output"] is None
    r = slow.post(f"/workflow/resume/{iid}")
    assert r.status_code == 200 and r.json()["status"] == "resumed"
    done = slow.wait_status(f"/workflow/status/{iid}", "COMPLETED", timeout=10)
    assert done["output"]["process_result"]["total"] == pytest.approx(220.0)
    assert done["output"]["inventory_result"]["items_count"] == 1


def test_terminate_then_state_conflicts(slow: ExampleApp) -> None:
    order_id = oid()
    iid = f"order_{order_id}"
    start(slow, order_id, 10, ["pen"])
    r = slow.post(f"/workflow/terminate/{iid}")
    assert r.status_code == 200 and r.json()["status"] == "terminated"
    st = slow.wait_status(f"/workflow/status/{iid}", "TERMINATED", timeout=5)
    assert st["output"] is None
    for action in ("pause", "resume", "terminate"):
        c = slow.post(f"/workflow/{action}/{iid}")
        assert c.status_code == 409, (action, c.text)
        assert "TERMINATED" in c.json()["detail"]
    assert slow.get(f"/workflow/status/{iid}").json()["runtime_status"] == "TERMINATED"


def test_scenario3_five_concurrent_orders(fast: ExampleApp) -> None:
    batch = uuid.uuid4().hex[:6].upper()
    ids = [f"BATCH{batch}{i:02d}" for i in range(1, 6)]

    def go(i: int) -> int:
        r = fast.post("/workflow/start", json={"order_id": ids[i - 1], "amount": i * 100, "items": [f"item{i}"]})
        return r.status_code

    with ThreadPoolExecutor(5) as pool:
        assert list(pool.map(go, range(1, 6))) == [200] * 5
    for i, order_id in enumerate(ids, start=1):
        done = fast.wait_status(f"/workflow/status/order_{order_id}", "COMPLETED", timeout=15)
        assert done["output"]["order_id"] == order_id
        assert done["output"]["process_result"]["total"] == pytest.approx(i * 110)
        assert done["output"]["inventory_result"]["items_count"] == 1


def test_pause_resume_completed_order_conflict(fast: ExampleApp) -> None:
    order_id = oid()
    iid = f"order_{order_id}"
    start(fast, order_id)
    fast.wait_status(f"/workflow/status/{iid}", "COMPLETED")
    for action in ("pause", "resume", "terminate"):
        r = fast.post(f"/workflow/{action}/{iid}")
        assert r.status_code == 409, (action, r.text)
        assert "COMPLETED" in r.json()["detail"] and iid in r.json()["detail"]


def test_duplicate_running_order_is_409(slow: ExampleApp) -> None:
    order_id = oid()
    start(slow, order_id)
    dup = slow.post("/workflow/start", json={"order_id": order_id, "amount": 5, "items": ["x"]})
    assert dup.status_code == 409, dup.text
    assert f"order_{order_id}" in dup.json()["detail"] and "already exists" in dup.json()["detail"]
    slow.post(f"/workflow/terminate/order_{order_id}")


def test_unknown_instance_is_404(fast: ExampleApp) -> None:
    for method, path in [
        ("get", "/workflow/status/order_NOPE"),
        ("post", "/workflow/pause/order_NOPE"),
        ("post", "/workflow/resume/order_NOPE"),
        ("post", "/workflow/terminate/order_NOPE"),
    ]:
        r = getattr(fast, method)(path)
        assert r.status_code == 404, (path, r.text)
        assert "order_NOPE" in r.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"order_id": "A1", "amount": -5, "items": ["x"]}, "amount"),
        ({"order_id": "A1", "amount": 0, "items": ["x"]}, "amount"),
        ({"order_id": "A1", "amount": 10, "items": []}, "items"),
        ({"order_id": "A1", "amount": 10, "items": [" "]}, "items"),
        ({"order_id": "bad id!", "amount": 10, "items": ["x"]}, "order_id"),
        ({"order_id": "", "amount": 10, "items": ["x"]}, "order_id"),
        ({"amount": 10, "items": ["x"]}, "order_id"),
        ({"order_id": "A1", "amount": "lots", "items": ["x"]}, "amount"),
    ],
)
def test_validation_errors_are_422_with_field(fast: ExampleApp, payload: dict, field: str) -> None:
    r = fast.post("/workflow/start", json=payload)
    assert r.status_code == 422, r.text
    locs = [e["loc"] for e in r.json()["detail"]]
    assert any(loc[:2] == ["body", field] for loc in locs), locs
    assert all(e["msg"] for e in r.json()["detail"])


def test_malformed_instance_id_is_422(fast: ExampleApp) -> None:
    r = fast.get("/workflow/status/order%20one")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "instance_id"]


def test_openapi_lists_every_endpoint(fast: ExampleApp) -> None:
    spec = fast.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        ("/", "get"), ("/health", "get"), ("/workflow/start", "post"),
        ("/workflow/status/{instance_id}", "get"), ("/workflow/pause/{instance_id}", "post"),
        ("/workflow/resume/{instance_id}", "post"), ("/workflow/terminate/{instance_id}", "post"),
    }
    assert {(p, m) for p, ops in paths.items() for m in ops} == expected
    for p in ("/workflow/pause/{instance_id}", "/workflow/status/{instance_id}"):
        responses = paths[p][next(iter(paths[p]))]["responses"]
        assert {"200", "404", "409", "422"} <= set(responses), (p, responses.keys())
    assert "OrderRequest" in spec["components"]["schemas"]
    assert fast.get("/docs").status_code == 200
