"""gRPC requests whose bytes do not decode get INVALID_ARGUMENT (grpcio would answer an opaque UNKNOWN).

The method handlers are wrapped once, when they are registered: a server interceptor would do the same work on
every call and take grpcio's asyncio server off its fast path for registered methods."""

from __future__ import annotations

from typing import Any

import grpc


class _Undecodable:
    def __init__(self, error: Exception) -> None:
        self.error = error


def tolerant_handler(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """`handler` (of the full method name `method`), answering undecodable requests with INVALID_ARGUMENT."""
    if handler.request_streaming or handler.request_deserializer is None:
        return handler
    decode = handler.request_deserializer

    def tolerant(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # noqa: BLE001 - reported to the caller below
            return _Undecodable(exc)

    behavior = handler.unary_stream if handler.response_streaming else handler.unary_unary

    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {method} request: {request.error}")
        return await behavior(request, context)

    make = grpc.unary_stream_rpc_method_handler if handler.response_streaming else grpc.unary_unary_rpc_method_handler
    return make(guarded, request_deserializer=tolerant, response_serializer=handler.response_serializer)


def tolerant_handlers(service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> dict[str, grpc.RpcMethodHandler]:
    return {name: tolerant_handler(f"/{service}/{name}", h) for name, h in handlers.items()}
