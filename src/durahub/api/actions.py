"""Operations on one instance under `/durahub/v1`: start, raise an event, suspend, resume, terminate, purge.

Thin twins of Dapr's workflow HTTP API with what it cannot carry (a scheduled start time, a reason, a
termination output, a forced purge) and durahub's JSON errors (`{"detail": ...}`; 404 for an unknown instance,
409 for what the instance's state refuses), so the CLI and the dashboard use one API family. Each route calls
one engine method; the engine's errors become statuses through the extension app's handler.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel, Field

from durahub.api.common import MAX_ID_LENGTH, trace_caller
from durahub.api.extensions import NO_NUL, AppQuery, Count, InstanceIdPath
from durahub.engine import Engine

OptionalText = str | None


class StartRequest(BaseModel):
    workflow_name: str = Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL)
    instance_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL,
                                    description="A fresh UUID when absent")
    input: OptionalText = Field(None, pattern=NO_NUL, description="JSON input, as a string")
    start_at: datetime | None = Field(None, description="Scheduled start; the instance stays PENDING until then")


class Started(BaseModel):
    instance_id: str


class RaiseRequest(BaseModel):
    event_name: str = Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL)
    input: OptionalText = Field(None, pattern=NO_NUL, description="JSON payload, as a string")


class ReasonRequest(BaseModel):
    reason: OptionalText = Field(None, pattern=NO_NUL)


class TerminateOneRequest(BaseModel):
    output: OptionalText = Field(None, pattern=NO_NUL, description="JSON output recorded on the instance")
    recursive: bool = Field(True, description="Terminate its child workflows too")


class PurgeOneRequest(BaseModel):
    force: bool = Field(False, description="Purge whatever the instance's state (it may be running)")


class Accepted(BaseModel):
    instance_id: str


# Bodies that may be left out entirely (`curl -X POST .../suspend`).
ReasonBody = Annotated[ReasonRequest | None, Body()]
TerminateBody = Annotated[TerminateOneRequest | None, Body()]
PurgeBody = Annotated[PurgeOneRequest | None, Body()]


def _us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def action_routes(engine: Engine, errors: dict[int | str, dict[str, Any]], endpoint_app: str) -> APIRouter:
    """The routes, over one engine, for the instances of `endpoint_app` unless `?appID=` names another app;
    `errors` documents the error answers (the extension app's)."""
    router = APIRouter(responses=errors)

    @router.post("/instances", response_model=Started, status_code=202, summary="Start an instance")
    async def start(body: StartRequest, request: Request, app_id: AppQuery = None) -> Started:
        instance_id = body.instance_id or str(uuid.uuid4())
        scheduled = _us(body.start_at) if body.start_at is not None else None
        await engine.start_instance(instance_id, body.workflow_name, body.input, scheduled, app=app_id or endpoint_app,
                                    trace_parent=trace_caller(request.headers))
        return Started(instance_id=instance_id)

    @router.post("/instances/{instance_id}/raise", response_model=Accepted, status_code=202,
                 summary="Raise an event on an instance")
    async def raise_event(instance_id: InstanceIdPath, body: RaiseRequest, app_id: AppQuery = None) -> Accepted:
        await engine.raise_event(instance_id, body.event_name, body.input, app=app_id or endpoint_app)
        return Accepted(instance_id=instance_id)

    @router.post("/instances/{instance_id}/suspend", response_model=Accepted, status_code=202,
                 summary="Suspend an instance")
    async def suspend(instance_id: InstanceIdPath, body: ReasonBody = None, app_id: AppQuery = None) -> Accepted:
        await engine.suspend(instance_id, body.reason if body else None, app=app_id or endpoint_app)
        return Accepted(instance_id=instance_id)

    @router.post("/instances/{instance_id}/resume", response_model=Accepted, status_code=202,
                 summary="Resume a suspended instance")
    async def resume(instance_id: InstanceIdPath, body: ReasonBody = None, app_id: AppQuery = None) -> Accepted:
        await engine.resume(instance_id, body.reason if body else None, app=app_id or endpoint_app)
        return Accepted(instance_id=instance_id)

    @router.post("/instances/{instance_id}/terminate", response_model=Accepted, status_code=202,
                 summary="Terminate an instance (and, by default, its children); does not wait")
    async def terminate(instance_id: InstanceIdPath, body: TerminateBody = None, app_id: AppQuery = None) -> Accepted:
        output, recursive = (body.output, body.recursive) if body is not None else (None, True)
        await engine.terminate(instance_id, output, recursive, app=app_id or endpoint_app)
        return Accepted(instance_id=instance_id)

    @router.post("/instances/{instance_id}/purge", response_model=Count,
                 summary="Purge a finished instance and its children; `force` purges it whatever its state")
    async def purge(instance_id: InstanceIdPath, body: PurgeBody = None, app_id: AppQuery = None) -> Count:
        force = body.force if body is not None else False
        return Count(count=await engine.purge(instance_id, True, force, app=app_id or endpoint_app))

    return router
