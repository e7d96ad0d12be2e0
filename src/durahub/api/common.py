"""What the Dapr runtime API and the HTTP API share: instance-id rules and the `dapr.workflow.*` properties."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

from durahub.core.tracing import SpanRef, parse_traceparent
from durahub.protos import pb
from durahub.store.base import InstanceRow

C = TypeVar("C", bound=type)

MAX_DAPR_ID_LENGTH = 64
# The longest instance id durahub's own surfaces (gRPC, /durahub/v1) accept.
MAX_ID_LENGTH = 1024
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


def trace_caller(headers: Mapping[str, str]) -> SpanRef | None:
    """The caller's span from W3C `traceparent`/`tracestate` HTTP headers or gRPC metadata."""
    traceparent = headers.get("traceparent")
    return parse_traceparent(traceparent, headers.get("tracestate", "")) if traceparent else None


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
