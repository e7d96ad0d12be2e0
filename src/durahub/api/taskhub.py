"""gRPC adapter for durabletask's `TaskHubSidecarService`: validate, call the engine, map errors to statuses."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2

from durahub.api.common import MAX_ID_LENGTH
from durahub.api.errors import grpc_abort, grpc_errors
from durahub.core.apps import check_app_id
from durahub.core.time import ts_to_us, us_to_ts
from durahub.core.tracing import SpanRef, from_proto, parse_traceparent
from durahub.engine import (
    Engine,
    is_finished,
    is_running_or_finished,
    is_started,
    is_suspended_or_finished,
)
from durahub.errors import DurahubError
from durahub.protos import pb, taskhub_grpc
from durahub.store.base import (
    InstanceNotFound,
    InstanceQuery,
    InstanceRow,
)

log = logging.getLogger("durahub.grpc")

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 10_000


def workflow_state(row: InstanceRow, with_payloads: bool) -> pb.WorkflowState:
    state = pb.WorkflowState(instanceId=row.instance_id, name=row.name,
                             workflowStatus=row.status)  # type: ignore[arg-type]  # the stubs want the enum type
    state.createdTimestamp.CopyFrom(us_to_ts(row.created_us))
    state.lastUpdatedTimestamp.CopyFrom(us_to_ts(row.updated_us))
    if row.execution_id:
        state.executionId.value = row.execution_id
    if row.completed_us is not None:
        state.completedTimestamp.CopyFrom(us_to_ts(row.completed_us))
    if row.parent_instance_id:
        state.parentInstanceId.value = row.parent_instance_id
        if row.parent_app_id:
            state.parentAppId.value = row.parent_app_id
    if row.started_us is not None:
        state.startedAt.CopyFrom(us_to_ts(row.started_us))
    if row.tags:
        state.tags.update(json.loads(row.tags))
    if with_payloads:
        if row.input is not None:
            state.input.value = row.input
        if row.output is not None:
            state.output.value = row.output
        if row.custom_status is not None:
            state.customStatus.value = row.custom_status
        if row.failure is not None:
            state.failureDetails.ParseFromString(row.failure)
    return state


def instance_response(row: InstanceRow | None, with_payloads: bool) -> pb.GetInstanceResponse:
    if row is None:
        return pb.GetInstanceResponse(exists=False)
    return pb.GetInstanceResponse(exists=True, workflowState=workflow_state(row, with_payloads))


async def _require_id(instance_id: str, context: grpc.aio.ServicerContext) -> None:
    if not instance_id:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no instance ID was provided")
    if len(instance_id) > MAX_ID_LENGTH:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"workflow instance ID exceeds the max length of {MAX_ID_LENGTH} characters")


async def _guard(context: grpc.aio.ServicerContext, prefix: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run an engine call; a durahub error becomes its status (`api.errors.GRPC`), the message prefixed."""
    try:
        return await call()
    except DurahubError as exc:
        await grpc_abort(context, exc, prefix)


def _caller_span(context: grpc.aio.ServicerContext) -> SpanRef | None:
    """The caller's span from W3C `traceparent`/`tracestate` metadata (what gRPC instrumentation sends)."""
    metadata = dict(context.invocation_metadata() or ())
    traceparent = metadata.get("traceparent")
    return parse_traceparent(traceparent, metadata.get("tracestate", "")) if traceparent else None


def _timeout(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else max(0.0, remaining)


@grpc_errors
class TaskHubService(taskhub_grpc.TaskHubSidecarServiceServicer):
    """One app's endpoint: its workers are that app's, and client calls address its instances unless a 1.19
    `router.targetAppID` names another app (Dapr's cross-app client operations)."""

    def __init__(self, engine: Engine, app_id: str | None = None) -> None:
        self.engine = engine
        self.app_id = app_id or engine.config.app_id

    def _app(self, request: Any) -> str:
        """The app a client request addresses (validated: a bad target is INVALID_ARGUMENT)."""
        router = getattr(request, "router", None)
        target = router.targetAppID if router is not None else ""
        return check_app_id(target) if target else self.app_id

    async def Hello(self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    # -- client RPCs ----------------------------------------------------------------------------------

    async def StartInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        tracer = self.engine.observer.tracer
        if tracer is None:
            return await self._start(request, context, None)
        with tracer.server_call("/TaskHubSidecarService/StartInstance", _caller_span(context)) as call:
            # An SDK that sets parentTraceContext (Go, Java, .NET) names the parent itself, as daprd honours.
            own = from_proto(request.parentTraceContext) if request.HasField("parentTraceContext") else None
            return await self._start(request, context, own or call)

    async def _start(self, request: Any, context: grpc.aio.ServicerContext, trace_parent: SpanRef | None) -> Any:
        instance_id = request.instanceId or uuid.uuid4().hex
        await _require_id(instance_id, context)
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "workflow name is not configured")
        scheduled = ts_to_us(request.scheduledStartTimestamp) if request.HasField("scheduledStartTimestamp") else None
        input = request.input.value if request.HasField("input") else None
        app = self._app(request)
        tags = dict(request.tags)
        enforce = bool(getattr(request, "enforceUniqueInstanceId", False))
        await _guard(context, "failed to create workflow instance: ",
                     lambda: self.engine.start_instance(instance_id, request.name, input, scheduled, app=app, tags=tags,
                                                        enforce_unique=enforce, trace_parent=trace_parent))
        if scheduled is None:
            # Like daprd: the call returns once the first turn has been committed.
            await _guard(context, "",
                         lambda: self.engine.wait_for(instance_id, is_started, _timeout(context), app=app))
        return pb.CreateInstanceResponse(instanceId=instance_id)

    async def GetInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instanceId, context)
        row = await self.engine.get_instance(request.instanceId, app=self._app(request))
        return instance_response(row, request.getInputsAndOutputs)

    async def _wait(self, request: Any, context: grpc.aio.ServicerContext, predicate: Callable[[InstanceRow], bool]) -> Any:
        await _require_id(request.instanceId, context)
        app = self._app(request)
        row = await _guard(context, "",
                           lambda: self.engine.wait_for(request.instanceId, predicate, _timeout(context), app=app))
        if row is None:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"timed out waiting for workflow instance '{request.instanceId}'")
        return instance_response(row, request.getInputsAndOutputs)

    async def WaitForInstanceStart(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._wait(request, context, is_started)

    async def WaitForInstanceCompletion(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._wait(request, context, is_finished)

    async def RaiseEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instanceId, context)
        if not request.name:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "missing workflow event name")
        input = request.input.value if request.HasField("input") else None
        app = self._app(request)
        caller = _caller_span(context) if self.engine.observer.tracer is not None else None
        await _guard(context, "", lambda: self.engine.raise_event(request.instanceId, request.name, input, app=app,
                                                                  trace_parent=caller))
        return pb.RaiseEventResponse()

    async def _act_and_wait(
        self, context: grpc.aio.ServicerContext, request: Any, prefix: str,
        act: Callable[[str], Awaitable[None]], predicate: Callable[[InstanceRow], bool],
    ) -> None:
        """`act(app)` on the request's instance, then wait until its state satisfies `predicate`."""
        instance_id = request.instanceId
        await _require_id(instance_id, context)
        app = self._app(request)
        await _guard(context, prefix, lambda: act(app))
        await _guard(context, prefix, lambda: self.engine.wait_for(instance_id, predicate, _timeout(context), app=app))

    async def TerminateInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        output = request.output.value if request.HasField("output") else None
        await self._act_and_wait(
            context, request, "failed to submit termination request: ",
            lambda app: self.engine.terminate(request.instanceId, output, request.recursive, app=app), is_finished,
        )
        return pb.TerminateResponse()

    async def SuspendInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        reason = request.reason.value if request.HasField("reason") else None
        await self._act_and_wait(context, request, "",
                                 lambda app: self.engine.suspend(request.instanceId, reason, app=app),
                                 is_suspended_or_finished)
        return pb.SuspendResponse()

    async def ResumeInstance(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        reason = request.reason.value if request.HasField("reason") else None
        await self._act_and_wait(context, request, "",
                                 lambda app: self.engine.resume(request.instanceId, reason, app=app),
                                 is_running_or_finished)
        return pb.ResumeResponse()

    async def PurgeInstances(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        which = request.WhichOneof("request")
        app = self._app(request)
        if which == "purgeInstanceFilter":
            f = request.purgeInstanceFilter
            # Like the extension API's bulk purge: only finished instances (of this app), children included.
            count = await self.engine.purge_matching(InstanceQuery(
                app_id=app,
                statuses=list(f.runtimeStatus),
                created_from_us=ts_to_us(f.createdTimeFrom) if f.HasField("createdTimeFrom") else None,
                created_to_us=ts_to_us(f.createdTimeTo) if f.HasField("createdTimeTo") else None,
                limit=1000,
            ))
        else:
            await _require_id(request.instanceId, context)
            count = await _guard(context, "failed to purge workflow state: ",
                                 lambda: self.engine.purge(request.instanceId, request.recursive, request.force,
                                                           app=app))
        response = pb.PurgeInstancesResponse(deletedInstanceCount=count)
        response.isComplete.value = True
        return response

    async def ListInstanceIDs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        size = request.pageSize or DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"pageSize must be at most {MAX_PAGE_SIZE}")
        # Like daprd: this app's instances only (the request has no router).
        ids = await self.engine.list_instance_ids(request.continuationToken or None, size + 1, app=self.app_id)
        response = pb.ListInstanceIDsResponse(instanceIds=ids[:size])
        if len(ids) > size:
            response.continuationToken = ids[size - 1]
        return response

    async def GetInstanceHistory(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await _require_id(request.instanceId, context)
        events = await self.engine.history(request.instanceId, app=self.app_id)
        if events is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"workflow instance '{request.instanceId}' not found")
        return pb.GetInstanceHistoryResponse(events=events)

    async def RerunWorkflowFromEvent(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        source = request.sourceInstanceID
        await _require_id(source, context)
        if request.newInstanceID:
            await _require_id(request.newInstanceID, context)
        input = request.input.value if request.HasField("input") else None
        try:
            new_id = await self.engine.rerun_from_event(source, request.eventID, request.newInstanceID or None, input,
                                                        request.overwriteInput, request.newChildWorkflowInstanceID,
                                                        app=self._app(request))
        except InstanceNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"workflow instance does not exist with ID '{source}'")
        except DurahubError as exc:
            await grpc_abort(context, exc)
        return pb.RerunWorkflowFromEventResponse(newInstanceID=new_id)

    # -- worker RPCs ----------------------------------------------------------------------------------

    async def GetWorkItems(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        stream = self.engine.open_stream(list(request.capabilities), app=self.app_id)
        try:
            while True:
                item = await self.engine.next_work_item(stream)
                await context.write(item)
        except asyncio.CancelledError:
            pass
        finally:
            self.engine.close_stream(stream)

    async def CompleteActivityTask(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.engine.complete_activity_task(request, app=self.app_id)
        return pb.CompleteTaskResponse()

    async def CompleteOrchestratorTask(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.engine.complete_workflow_task(request, app=self.app_id)
        return pb.CompleteTaskResponse()

    async def CompleteWorkflowTask(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self.CompleteOrchestratorTask(request, context)
