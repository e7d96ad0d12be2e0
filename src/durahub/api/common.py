"""What the Dapr runtime API and the HTTP API share: instance-id rules and the `dapr.workflow.*` properties."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from durahub.engine import InvalidRequest
from durahub.protos import pb
from durahub.store.base import InstanceRow, StorageFailure

C = TypeVar("C", bound=type)

MAX_DAPR_ID_LENGTH = 64
_VALID_ID = re.compile(r"^[\w-]+$")  # Unicode letters, digits, underscore and dash


def dapr_id_error(instance_id: str) -> tuple[str, str] | None:
    """(error code, message) when an id breaks Dapr's start rules (<= 64 chars of letters, digits, _ and -)."""
    if len(instance_id) > MAX_DAPR_ID_LENGTH:
        return "ERR_INSTANCE_ID_TOO_LONG", (
            f"workflow instance ID exceeds the max length of {MAX_DAPR_ID_LENGTH} characters"
        )
    if not _VALID_ID.match(instance_id):
        return "ERR_INSTANCE_ID_INVALID", (
            f"workflow instance ID '{instance_id}' is invalid: only alphanumeric and underscore characters are allowed"
        )
    return None


def workflow_properties(row: InstanceRow) -> dict[str, str]:
    """Stored values as strings, each only when it exists; output is left out when the workflow failed."""
    properties: dict[str, str] = {}
    if row.input is not None:
        properties["dapr.workflow.input"] = row.input
    if row.output is not None and row.failure is None:
        properties["dapr.workflow.output"] = row.output
    if row.custom_status is not None:
        properties["dapr.workflow.custom_status"] = row.custom_status
    if row.failure is not None:
        failure = pb.TaskFailureDetails.FromString(row.failure)
        properties["dapr.workflow.failure.error_type"] = failure.errorType
        properties["dapr.workflow.failure.error_message"] = failure.errorMessage
        if failure.HasField("stackTrace"):
            properties["dapr.workflow.failure.stack_trace"] = failure.stackTrace.value
    return properties


def map_engine_errors(cls: C) -> C:
    """Class decorator for gRPC servicers: an `InvalidRequest` from the engine becomes INVALID_ARGUMENT and a
    `StorageFailure` UNAVAILABLE (retryable), instead of an opaque UNKNOWN."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not callable(method):
            continue

        def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            @functools.wraps(fn)
            async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await fn(self, request, context)
                except InvalidRequest as exc:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
                except StorageFailure as exc:
                    await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

            return handler

        if name != "GetWorkItems":  # a streaming handler; it takes no user text
            setattr(cls, name, wrap(method))
    return cls
