"""gRPC requests whose bytes do not decode get INVALID_ARGUMENT (grpcio would answer an opaque UNKNOWN)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        method = handler_call_details.method

        def tolerant(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as exc:  # noqa: BLE001 - reported to the caller below
                return _Undecodable(exc)

        behavior = handler.unary_stream if handler.response_streaming else handler.unary_unary

        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if isinstance(request, _Undecodable):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"malformed {method} request: {request.error}")
            return await behavior(request, context)

        make = grpc.unary_stream_rpc_method_handler if handler.response_streaming else grpc.unary_unary_rpc_method_handler
        return make(guarded, request_deserializer=tolerant, response_serializer=handler.response_serializer)
