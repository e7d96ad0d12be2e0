"""Helpers shared by the example apps.

Everything here uses only the public surface of the official Dapr SDK (``dapr.ext.workflow``)
and FastAPI, so the apps behave the same against durahub and against a real Dapr sidecar:

- ``env_seconds``: durations read from the environment (tests and benchmarks set them to 0).
- ``WorkflowService``: owns the app's ``WorkflowRuntime`` and ``DaprWorkflowClient``, starts and
  stops them in the FastAPI lifespan, reports whether the worker is connected, and turns SDK
  errors into HTTP errors (unknown instance -> 404, wrong state -> 409, engine down -> 503).
- ``render_state``: a JSON-friendly view of a ``WorkflowState`` with plain status names.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeVar

import dapr.ext.workflow as wf
import grpc
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

logger = logging.getLogger("examples")

T = TypeVar("T")

# Dapr instance ids: letters, digits, '-' and '_' (what the Dapr HTTP API accepts in a URL).
INSTANCE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

HEALTH_PROBE_INSTANCE_ID = "examples-health-probe"

ACTIVE = frozenset({"RUNNING", "PENDING", "SUSPENDED"})
TERMINAL = frozenset({"COMPLETED", "FAILED", "TERMINATED"})


def env_seconds(name: str, default: float) -> float:
    """A non-negative number of seconds from the environment variable ``name``."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def parse_payload(raw: str | None) -> Any:
    """Workflow inputs/outputs travel as JSON text; return the decoded value (or the text)."""
    if raw is None or raw == "":
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:  # the SDK hands out naive UTC datetimes
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat().replace("+00:00", "Z")


def status_name(state: wf.WorkflowState) -> str:
    """``COMPLETED`` rather than ``WorkflowStatus.COMPLETED``."""
    return state.runtime_status.name


def render_state(state: wf.WorkflowState) -> dict[str, Any]:
    failure = getattr(state, "failure_details", None)
    return {
        "instance_id": state.instance_id,
        "workflow_name": state.name,
        "runtime_status": status_name(state),
        "created_at": _iso(state.created_at),
        "last_updated_at": _iso(state.last_updated_at),
        "input": parse_payload(state.serialized_input),
        "output": parse_payload(state.serialized_output),
        "custom_status": parse_payload(state.serialized_custom_status),
        "failure_details": (
            None
            if failure is None
            else {"error_type": failure.error_type, "message": failure.message}
        ),
    }


class ErrorResponse(BaseModel):
    """Body of every 404 / 409 / 503 answer."""

    detail: str = Field(description="What went wrong, in words.")


class FailureDetails(BaseModel):
    error_type: str | None = None
    message: str | None = None


class WorkflowStatusResponse(BaseModel):
    instance_id: str
    workflow_name: str | None = None
    runtime_status: str = Field(
        description="RUNNING, PENDING, SUSPENDED, COMPLETED, FAILED or TERMINATED", examples=["COMPLETED"]
    )
    created_at: str | None = None
    last_updated_at: str | None = None
    input: Any = None
    output: Any = None
    custom_status: Any = None
    failure_details: FailureDetails | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such workflow instance"},
    409: {"model": ErrorResponse, "description": "The operation is not valid in the instance's current state"},
    503: {"model": ErrorResponse, "description": "The workflow engine is not reachable"},
}


class WorkflowService:
    """The app's workflow runtime and client, with HTTP-shaped error handling."""

    def __init__(self, runtime: wf.WorkflowRuntime) -> None:
        self.runtime = runtime
        self._client: wf.DaprWorkflowClient | None = None
        self.started = False

    # -- lifecycle -------------------------------------------------------------------------
    def lifespan(self) -> Callable[[FastAPI], Any]:
        @asynccontextmanager
        async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
            try:
                # Blocks until the worker's stream to the engine is open (SDK default: 30 s).
                self.runtime.start()
                logger.info("workflow runtime started")
            except Exception as exc:  # keep serving: the worker keeps reconnecting, /health tells
                logger.error("workflow runtime did not connect: %s", exc)
            self.started = True
            try:
                yield
            finally:
                self.started = False
                try:
                    self.runtime.shutdown()
                except Exception as exc:
                    logger.warning("workflow runtime shutdown: %s", exc)
                if self._client is not None:
                    close = getattr(self._client, "close", None)
                    if close is not None:
                        close()
                    self._client = None

        return _lifespan

    @property
    def client(self) -> wf.DaprWorkflowClient:
        if self._client is None:
            self._client = wf.DaprWorkflowClient()
        return self._client

    def connected(self) -> bool:
        """Whether the worker has its work-item stream open and the engine answers a call.

        Both checks are needed: the 1.18 SDK never clears its "stream ready" flag after the
        connection drops, so a cheap lookup of a never-used instance id confirms the engine is
        actually there (a missing instance is a normal answer; an unreachable engine raises).
        """
        if not self.started:
            return False
        try:
            if not self.runtime.wait_for_worker_ready(timeout=0.05):
                return False
            self.client.get_workflow_state(HEALTH_PROBE_INSTANCE_ID, fetch_payloads=False)
            return True
        except Exception:
            return False

    # -- calls -----------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one SDK call, mapping gRPC errors to HTTP errors."""
        try:
            return fn()
        except grpc.RpcError as exc:
            raise_for_rpc_error(what, exc)

    def state(self, instance_id: str) -> wf.WorkflowState:
        """The instance's state, or 404."""
        state = self.call(
            f"get workflow {instance_id}", lambda: self.client.get_workflow_state(instance_id, fetch_payloads=True)
        )
        if state is None:
            raise HTTPException(status_code=404, detail=f"Workflow instance '{instance_id}' not found")
        return state

    def require_status(
        self, instance_id: str, allowed: Iterable[str], action: str, hint: str = ""
    ) -> wf.WorkflowState:
        """The instance's state if its status is one of ``allowed``; otherwise 404 / 409."""
        state = self.state(instance_id)
        status = status_name(state)
        allowed = tuple(allowed)
        if status not in allowed:
            msg = (
                f"Cannot {action} workflow instance '{instance_id}': it is {status}"
                f" (only {' or '.join(allowed)} instances can be {hint or action + 'd'})"
            )
            raise HTTPException(status_code=409, detail=msg)
        return state


def raise_for_rpc_error(what: str, exc: grpc.RpcError) -> NoReturn:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    if code == grpc.StatusCode.NOT_FOUND:
        raise HTTPException(status_code=404, detail=f"Cannot {what}: {details}") from exc
    if code in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION):
        raise HTTPException(status_code=409, detail=f"Cannot {what}: {details}") from exc
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        raise HTTPException(status_code=503, detail=f"Workflow engine unavailable ({what}): {details}") from exc
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        raise HTTPException(status_code=422, detail=f"Cannot {what}: {details}") from exc
    logger.error("unexpected engine error during %s: %s %s", what, code, details)
    raise HTTPException(status_code=502, detail=f"Workflow engine error ({what}): {details}") from exc


class HealthResponse(BaseModel):
    status: str = Field(examples=["healthy"])
    workflow_runtime: str = Field(examples=["running"])


def add_health_route(app: FastAPI, service: WorkflowService) -> None:
    """`GET /health`: 200 while the app's workflow worker is connected to the engine, 503 otherwise."""

    @app.get(
        "/health",
        response_model=HealthResponse,
        summary="Health check",
        responses={503: {"model": HealthResponse, "description": "Workflow runtime not connected"}},
    )
    def health(response: Response) -> HealthResponse:
        if service.connected():
            return HealthResponse(status="healthy", workflow_runtime="running")
        response.status_code = 503
        return HealthResponse(status="unhealthy", workflow_runtime="not connected")
