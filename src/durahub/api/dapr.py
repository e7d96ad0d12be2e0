"""gRPC adapter for the workflow methods of Dapr's runtime API (`dapr.proto.runtime.v1.Dapr`, spec §4).

Older SDKs (`DaprClient.start_workflow` ... up to python-sdk 1.16) and other languages call these. The
Alpha1 and Beta1 generations behave identically; none of them waits for the workflow.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import grpc
from dapr.proto.runtime.v1 import dapr_pb2_grpc
from dapr.proto.runtime.v1 import workflow_pb2 as wpb
from google.protobuf import empty_pb2

from durahub.api.common import dapr_id_error, trace_caller, workflow_properties
from durahub.api.errors import grpc_errors
from durahub.core.apps import check_app_id
from durahub.core.state import status_name
from durahub.core.time import us_to_ts
from durahub.engine import Engine
from durahub.store.base import InstanceExists, InstanceNotFound, StoreError

START_TIME_OPTION = "dapr.workflow.start_time"


async def _require_id(instance_id: str, context: grpc.aio.ServicerContext) -> None:
    if not instance_id:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no instance ID was provided")


def _not_found(instance_id: str) -> str:
    return f"unable to find workflow with the provided instance ID: {instance_id}"


@grpc_errors
class DaprWorkflowService(dapr_pb2_grpc.DaprServicer):
    """One app's endpoint; a request's `app_id` (Dapr 1.19) addresses another app's instance."""

    def __init__(self, engine: Engine, app_id: str | None = None) -> None:
        self.engine = engine
        self.app_id = app_id or engine.config.app_id

    def _app(self, request: Any) -> str:
        target = getattr(request, "app_id", "")
        return check_app_id(target) if target else self.app_id

    async def StartWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        instance_id = request.instance_id or str(uuid.uuid4())
        invalid = dapr_id_error(instance_id)
        if invalid is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, invalid[1])
        if not request.workflow_name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "workflow name is not configured")
        scheduled_us = None
        start_time = request.options.get(START_TIME_OPTION)
        if start_time:
            try:
                scheduled_us = int(datetime.fromisoformat(start_time.replace("Z", "+00:00")).timestamp() * 1_000_000)
            except ValueError:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"invalid {START_TIME_OPTION} '{start_time}': expected an RFC 3339 time")
        try:
            input = request.input.decode("utf-8")
        except UnicodeDecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "workflow input must be UTF-8 text")
        try:
            await self.engine.start_instance(instance_id, request.workflow_name, input, scheduled_us,
                                             app=self._app(request),
                                             trace_parent=trace_caller(dict(context.invocation_metadata() or ())))
        except InstanceExists as exc:
            await context.abort(
                grpc.StatusCode.ALREADY_EXISTS,
                f"error starting workflow '{request.workflow_name}': unable to start workflow: failed to start"
                f" workflow: {exc}",
            )
        return wpb.StartWorkflowResponse(instance_id=instance_id)

    async def GetWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instance_id, context)
        row = await self.engine.get_instance(request.instance_id, app=self._app(request))
        if row is None:
            # daprd answers OK with only the id; old clients read the empty status as "no such instance".
            return wpb.GetWorkflowResponse(instance_id=request.instance_id)
        return wpb.GetWorkflowResponse(
            instance_id=row.instance_id,
            workflow_name=row.name,
            created_at=us_to_ts(row.created_us),
            last_updated_at=us_to_ts(row.updated_us),
            runtime_status=status_name(row.status),
            properties=workflow_properties(row),
        )

    async def TerminateWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instance_id, context)
        try:
            await self.engine.terminate(request.instance_id, None, True, app=self._app(request))
        except InstanceNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, _not_found(request.instance_id))
        return empty_pb2.Empty()

    async def PurgeWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instance_id, context)
        try:
            await self.engine.purge(request.instance_id, True, app=self._app(request))
        except InstanceNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, _not_found(request.instance_id))
        except StoreError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"error purging workflow {request.instance_id}: {exc}")
        return empty_pb2.Empty()

    async def PauseWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instance_id, context)
        try:
            await self.engine.suspend(request.instance_id, None, app=self._app(request))
        except InstanceNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, _not_found(request.instance_id))
        return empty_pb2.Empty()

    async def ResumeWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instance_id, context)
        try:
            await self.engine.resume(request.instance_id, None, app=self._app(request))
        except InstanceNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, _not_found(request.instance_id))
        return empty_pb2.Empty()

    async def RaiseEventWorkflowBeta1(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instance_id, context)
        if not request.event_name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing workflow event name")
        try:
            data = request.event_data.decode("utf-8")
        except UnicodeDecodeError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "event data must be UTF-8 text")
        try:
            await self.engine.raise_event(request.instance_id, request.event_name, data, app=self._app(request))
        except InstanceNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, _not_found(request.instance_id))
        except StoreError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"error raising event on workflow '{request.instance_id}': {exc}")
        return empty_pb2.Empty()

    # The deprecated Alpha1 generation is the same API.
    StartWorkflowAlpha1 = StartWorkflowBeta1
    GetWorkflowAlpha1 = GetWorkflowBeta1
    TerminateWorkflowAlpha1 = TerminateWorkflowBeta1
    PurgeWorkflowAlpha1 = PurgeWorkflowBeta1
    PauseWorkflowAlpha1 = PauseWorkflowBeta1
    ResumeWorkflowAlpha1 = ResumeWorkflowBeta1
    RaiseEventWorkflowAlpha1 = RaiseEventWorkflowBeta1
