"""durahub's own HTTP API under `/durahub/v1`: what Dapr's API lacks (listing, history, bulk operations,
waiting for a status change). Documented by the OpenAPI schema served at `/durahub/v1/openapi.json`."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Protocol

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, Field

from durahub import __version__
from durahub.api.common import MAX_ID_LENGTH, workflow_properties
from durahub.api.errors import EXTENSION_HTTP, lookup
from durahub.core.state import TERMINAL_STATUSES, status_from_name, status_name
from durahub.core.time import ts_to_us
from durahub.engine import Engine
from durahub.errors import DurahubError
from durahub.protos import pb
from durahub.store.base import InstanceQuery, InstanceRow

MAX_PAGE = 1000
MAX_WAIT_SECONDS = 300.0


class Status(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TERMINATED = "TERMINATED"
    PENDING = "PENDING"
    SUSPENDED = "SUSPENDED"
    STALLED = "STALLED"


# No store can keep NUL characters; saying so in the schema keeps clients (and fuzzers) honest.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, Field(pattern=NO_NUL)]
InstanceIdPath = Annotated[str, Path(pattern=NO_NUL, max_length=MAX_ID_LENGTH)]

StatusQuery = Annotated[list[Status] | None, Query(description="Repeat to match any of several statuses")]
APP_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
AppQuery = Annotated[str | None, Query(alias="appID", max_length=256, pattern=APP_ID_PATTERN,
                                       description="The instance's app (default: this endpoint's app)")]


class AppEndpoints(Protocol):
    """What can open an app's own endpoint (the server): its gRPC and HTTP ports."""

    def open_app(self, app_id: str, grpc_port: int, http_port: int) -> Awaitable[tuple[int, int]]: ...

    def app_ports(self) -> dict[str, tuple[int, int]]: ...


class Failure(BaseModel):
    error_type: str
    error_message: str
    stack_trace: str | None = None


class Instance(BaseModel):
    instance_id: str
    app_id: str = Field(description="The app the instance belongs to")
    workflow_name: str
    status: Status
    created_at: datetime
    last_updated_at: datetime
    started_at: datetime | None = Field(None, description="When its first turn started; absent while PENDING")
    completed_at: datetime | None = None
    parent_instance_id: str | None = None
    parent_app_id: str | None = None
    execution_id: str = ""
    input: str | None = Field(None, description="The stored JSON input, as a string")
    output: str | None = Field(None, description="The stored JSON output, as a string")
    custom_status: str | None = None
    failure: Failure | None = None
    properties: dict[str, str] = Field(default_factory=dict, description="Dapr's dapr.workflow.* view")
    tags: dict[str, str] = Field(default_factory=dict)


class InstancePage(BaseModel):
    instances: list[Instance]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; absent on the last")


class HistoryEvent(BaseModel):
    event_id: int
    kind: str = Field(description="The history event type, e.g. taskScheduled, timerFired, executionCompleted")
    timestamp: datetime
    details: dict[str, Any] = Field(description="The event's own fields (protobuf JSON names)")


class InstanceWithHistory(Instance):
    history: list[HistoryEvent]


class WaitResult(BaseModel):
    instance: Instance
    timed_out: bool


class RerunRequest(BaseModel):
    event_id: int = Field(ge=0, le=2**31 - 1, description="eventId of a taskScheduled, timerCreated or"
                                                         " childWorkflowInstanceCreated event")
    new_instance_id: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL)
    input: str | None = Field(None, pattern=NO_NUL, description="Replacement JSON input for the rerun activity or child")
    overwrite_input: bool = False


class RerunResponse(BaseModel):
    new_instance_id: str


class Filter(BaseModel):
    app_id: str | None = Field(None, max_length=256, pattern=APP_ID_PATTERN,
                               description="One app's instances (default: every app's)")
    statuses: list[Status] = Field(default_factory=list)
    workflow_name: Text | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    instance_id_prefix: str | None = Field(None, min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL)
    parent_instance_id: Text | None = None


class TerminateRequest(Filter):
    output: str | None = Field(None, pattern=NO_NUL, description="JSON output recorded on each terminated instance")


class Count(BaseModel):
    count: int


class App(BaseModel):
    app_id: str
    workers: int = Field(description="Workers of the app connected to this engine")
    queued: int = Field(description="Turns and activities waiting for one of its workers")
    grpc_port: int | None = Field(None, description="The app's own endpoint, where it has one")
    http_port: int | None = None


class OpenAppRequest(BaseModel):
    app_id: str = Field(max_length=256, pattern=APP_ID_PATTERN)
    grpc_port: int = Field(0, ge=0, le=65535, description="0: any free port")
    http_port: int = Field(0, ge=0, le=65535, description="0: any free port")


class ErrorBody(BaseModel):
    detail: str


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def instance_model(row: InstanceRow) -> Instance:
    failure = None
    if row.failure is not None:
        f = pb.TaskFailureDetails.FromString(row.failure)
        failure = Failure(error_type=f.errorType, error_message=f.errorMessage,
                          stack_trace=f.stackTrace.value if f.HasField("stackTrace") else None)
    return Instance(
        instance_id=row.instance_id, app_id=row.app_id, workflow_name=row.name, status=Status(status_name(row.status)),
        created_at=_dt(row.created_us), last_updated_at=_dt(row.updated_us),
        completed_at=_dt(row.completed_us) if row.completed_us is not None else None,
        started_at=_dt(row.started_us) if row.started_us is not None else None,
        tags=json.loads(row.tags) if row.tags else {},
        parent_instance_id=row.parent_instance_id, parent_app_id=row.parent_app_id,
        execution_id=row.execution_id, input=row.input,
        output=row.output, custom_status=row.custom_status, failure=failure, properties=workflow_properties(row),
    )


def event_model(event: pb.HistoryEvent) -> HistoryEvent:
    kind = event.WhichOneof("eventType") or "unknown"
    details = MessageToDict(getattr(event, kind)) if kind != "unknown" else {}
    return HistoryEvent(event_id=event.eventId, kind=kind, timestamp=_dt(ts_to_us(event.timestamp)), details=details)


def _us(value: datetime | None) -> int | None:
    if value is None:
        return None
    return int(value.timestamp() * 1_000_000)


def _query(f: Filter, limit: int = MAX_PAGE, after: tuple[int, str] | None = None) -> InstanceQuery:
    return InstanceQuery(
        app_id=f.app_id, statuses=[status_from_name(s.value) for s in f.statuses], name=f.workflow_name,
        created_from_us=_us(f.created_from), created_to_us=_us(f.created_to), id_prefix=f.instance_id_prefix,
        parent_id=f.parent_instance_id, after=after, limit=limit,
    )


# A keyset cursor: "<created_us>:<instance key>" of the last row of the previous page.
CURSOR_PATTERN = r"^[0-9]{1,18}:[^\x00]*$"


def encode_cursor(row: InstanceRow) -> str:
    return f"{row.created_us}:{row.key}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    created, sep, instance_id = cursor.partition(":")
    if not sep or not created.isdigit() or len(created) > 18:
        raise HTTPException(status_code=400, detail=f"invalid cursor: {cursor!r}")
    return int(created), instance_id


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody}, 404: {"model": ErrorBody}, 409: {"model": ErrorBody},
}


async def _durahub_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DurahubError)
    return JSONResponse({"detail": str(exc)}, status_code=lookup(EXTENSION_HTTP, exc) or 500)


def _new_app() -> FastAPI:
    return FastAPI(
        exception_handlers={DurahubError: _durahub_error},
        title="durahub extension API",
        version=__version__,
        description="Listing, history, bulk operations and waiting, beyond Dapr's workflow API.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )


def create_extensions_app(engine: Engine, own_app: str | None = None, apps: AppEndpoints | None = None) -> FastAPI:
    """The API as served on one app's endpoint (`own_app`): instance routes address that app's instances unless
    `?appID=` names another; listings cover every app unless filtered."""
    app = _new_app()
    endpoint_app = own_app or engine.config.app_id

    async def _row_or_404(instance_id: str, app_id: str | None = None) -> InstanceRow:
        row = await engine.get_instance(instance_id, app=app_id or endpoint_app)
        if row is None:
            raise HTTPException(status_code=404, detail=f"workflow instance '{instance_id}' not found")
        return row

    @app.get("/apps", response_model=list[App], summary="The apps this engine serves, with their workers")
    async def list_apps() -> list[App]:
        ports = apps.app_ports() if apps is not None else {}
        known = {a.app_id: a for a in engine.apps()}
        return [App(app_id=name, workers=known[name].workers if name in known else 0,
                    queued=known[name].queued if name in known else 0,
                    grpc_port=ports.get(name, (None, None))[0], http_port=ports.get(name, (None, None))[1])
                for name in sorted({*known, *ports})]

    @app.post("/apps", response_model=App, responses=ERRORS,
              summary="Open an app's own endpoint (gRPC and HTTP ports): workers connecting there are that app's"
                      " (what `durahub run --app-id` does when it attaches to a running engine)")
    async def open_app(body: OpenAppRequest) -> App:
        if apps is None:
            raise HTTPException(status_code=409, detail="this engine cannot open endpoints for other apps")
        try:
            grpc_port, http_port = await apps.open_app(body.app_id, body.grpc_port, body.http_port)
        except OSError as exc:
            raise HTTPException(status_code=409, detail=f"cannot open an endpoint for app '{body.app_id}': {exc}") from None
        return App(app_id=body.app_id, workers=engine.workers_of(body.app_id), queued=0, grpc_port=grpc_port,
                   http_port=http_port)

    @app.get("/instances", response_model=InstancePage, responses=ERRORS, summary="List instances")
    async def list_instances(
        status: StatusQuery = None,
        workflow_name: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, pattern=NO_NUL)] = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        instance_id_prefix: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL)] = None,
        parent_instance_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, pattern=NO_NUL)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(max_length=4 * MAX_ID_LENGTH, pattern=CURSOR_PATTERN,
                                            description="next_cursor of the previous page")] = None,
        app_id: Annotated[str | None, Query(alias="appID", max_length=256, pattern=APP_ID_PATTERN,
                                            description="One app's instances (default: every app's)")] = None,
    ) -> InstancePage:
        f = Filter(app_id=app_id, statuses=status or [], workflow_name=workflow_name, created_from=created_from,
                   created_to=created_to, instance_id_prefix=instance_id_prefix,
                   parent_instance_id=parent_instance_id)
        after = decode_cursor(cursor) if cursor else None
        rows = await engine.query_instances(_query(f, limit + 1, after))
        page = rows[:limit]
        return InstancePage(instances=[instance_model(r) for r in page],
                            next_cursor=encode_cursor(page[-1]) if len(rows) > limit else None)

    @app.get("/instances/{instance_id}", response_model=InstanceWithHistory, responses=ERRORS,
             summary="One instance with its full history")
    async def get_instance(instance_id: InstanceIdPath, app_id: AppQuery = None) -> InstanceWithHistory:
        row = await _row_or_404(instance_id, app_id)
        history = await engine.history(instance_id, app=row.app_id) or []
        return InstanceWithHistory(**instance_model(row).model_dump(), history=[event_model(e) for e in history])

    @app.get("/instances/{instance_id}/wait", response_model=WaitResult, responses=ERRORS,
             summary="Long-poll until the instance reaches one of the statuses (default: any terminal one) or"
                     " changes after `changed_after`")
    async def wait(
        instance_id: InstanceIdPath,
        status: StatusQuery = None,
        changed_after: Annotated[datetime | None, Query(description="Return once lastUpdatedAt is later")] = None,
        timeout: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS)] = 30.0,
        app_id: AppQuery = None,
    ) -> WaitResult:
        app_id = (await _row_or_404(instance_id, app_id)).app_id
        wanted = {status_from_name(s.value) for s in status or []} or set(TERMINAL_STATUSES)
        after_us = _us(changed_after)

        def done(row: InstanceRow) -> bool:
            if after_us is not None:
                return row.updated_us > after_us
            return row.status in wanted

        row = await engine.wait_for(instance_id, done, timeout, app=app_id)
        if row is not None:
            return WaitResult(instance=instance_model(row), timed_out=False)
        return WaitResult(instance=instance_model(await _row_or_404(instance_id, app_id)), timed_out=True)

    @app.post("/instances/{instance_id}/rerun", response_model=RerunResponse, status_code=202, responses=ERRORS,
              summary="Start a new instance that replays this finished one up to an event and runs on from there")
    async def rerun(instance_id: InstanceIdPath, body: RerunRequest, app_id: AppQuery = None) -> RerunResponse:
        new_id = await engine.rerun_from_event(instance_id, body.event_id, body.new_instance_id, body.input,
                                               body.overwrite_input, app=app_id or endpoint_app)
        return RerunResponse(new_instance_id=new_id)

    @app.post("/purge", response_model=Count, responses=ERRORS,
              summary="Purge every finished instance matching the filter (children included)")
    async def purge(body: Filter) -> Count:
        return Count(count=await engine.purge_matching(_query(body)))

    @app.post("/terminate", response_model=Count, responses=ERRORS,
              summary="Terminate every active instance matching the filter (recursively); does not wait")
    async def terminate(body: TerminateRequest) -> Count:
        return Count(count=await engine.terminate_matching(_query(body), body.output))

    from durahub.api.views import views_router  # here: that module builds on this one's models

    app.include_router(views_router(engine, endpoint_app))
    from durahub.api.actions import action_routes  # it builds on this module's models

    app.include_router(action_routes(engine, ERRORS, endpoint_app))
    from durahub.api.live import live_router  # it builds on this module's models

    app.include_router(live_router(engine))
    return app
