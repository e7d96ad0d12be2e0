"""Workflow management API: every lifecycle operation of a Dapr workflow instance over HTTP.

The workflow greets the user in a long activity (done in steps), then waits for an external
event named ``approvalEvent`` and completes with that event's data. That makes it a good
target for start / status / pause / resume / terminate / raise_event / purge.

Run (from the repository root)::

    durahub run -- uvicorn examples.management_api.app:app --port 8001

Configuration::

    MANAGEMENT_GREETING_SECONDS   total duration of the greeting activity (default 20)
    MANAGEMENT_GREETING_STEPS     number of steps it is done in (default 10)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Annotated, Any

import dapr.ext.workflow as wf
from fastapi import Body, FastAPI, HTTPException, Path, Query
from pydantic import BaseModel

from examples.common import (
    ACTIVE,
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
log = logging.getLogger("management_api")

APPROVAL_EVENT = "approvalEvent"
WAITING_STATUS = f"waiting for {APPROVAL_EVENT}"

runtime = wf.WorkflowRuntime()


@runtime.activity(name="interactive_hello_activity")
def interactive_hello_activity(ctx: wf.WorkflowActivityContext, name: str) -> str:
    steps = max(1, int(env_seconds("MANAGEMENT_GREETING_STEPS", 10)))
    step_seconds = env_seconds("MANAGEMENT_GREETING_SECONDS", 20.0) / steps
    for i in range(steps):
        log.info("[%s] greeting %s: step %d/%d", ctx.workflow_id, name, i + 1, steps)
        if step_seconds > 0:
            time.sleep(step_seconds)
    return f"Hello, {name}!"


@runtime.workflow(name="interactive_hello_workflow")
def interactive_hello_workflow(ctx: wf.DaprWorkflowContext, user_name: str):
    ctx.set_custom_status("greeting")
    greeting = yield ctx.call_activity(interactive_hello_activity, input=user_name)
    ctx.set_custom_status(WAITING_STATUS)
    if not ctx.is_replaying:
        log.info("[%s] %s; now %s", ctx.instance_id, greeting, WAITING_STATUS)
    event_data = yield ctx.wait_for_external_event(APPROVAL_EVENT)
    ctx.set_custom_status("approved")
    return {"initial_greeting": greeting, "event_data": event_data, "status": "Approved"}


# --------------------------------------------------------------------------------------------- HTTP

service = WorkflowService(runtime)
app = FastAPI(
    title="Interactive Workflow Management API",
    description=(
        "Start, inspect, pause, resume, terminate, signal and purge instances of a workflow that "
        f"greets a user and then waits for an '{APPROVAL_EVENT}' event."
    ),
    version="1.0.0",
    lifespan=service.lifespan(),
)

InstanceId = Annotated[str, Path(pattern=INSTANCE_ID_PATTERN, description="Workflow instance id, e.g. iwf-test1")]


class _Tombstones:
    """Ids this app purged, so a later operation on one can say so (409) instead of a bare 404.

    Kept in memory (bounded): after a restart, a purged instance is simply unknown (404).
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, instance_id: str) -> None:
        with self._lock:
            self._ids[instance_id] = time.time()
            self._ids.move_to_end(instance_id)
            while len(self._ids) > self._limit:
                self._ids.popitem(last=False)

    def discard(self, instance_id: str) -> None:
        with self._lock:
            self._ids.pop(instance_id, None)

    def __contains__(self, instance_id: str) -> bool:
        with self._lock:
            return instance_id in self._ids


purged = _Tombstones()


def existing_state(instance_id: str, action: str) -> wf.WorkflowState:
    """The instance's state; 409 if this app purged it, 404 if it is unknown."""
    state = service.call(
        f"get workflow {instance_id}", lambda: service.client.get_workflow_state(instance_id, fetch_payloads=False)
    )
    if state is not None:
        return state
    if instance_id in purged:
        raise HTTPException(
            status_code=409, detail=f"Cannot {action} workflow instance '{instance_id}': it was purged"
        )
    raise HTTPException(status_code=404, detail=f"Workflow instance '{instance_id}' not found")


def check_status(instance_id: str, action: str, allowed: frozenset[str] | tuple[str, ...], hint: str) -> str:
    status = existing_state(instance_id, action).runtime_status.name
    if status not in allowed:
        raise HTTPException(
            status_code=409,
            detail=f"Cannot {action} workflow instance '{instance_id}': it is {status} ({hint})",
        )
    return status


class ActionResponse(BaseModel):
    message: str
    instance_id: str



add_health_route(app, service)


@app.post(
    "/workflows/start/{instance_id_suffix}",
    response_model=ActionResponse,
    summary="Start a workflow instance iwf-<suffix>",
    responses=ERROR_RESPONSES,
)
def start_workflow(
    instance_id_suffix: Annotated[
        str, Path(pattern=r"^[A-Za-z0-9_-]{1,60}$", description="Suffix of the instance id, e.g. test1")
    ],
    user_name: Annotated[str, Query(min_length=1, max_length=100, description="Who to greet")] = "User",
) -> ActionResponse:
    instance_id = f"iwf-{instance_id_suffix}"
    service.call(
        f"start workflow instance '{instance_id}'",
        lambda: service.client.schedule_new_workflow(
            interactive_hello_workflow, instance_id=instance_id, input=user_name
        ),
    )
    purged.discard(instance_id)
    return ActionResponse(message="Workflow scheduled successfully", instance_id=instance_id)


@app.get(
    "/workflows/{instance_id}/status",
    response_model=WorkflowStatusResponse,
    summary="Get a workflow instance's status",
    responses=ERROR_RESPONSES,
)
def workflow_status(instance_id: InstanceId) -> dict[str, Any]:
    state = service.call(
        f"get workflow {instance_id}", lambda: service.client.get_workflow_state(instance_id, fetch_payloads=True)
    )
    if state is None:
        why = " (it was purged)" if instance_id in purged else ""
        raise HTTPException(status_code=404, detail=f"Workflow instance '{instance_id}' not found{why}")
    return render_state(state)


@app.post(
    "/workflows/{instance_id}/pause",
    response_model=ActionResponse,
    summary="Pause (suspend) a running instance",
    responses=ERROR_RESPONSES,
)
def pause_workflow(instance_id: InstanceId) -> ActionResponse:
    check_status(instance_id, "pause", ("RUNNING", "PENDING"), "only RUNNING or PENDING instances can be paused")
    service.call(f"pause '{instance_id}'", lambda: service.client.pause_workflow(instance_id))
    return ActionResponse(message=f"Workflow instance {instance_id} paused", instance_id=instance_id)


@app.post(
    "/workflows/{instance_id}/resume",
    response_model=ActionResponse,
    summary="Resume a paused instance",
    responses=ERROR_RESPONSES,
)
def resume_workflow(instance_id: InstanceId) -> ActionResponse:
    check_status(instance_id, "resume", ("SUSPENDED",), "only SUSPENDED (paused) instances can be resumed")
    service.call(f"resume '{instance_id}'", lambda: service.client.resume_workflow(instance_id))
    return ActionResponse(message=f"Workflow instance {instance_id} resumed", instance_id=instance_id)


@app.post(
    "/workflows/{instance_id}/terminate",
    response_model=ActionResponse,
    summary="Terminate an instance that has not finished",
    responses=ERROR_RESPONSES,
)
def terminate_workflow(instance_id: InstanceId) -> ActionResponse:
    check_status(instance_id, "terminate", ACTIVE, "it has already finished")
    service.call(f"terminate '{instance_id}'", lambda: service.client.terminate_workflow(instance_id))
    return ActionResponse(message=f"Workflow instance {instance_id} terminated", instance_id=instance_id)


@app.post(
    "/workflows/{instance_id}/raise_event/{event_name}",
    response_model=ActionResponse,
    summary="Raise an external event (JSON body = event data)",
    responses=ERROR_RESPONSES,
)
def raise_event(
    instance_id: InstanceId,
    event_name: Annotated[
        str, Path(pattern=r"^[A-Za-z0-9_.-]{1,100}$", description=f"Event name, e.g. {APPROVAL_EVENT}")
    ],
    event_data: Annotated[
        Any, Body(description="JSON payload delivered to the workflow", examples=[{"approved": True}])
    ] = None,
) -> ActionResponse:
    check_status(
        instance_id, "raise an event to", ACTIVE, "it has finished, so the event would be discarded"
    )
    service.call(
        f"raise '{event_name}' to '{instance_id}'",
        lambda: service.client.raise_workflow_event(instance_id, event_name, data=event_data),
    )
    return ActionResponse(message=f"Event '{event_name}' raised for workflow instance {instance_id}", instance_id=instance_id)


@app.post(
    "/workflows/{instance_id}/purge",
    response_model=ActionResponse,
    summary="Purge a finished instance's state and history",
    responses=ERROR_RESPONSES,
)
def purge_workflow(instance_id: InstanceId) -> ActionResponse:
    check_status(
        instance_id, "purge", TERMINAL, "only COMPLETED, FAILED or TERMINATED instances can be purged"
    )
    service.call(f"purge '{instance_id}'", lambda: service.client.purge_workflow(instance_id))
    purged.add(instance_id)
    return ActionResponse(message=f"Workflow instance {instance_id} purged", instance_id=instance_id)
