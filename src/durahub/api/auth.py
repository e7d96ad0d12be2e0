"""API token checks (`dapr-api-token`), for gRPC and HTTP alike. Health endpoints and the dashboard's static
page (which asks for the token and sends it with each API call) stay open."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import grpc
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

TOKEN_HEADER = "dapr-api-token"
OPEN_HTTP_PATHS = ("/v1.0/healthz", "/v1.0/healthz/outbound")
# Browsers' EventSource cannot send headers: this route alone also takes the token as `?token=`.
TOKEN_QUERY_PATHS = ("/durahub/v1/stream",)


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


class GrpcTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        metadata = dict(handler_call_details.invocation_metadata or ())
        if token_matches(self._token, metadata.get(TOKEN_HEADER)):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: let gRPC answer UNIMPLEMENTED

        async def deny(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"missing or invalid '{TOKEN_HEADER}' metadata")

        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(deny)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                deny, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(deny)
        return grpc.unary_unary_rpc_method_handler(
            deny, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)


class HttpTokenMiddleware:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_HTTP_PATHS and not _open_page(scope["path"]):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            given = headers.get(TOKEN_HEADER)
            if given is None and scope["path"] in TOKEN_QUERY_PATHS:
                given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [None])[0]
            if not token_matches(self.token, given):
                response = JSONResponse(
                    {"errorCode": "ERR_UNAUTHORIZED", "message": f"missing or invalid '{TOKEN_HEADER}' header"},
                    status_code=401,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _open_page(path: str) -> bool:
    return path == "/dashboard" or path.startswith("/dashboard/")
