"""Async request-reply order API (seed 000): 202 + Location, then poll the app and durahub's
Dapr workflow HTTP API until the output appears."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from example_harness import ExampleApp

from testsupport.process import wait_until

MODULE = "examples.async_order_api.app:app"


@pytest.fixture(scope="module")
def api(launch) -> ExampleApp:
    return launch(MODULE, ASYNC_ORDER_PROCESSING_SECONDS="1.0")


def test_start_returns_202_with_location_then_poll_app(api: ExampleApp) -> None:
    r = api.post("/start-async-order", json={"itemName": "Paperclips", "quantity": 3})
    assert r.status_code == 202, r.text
    body = r.json()
    iid = body["instance_id"]
    assert r.headers["location"] == f"/status/{iid}"
    assert body["status_url"] == f"{api.url}/status/{iid}"
    assert body["dapr_status_url"].endswith(f":{api.server.http_port}/v1.0/workflows/dapr/{iid}")

    first = api.get(r.headers["location"])
    assert first.status_code == 200
    assert first.json()["runtime_status"] in {"RUNNING", "PENDING"}
    assert first.headers["retry-after"] == "1"
    assert first.json()["output"] is None

    done = api.wait_status(r.headers["location"], "COMPLETED", timeout=10)
    assert done["output"] == {
        "processed": True,
        "item": "Paperclips",
        "quantity": 3,
        "message": "Order processed successfully",
    }
    assert done["input"] == {"itemName": "Paperclips", "quantity": 3}
    assert done["workflow_name"] == "AsyncOrderProcessingWorkflow"
    assert "retry-after" not in api.get(r.headers["location"]).headers


def test_poll_durahubs_dapr_workflow_http_api(api: ExampleApp) -> None:
    r = api.post("/start-async-order", json={"itemName": "Staples", "quantity": 1})
    assert r.status_code == 202
    iid = r.json()["instance_id"]
    seen: list[str] = []
    for version in ("v1.0", "v1.0-beta1"):
        url = f"{api.server.http_url}/{version}/workflows/dapr/{iid}"
        first = httpx.get(url).json()
        assert first["instanceID"] == iid and first["workflowName"] == "AsyncOrderProcessingWorkflow"
        seen.append(first["runtimeStatus"])
    assert seen[0] in {"RUNNING", "PENDING"}
    assert json.loads(first["properties"]["dapr.workflow.input"]) == {"itemName": "Staples", "quantity": 1}

    url = r.json()["dapr_status_url"]

    def completed() -> dict | None:
        doc = httpx.get(url).json()
        return doc if doc["runtimeStatus"] == "COMPLETED" else None

    t0 = time.monotonic()
    doc = wait_until(completed, timeout=10, interval=0.1, message="Dapr API runtimeStatus COMPLETED")
    assert json.loads(doc["properties"]["dapr.workflow.output"])["item"] == "Staples"
    assert time.monotonic() - t0 > 0.3  # it really was running when first polled


def test_unknown_instance_404_on_both_apis(api: ExampleApp) -> None:
    r = api.get("/status/no-such-order")
    assert r.status_code == 404 and "no-such-order" in r.json()["detail"]
    assert httpx.get(f"{api.server.http_url}/v1.0/workflows/dapr/no-such-order").status_code == 404


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"itemName": "", "quantity": 1}, "itemName"),
        ({"itemName": "x", "quantity": 0}, "quantity"),
        ({"itemName": "x", "quantity": -2}, "quantity"),
        ({"itemName": "x", "quantity": "many"}, "quantity"),
        ({"quantity": 1}, "itemName"),
    ],
)
def test_validation_422(api: ExampleApp, payload: dict, field: str) -> None:
    r = api.post("/start-async-order", json=payload)
    assert r.status_code == 422
    assert any(e["loc"] == ["body", field] for e in r.json()["detail"]), r.json()


def test_openapi(api: ExampleApp) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert set(paths) == {"/health", "/start-async-order", "/status/{instance_id}"}
    assert "202" in paths["/start-async-order"]["post"]["responses"]
    assert "404" in paths["/status/{instance_id}"]["get"]["responses"]


def test_health_reports_a_lost_engine(launch) -> None:
    """/health is 200 while the worker is connected and 503 once the engine is gone."""
    app = launch(MODULE)
    assert app.get("/health").json() == {"status": "healthy", "workflow_runtime": "running"}
    app.server.proc.kill()  # the engine crashes
    app.server.proc.wait(10)

    def unhealthy() -> bool:
        r = app.get("/health")
        return r.status_code == 503 and r.json()["workflow_runtime"] == "not connected"

    wait_until(unhealthy, timeout=15, interval=0.2, message="/health 503 after the engine stopped")
    r = app.get("/status/anything")
    assert r.status_code == 503 and "unavailable" in r.json()["detail"]
