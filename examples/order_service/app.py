"""Order service: a FastAPI app whose orders are Dapr workflows.

The workflow runs ``process_order`` and ``check_inventory`` in parallel, then
``send_confirmation``. Orders are started, inspected, paused, resumed and terminated over HTTP.

Run (from the repository root)::

    durahub run -- uvicorn examples.order_service.app:app --port 8000

Activity durations (seconds, defaults as documented: 2 / 2 / 1)::

    ORDER_PROCESS_SECONDS, ORDER_INVENTORY_SECONDS, ORDER_CONFIRMATION_SECONDS
    ORDER_ACTIVITY_SECONDS_SCALE   multiplies all three (default 1; 0 makes every activity instant)
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import dapr.ext.workflow as wf
from fastapi import FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from examples.common import (
    ERROR_RESPONSES,
    INSTANCE_ID_PATTERN,
    WorkflowService,
    WorkflowStatusResponse,
    add_health_route,
    env_seconds,
    render_state,
)

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("order_service")

WORKFLOW_NAME = "order_processing_workflow"
PARALLEL_ACTIVITIES = ["process_order", "check_inventory"]
SEQUENTIAL_ACTIVITIES = ["send_confirmation"]


def _work(env_name: str, default: float) -> None:
    """Simulate work for the configured number of seconds."""
    seconds = env_seconds(env_name, default) * env_seconds("ORDER_ACTIVITY_SECONDS_SCALE", 1.0)
    if seconds > 0:
        time.sleep(seconds)


runtime = wf.WorkflowRuntime()


@runtime.activity(name="process_order")
def process_order(ctx: wf.WorkflowActivityContext, order: dict[str, Any]) -> dict[str, Any]:
    log.info("[%s] process_order (parallel) started for %s", ctx.workflow_id, order["order_id"])
    _work("ORDER_PROCESS_SECONDS", 2.0)
    total = round(order["amount"] * 1.1, 6)
    return {"order_id": order["order_id"], "status": "processed", "total": total, "processed_at": time.time()}


@runtime.activity(name="check_inventory")
def check_inventory(ctx: wf.WorkflowActivityContext, order: dict[str, Any]) -> dict[str, Any]:
    log.info("[%s] check_inventory (parallel) started for %s", ctx.workflow_id, order["order_id"])
    _work("ORDER_INVENTORY_SECONDS", 2.0)
    return {
        "order_id": order["order_id"],
        "inventory_status": "available",
        "items_count": len(order["items"]),
        "checked_at": time.time(),
    }


@runtime.activity(name="send_confirmation")
def send_confirmation(ctx: wf.WorkflowActivityContext, data: dict[str, Any]) -> dict[str, Any]:
    log.info("[%s] send_confirmation (sequential) for %s", ctx.workflow_id, data["order_id"])
    _work("ORDER_CONFIRMATION_SECONDS", 1.0)
    return {
        "confirmation_sent": True,
        "order_id": data["order_id"],
        "message": f"Order confirmed with {data['items_count']} items. Total: ${data['total']:.2f}",
        "confirmed_at": time.time(),
    }


@runtime.workflow(name=WORKFLOW_NAME)
def order_processing_workflow(ctx: wf.DaprWorkflowContext, order: dict[str, Any]):
    if not ctx.is_replaying:
        log.info("[%s] order workflow started: %s", ctx.instance_id, order)
    # Fan out: both activities are scheduled before either is awaited.
    process_result, inventory_result = yield wf.when_all(
        [ctx.call_activity(process_order, input=order), ctx.call_activity(check_inventory, input=order)]
    )
    confirmation = yield ctx.call_activity(
        send_confirmation,
        input={
            "order_id": order["order_id"],
            "items_count": inventory_result["items_count"],
            "total": process_result["total"],
        },
    )
    if not ctx.is_replaying:
        log.info("[%s] order workflow completed", ctx.instance_id)
    return {
        "workflow_status": "completed",
        "order_id": order["order_id"],
        "process_result": process_result,
        "inventory_result": inventory_result,
        "confirmation": confirmation,
        "execution_summary": {
            "parallel_activities": PARALLEL_ACTIVITIES,
            "sequential_activities": SEQUENTIAL_ACTIVITIES,
            "total_activities": len(PARALLEL_ACTIVITIES) + len(SEQUENTIAL_ACTIVITIES),
        },
    }


# --------------------------------------------------------------------------------------------- HTTP

service = WorkflowService(runtime)
app = FastAPI(
    title="Order Service",
    description="Orders processed by a Dapr workflow: two parallel activities, then a confirmation.",
    version="1.0.0",
    lifespan=service.lifespan(),
)

OrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,58}$")]
ItemName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
InstanceId = Annotated[
    str, Path(pattern=INSTANCE_ID_PATTERN, description="Workflow instance id, e.g. order_ORDER001")
]


class OrderRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"order_id": "ORDER001", "amount": 99.99, "items": ["laptop", "mouse"]}]}
    )

    order_id: OrderId = Field(description="Letters, digits, '-' or '_'; the instance id is order_<order_id>")
    amount: float = Field(gt=0, allow_inf_nan=False, description="Order amount before tax")
    items: list[ItemName] = Field(min_length=1, max_length=1000, description="At least one item")


class StartResponse(BaseModel):
    status: str = Field(examples=["started"])
    instance_id: str = Field(examples=["order_ORDER001"])
    order_data: OrderRequest
    message: str


class OrderStatusResponse(WorkflowStatusResponse):
    last_updated: str | None = Field(default=None, description="Same as last_updated_at")


class ActionResponse(BaseModel):
    status: str
    instance_id: str
    message: str



def instance_id_for(order_id: str) -> str:
    return f"order_{order_id}"


@app.get("/", summary="Application info")
def root() -> dict[str, Any]:
    return {
        "name": "Order Service",
        "workflow": WORKFLOW_NAME,
        "parallel_activities": PARALLEL_ACTIVITIES,
        "sequential_activities": SEQUENTIAL_ACTIVITIES,
        "endpoints": {
            "health": "GET /health",
            "start": "POST /workflow/start",
            "status": "GET /workflow/status/{instance_id}",
            "pause": "POST /workflow/pause/{instance_id}",
            "resume": "POST /workflow/resume/{instance_id}",
            "terminate": "POST /workflow/terminate/{instance_id}",
            "docs": "GET /docs",
        },
    }


add_health_route(app, service)


@app.post("/workflow/start", response_model=StartResponse, summary="Start an order workflow", responses=ERROR_RESPONSES)
def start_workflow(order: OrderRequest) -> StartResponse:
    instance_id = instance_id_for(order.order_id)
    service.call(
        f"start order {order.order_id} (instance '{instance_id}')",
        lambda: service.client.schedule_new_workflow(
            order_processing_workflow, input=order.model_dump(), instance_id=instance_id
        ),
    )
    log.info("started %s", instance_id)
    return StartResponse(
        status="started",
        instance_id=instance_id,
        order_data=order,
        message="Workflow is executing. Use /workflow/status/{instance_id} to check progress",
    )


@app.get(
    "/workflow/status/{instance_id}",
    response_model=OrderStatusResponse,
    summary="Get an order workflow's status",
    responses=ERROR_RESPONSES,
)
def workflow_status(instance_id: InstanceId) -> dict[str, Any]:
    body = render_state(service.state(instance_id))
    body["last_updated"] = body["last_updated_at"]
    return body


@app.post(
    "/workflow/pause/{instance_id}",
    response_model=ActionResponse,
    summary="Pause a running order workflow",
    responses=ERROR_RESPONSES,
)
def pause_workflow(instance_id: InstanceId) -> ActionResponse:
    service.require_status(instance_id, ("RUNNING", "PENDING"), "pause")
    service.call(f"pause '{instance_id}'", lambda: service.client.pause_workflow(instance_id))
    return ActionResponse(status="paused", instance_id=instance_id, message=f"Workflow {instance_id} paused")


@app.post(
    "/workflow/resume/{instance_id}",
    response_model=ActionResponse,
    summary="Resume a paused order workflow",
    responses=ERROR_RESPONSES,
)
def resume_workflow(instance_id: InstanceId) -> ActionResponse:
    service.require_status(instance_id, ("SUSPENDED",), "resume")
    service.call(f"resume '{instance_id}'", lambda: service.client.resume_workflow(instance_id))
    return ActionResponse(status="resumed", instance_id=instance_id, message=f"Workflow {instance_id} resumed")


@app.post(
    "/workflow/terminate/{instance_id}",
    response_model=ActionResponse,
    summary="Terminate an order workflow",
    responses=ERROR_RESPONSES,
)
def terminate_workflow(instance_id: InstanceId) -> ActionResponse:
    service.require_status(instance_id, ("RUNNING", "PENDING", "SUSPENDED"), "terminate")
    service.call(f"terminate '{instance_id}'", lambda: service.client.terminate_workflow(instance_id))
    return ActionResponse(
        status="terminated", instance_id=instance_id, message=f"Workflow {instance_id} terminated"
    )
