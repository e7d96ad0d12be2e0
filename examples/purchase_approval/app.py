"""Purchase-order approval: a workflow that waits for a human, with a timeout.

Orders whose total (cost x quantity) is under $1000 are approved automatically. Larger ones
send an approval request and then wait for an ``approval_event`` (raised by
``POST /signal-approval/{instance_id}``) or a timeout, whichever comes first: approved orders
are placed, rejected ones stop, and unanswered ones are cancelled.

Run (from the repository root)::

    durahub run -- uvicorn examples.purchase_approval.app:app --port 8003

Configuration::

    PURCHASE_APPROVAL_TIMEOUT_SECONDS   how long to wait for a decision (default 30)
    PURCHASE_ACTIVITY_SECONDS           how long each activity works (default 1)
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Annotated, Any

import dapr.ext.workflow as wf
from fastapi import FastAPI, HTTPException, Path
from pydantic import BaseModel, Field, StringConstraints

from examples.common import (
    ACTIVE,
    ERROR_RESPONSES,
    INSTANCE_ID_PATTERN,
    WorkflowService,
    WorkflowStatusResponse,
    add_health_route,
    env_seconds,
    parse_payload,
    render_state,
)

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("purchase_approval")

WORKFLOW_NAME = "PurchaseOrderApprovalWorkflow"
APPROVAL_EVENT = "approval_event"
AUTO_APPROVAL_LIMIT = 1000.0
AWAITING_APPROVAL = "awaiting_approval"
DECIDED = ("approved", "rejected", "cancelled")


def _work() -> None:
    seconds = env_seconds("PURCHASE_ACTIVITY_SECONDS", 1.0)
    if seconds > 0:
        time.sleep(seconds)


def describe(order: dict[str, Any]) -> str:
    return f"order {order['order_id']}: {order['quantity']} x {order['product']} at ${order['cost']:.2f} each"


runtime = wf.WorkflowRuntime()


@runtime.activity(name="send_approval_request_activity")
def send_approval_request_activity(ctx: wf.WorkflowActivityContext, order: dict[str, Any]) -> dict[str, Any]:
    # A real system would e-mail the approver a link that carries ctx.workflow_id.
    log.info("[%s] approval requested for %s", ctx.workflow_id, describe(order))
    _work()
    return {"notification_sent": True, "for_order_id": order["order_id"]}


@runtime.activity(name="place_order_activity")
def place_order_activity(ctx: wf.WorkflowActivityContext, order: dict[str, Any]) -> dict[str, Any]:
    log.info("[%s] placing %s", ctx.workflow_id, describe(order))
    _work()
    return {"order_placed": True, "order_id": order["order_id"]}


@runtime.activity(name="cancel_order_activity")
def cancel_order_activity(ctx: wf.WorkflowActivityContext, order: dict[str, Any]) -> dict[str, Any]:
    log.info("[%s] cancelling %s: no decision in time", ctx.workflow_id, describe(order))
    return {"order_cancelled": True, "order_id": order["order_id"]}


@runtime.workflow(name=WORKFLOW_NAME)
def purchase_order_workflow(ctx: wf.DaprWorkflowContext, order: dict[str, Any]):
    order_id = order["order_id"]
    total = order["cost"] * order["quantity"]
    if total < AUTO_APPROVAL_LIMIT:
        return {"status": "Auto-Approved", "order_id": order_id, "total": total}

    yield ctx.call_activity(send_approval_request_activity, input=order)
    ctx.set_custom_status(AWAITING_APPROVAL)
    # The timeout travels in the input, so a replay always rebuilds the same timer.
    decision = ctx.wait_for_external_event(APPROVAL_EVENT)
    timeout = ctx.create_timer(timedelta(seconds=order["approval_timeout_seconds"]))
    winner = yield wf.when_any([decision, timeout])

    if winner is not decision:
        ctx.set_custom_status("cancelled")
        yield ctx.call_activity(cancel_order_activity, input=order)
        return {"status": "Cancelled due to timeout", "order_id": order_id, "total": total}

    approval = decision.get_result() or {}
    approver = approval.get("approver_name", "unknown")
    if approval.get("approved"):
        ctx.set_custom_status("approved")
        yield ctx.call_activity(place_order_activity, input=order)
        return {"status": f"Approved by {approver}", "order_id": order_id, "total": total}
    ctx.set_custom_status("rejected")
    return {"status": f"Rejected by {approver}", "order_id": order_id, "total": total}


# --------------------------------------------------------------------------------------------- HTTP

service = WorkflowService(runtime)
app = FastAPI(
    title="Purchase Order Approval",
    description=(
        f"Orders of ${AUTO_APPROVAL_LIMIT:.0f} or more wait for a manager's decision "
        "(POST /signal-approval/{instance_id}) or are cancelled after a timeout."
    ),
    version="1.0.0",
    lifespan=service.lifespan(),
)

InstanceId = Annotated[str, Path(pattern=INSTANCE_ID_PATTERN, description="Instance id, e.g. po_order123")]


class StartOrderRequest(BaseModel):
    order_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,61}$")] = Field(examples=["order123"])
    cost: float = Field(gt=0, allow_inf_nan=False, description="Unit price", examples=[500])
    product: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        examples=["Widget"]
    )
    quantity: int = Field(gt=0, le=1_000_000, examples=[2])


class StartOrderResponse(BaseModel):
    instance_id: str
    requires_approval: bool
    message: str


class SignalApprovalRequest(BaseModel):
    approver_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    approved: bool


class SignalResponse(BaseModel):
    message: str
    instance_id: str



add_health_route(app, service)


@app.post(
    "/start-purchase-order",
    response_model=StartOrderResponse,
    summary="Start the approval workflow for a purchase order (instance id po_<order_id>)",
    responses=ERROR_RESPONSES,
)
def start_purchase_order(request: StartOrderRequest) -> StartOrderResponse:
    instance_id = f"po_{request.order_id}"
    order = request.model_dump()
    order["approval_timeout_seconds"] = env_seconds("PURCHASE_APPROVAL_TIMEOUT_SECONDS", 30.0)
    service.call(
        f"start purchase order {request.order_id} (instance '{instance_id}')",
        lambda: service.client.schedule_new_workflow(purchase_order_workflow, input=order, instance_id=instance_id),
    )
    needs = request.cost * request.quantity >= AUTO_APPROVAL_LIMIT
    message = (
        f"Purchase order {request.order_id} needs approval: POST /signal-approval/{instance_id} "
        f"within {order['approval_timeout_seconds']:g}s"
        if needs
        else f"Purchase order {request.order_id} is under ${AUTO_APPROVAL_LIMIT:.0f} and will be auto-approved"
    )
    return StartOrderResponse(instance_id=instance_id, requires_approval=needs, message=message)


@app.post(
    "/signal-approval/{instance_id}",
    response_model=SignalResponse,
    summary="Approve or reject a purchase order that is waiting for a decision",
    responses=ERROR_RESPONSES,
)
def signal_approval(instance_id: InstanceId, signal: SignalApprovalRequest) -> SignalResponse:
    state = service.state(instance_id)
    status = state.runtime_status.name
    if status not in ACTIVE:
        raise HTTPException(
            status_code=409,
            detail=f"Purchase order '{instance_id}' is {status} and no longer waits for a decision",
        )
    decided = parse_payload(state.serialized_custom_status)
    if decided in DECIDED:
        raise HTTPException(
            status_code=409, detail=f"Purchase order '{instance_id}' was already {decided}; it takes one decision"
        )
    service.call(
        f"signal approval to '{instance_id}'",
        lambda: service.client.raise_workflow_event(instance_id, APPROVAL_EVENT, data=signal.model_dump()),
    )
    verdict = "approval" if signal.approved else "rejection"
    return SignalResponse(message=f"{verdict.capitalize()} by {signal.approver_name} sent to '{instance_id}'",
                          instance_id=instance_id)


@app.get(
    "/status/{instance_id}",
    response_model=WorkflowStatusResponse,
    summary="Get a purchase order's status",
    responses={404: ERROR_RESPONSES[404], 503: ERROR_RESPONSES[503]},
)
def order_status(instance_id: InstanceId) -> dict[str, Any]:
    return render_state(service.state(instance_id))
