"""One table per protocol from durahub's errors (`durahub.errors`) to the wire's status.

A call site that must answer with Dapr's own error code or message (compatibility needs them byte-identical)
keeps that at the call site; everything else goes through these tables, so a new error cannot be forgotten in
one adapter.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from durahub.errors import (
    DurahubError,
    EngineStopping,
    InstanceExists,
    InstanceNotFound,
    InstanceNotTerminal,
    InstanceStalled,
    InvalidAppId,
    InvalidRequest,
    LeaseLost,
    RerunInvalid,
    RerunNotAllowed,
    RerunTargetNotFound,
    StorageFailure,
    WorkflowBlocked,
)

C = TypeVar("C", bound=type)

# gRPC (TaskHubSidecarService and Dapr's runtime API).
GRPC: dict[type[DurahubError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    InstanceNotFound: grpc.StatusCode.NOT_FOUND,
    InstanceExists: grpc.StatusCode.ALREADY_EXISTS,
    InstanceStalled: grpc.StatusCode.FAILED_PRECONDITION,
    InstanceNotTerminal: grpc.StatusCode.FAILED_PRECONDITION,
    StorageFailure: grpc.StatusCode.UNAVAILABLE,
    LeaseLost: grpc.StatusCode.UNAVAILABLE,
    EngineStopping: grpc.StatusCode.UNAVAILABLE,
    RerunTargetNotFound: grpc.StatusCode.NOT_FOUND,
    RerunInvalid: grpc.StatusCode.INVALID_ARGUMENT,
    RerunNotAllowed: grpc.StatusCode.INVALID_ARGUMENT,
    # Not FAILED_PRECONDITION: the 1.19 SDK retries that (and UNAVAILABLE) as transient for 30 s.
    WorkflowBlocked: grpc.StatusCode.ABORTED,
}

# HTTP: durahub's own API (/durahub/v1) answers {"detail": message} with these.
EXTENSION_HTTP: dict[type[DurahubError], int] = {
    InvalidRequest: 400,
    InstanceNotFound: 404,
    InstanceExists: 409,
    InstanceStalled: 409,
    InstanceNotTerminal: 409,
    StorageFailure: 503,
    LeaseLost: 503,
    EngineStopping: 503,
    RerunTargetNotFound: 404,
    RerunInvalid: 400,
    RerunNotAllowed: 409,
    WorkflowBlocked: 409,
}

# HTTP: Dapr's workflow API answers {"errorCode", "message"} with these where no call site says otherwise.
DAPR_HTTP: dict[type[DurahubError], tuple[int, str]] = {
    InvalidAppId: (400, "ERR_WORKFLOW_APP_ID_INVALID"),
    InvalidRequest: (400, "ERR_MALFORMED_REQUEST"),
    StorageFailure: (503, "ERR_STORAGE_UNAVAILABLE"),
    LeaseLost: (503, "ERR_STORAGE_UNAVAILABLE"),
    EngineStopping: (503, "ERR_STORAGE_UNAVAILABLE"),
}

# Errors whose message stands alone (no "what was being done: " prefix).
_UNPREFIXED = (EngineStopping, InvalidAppId)

S = TypeVar("S")


def lookup(table: dict[type[DurahubError], S], exc: DurahubError) -> S | None:
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


async def grpc_abort(context: grpc.aio.ServicerContext, exc: DurahubError, prefix: str = "") -> NoReturn:
    code = lookup(GRPC, exc) or grpc.StatusCode.INTERNAL
    await context.abort(code, str(exc) if isinstance(exc, _UNPREFIXED) else f"{prefix}{exc}")
    raise AssertionError("unreachable: abort raises")


def grpc_errors(cls: C) -> C:
    """Class decorator for gRPC servicers: a durahub error a handler does not translate itself gets its status
    from `GRPC` instead of an opaque UNKNOWN."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not callable(method) or name == "GetWorkItems":  # a stream; it maps its own
            continue

        def wrap(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            @functools.wraps(fn)
            async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await fn(self, request, context)
                except DurahubError as exc:
                    await grpc_abort(context, exc)

            return handler

        setattr(cls, name, wrap(method))
    return cls
