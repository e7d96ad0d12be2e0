"""Async request-reply: a long-running order accepted with 202 and polled for its result.

``POST /start-async-order`` schedules a workflow and answers ``202 Accepted`` at once, with the
instance id and a ``Location`` header pointing at ``GET /status/{instance_id}``. Clients poll
that (it sends ``Retry-After`` while the order is still running) or the sidecar's own workflow
API, ``GET http://localhost:3500/v1.0/workflows/dapr/{instance_id}``, until ``COMPLETED``.

Run (from the repository root)::

    durahub run -- uvicorn examples.async_order_api.app:app --port 8002

Configuration::

    ASYNC_ORDER_PROCESSING_SECONDS   how long the order activity works (default 15)
"""

from __future__ import annotations

import logging
import os
import time
from typing import Annotated, Any

import dapr.ext.workflow as wf
from fastapi import FastAPI, Path, Request, Response
from pydantic import BaseModel, Field, StringConstraints

from examples.common import (
    ERROR_RESPONSES,
    INSTANCE_ID_PATTERN,
    TERMINAL,
    WorkflowService,
    WorkflowStatusResponse,
    add_health_route,
    env_seconds,
    render_state,
)

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("async_order_api")

WORKFLOW_NAME = "AsyncOrderProcessingWorkflow"
RETRY_AFTER_SECONDS = 1

runtime = wf.WorkflowRuntime()


@runtime.activity(name="process_order_activity")
def process_order_activity(ctx: wf.WorkflowActivityContext, order: dict[str, Any]) -> dict[str, Any]:
    log.info("[%s] processing %d x %s", ctx.workflow_id, order["quantity"], order["itemName"])
    seconds = env_seconds("ASYNC_ORDER_PROCESSING_SECONDS", 15.0)
    if seconds > 0:
        time.sleep(seconds)
    return {
        "processed": True,
        "item": order["itemName"],
        "quantity": order["quantity"],
        "message": "Order processed successfully",
    }


@runtime.workflow(name=WORKFLOW_NAME)
def async_order_processing_workflow(ctx: wf.DaprWorkflowContext, order: dict[str, Any]):
    ctx.set_custom_status("processing")
    result = yield ctx.call_activity(process_order_activity, input=order)
    ctx.set_custom_status("done")
    return result


# --------------------------------------------------------------------------------------------- HTTP

service = WorkflowService(runtime)
app = FastAPI(
    title="Async HTTP API Demo with Dapr Workflow",
    description="Asynchronous request-reply: start returns 202 + Location, then poll for the result.",
    version="1.0.0",
    lifespan=service.lifespan(),
)


class OrderPayload(BaseModel):
    itemName: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        examples=["Paperclips"]
    )
    quantity: int = Field(gt=0, le=1_000_000, examples=[3])


class AcceptedResponse(BaseModel):
    instance_id: str
    status_url: str = Field(description="This app's status endpoint (also in the Location header)")
    dapr_status_url: str = Field(description="The sidecar's workflow status endpoint for the same instance")



def dapr_status_url(instance_id: str) -> str:
    host = os.environ.get("DAPR_RUNTIME_HOST", "localhost")
    port = os.environ.get("DAPR_HTTP_PORT", "3500")
    return f"http://{host}:{port}/v1.0/workflows/dapr/{instance_id}"


add_health_route(app, service)


@app.post(
    "/start-async-order",
    status_code=202,
    response_model=AcceptedResponse,
    summary="Accept an order for asynchronous processing",
    responses={503: ERROR_RESPONSES[503]},
)
def start_async_order(order: OrderPayload, request: Request, response: Response) -> AcceptedResponse:
    instance_id = service.call(
        "schedule the order workflow",
        lambda: service.client.schedule_new_workflow(async_order_processing_workflow, input=order.model_dump()),
    )
    status_path = f"/status/{instance_id}"
    response.headers["Location"] = status_path
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    log.info("accepted order %s as %s", order.itemName, instance_id)
    return AcceptedResponse(
        instance_id=instance_id,
        status_url=str(request.url_for("order_status", instance_id=instance_id)),
        dapr_status_url=dapr_status_url(instance_id),
    )


@app.get(
    "/status/{instance_id}",
    name="order_status",
    response_model=WorkflowStatusResponse,
    summary="Poll an order's status (Retry-After is set while it is not finished)",
    responses={404: ERROR_RESPONSES[404], 503: ERROR_RESPONSES[503]},
)
def order_status(
    instance_id: Annotated[str, Path(pattern=INSTANCE_ID_PATTERN)], response: Response
) -> dict[str, Any]:
    body = render_state(service.state(instance_id))
    if body["runtime_status"] not in TERMINAL:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return body
