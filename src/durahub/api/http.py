"""HTTP adapter: Dapr's health and metadata endpoints and its workflow HTTP API (spec §5).

The workflow routes exist under `/v1.0-alpha1`, `/v1.0-beta1` and `/v1.0`; the `{component}` segment is
required and ignored, bodies are raw strings, and none of the operations wait for the workflow.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from durahub import __version__
from durahub.api.common import dapr_id_error, workflow_properties
from durahub.api.errors import DAPR_HTTP, lookup
from durahub.api.extensions import AppEndpoints, create_extensions_app
from durahub.api.guard import BrowserGuard
from durahub.core.apps import check_app_id
from durahub.core.state import status_name
from durahub.core.time import us_to_ts
from durahub.core.tracing import SpanRef, parse_traceparent
from durahub.engine import Engine
from durahub.errors import DurahubError
from durahub.observability.endpoint import metrics_handler
from durahub.store.base import (
    InstanceExists,
    InstanceNotFound,
    InstanceNotTerminal,
    InstanceRow,
    InstanceStalled,
)

PREFIXES = ("/v1.0-alpha1", "/v1.0-beta1", "/v1.0")


def dapr_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errorCode": code, "message": message}, status_code=status)


def accepted() -> JSONResponse:
    return JSONResponse({}, status_code=202)


def not_found(instance_id: str) -> JSONResponse:
    return dapr_error(404, "ERR_INSTANCE_ID_NOT_FOUND",
                      f"unable to find workflow with the provided instance ID: {instance_id}")


def workflow_json(row: InstanceRow) -> dict[str, object]:
    properties = workflow_properties(row)
    body: dict[str, object] = {
        "instanceID": row.instance_id,
        "workflowName": row.name,
        "createdAt": us_to_ts(row.created_us).ToJsonString(),
        "lastUpdatedAt": us_to_ts(row.updated_us).ToJsonString(),
        "runtimeStatus": status_name(row.status),
        "appID": row.app_id,
    }
    if properties:
        body["properties"] = properties
    return body


async def read_body(request: Request, limit: int) -> str | Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return dapr_error(413, "ERR_BODY_TOO_LARGE", f"request body exceeds the limit of {limit} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return dapr_error(400, "ERR_BODY_READ", f"failed to read request body: {exc}")


class DaprWorkflowHandlers:
    """The handlers of Dapr's health, metadata and workflow routes of one app's endpoint. Dapr 1.19's `?appID=`
    addresses another app's instance."""

    def __init__(self, engine: Engine, app_id: str | None = None) -> None:
        self.engine = engine
        self.app_id = app_id or engine.config.app_id
        self.limit = engine.config.max_message_bytes

    def app(self, request: Request) -> str:
        target = request.query_params.get("appID")
        return check_app_id(target) if target else self.app_id

    async def healthz(self, request: Request) -> Response:
        return Response(status_code=204)

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "id": self.app_id,
                "runtimeVersion": f"durahub-{__version__}",
                "enabledFeatures": [],
                "actors": [],
                "components": [],
                # Dapr's extended metadata is string to string: the apps this engine serves, comma-separated.
                "extended": {"durahub.apps": ",".join(a.app_id for a in self.engine.apps())},
                "workflows": {"connectedWorkers": self.engine.workers_of(self.app_id)},
            }
        )

    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        instance_id = request.query_params.get("instanceID") or str(uuid.uuid4())
        invalid = dapr_id_error(instance_id)
        if invalid is not None:
            return dapr_error(400, *invalid)
        body = await read_body(request, self.limit)
        if isinstance(body, Response):
            return body
        try:
            await self.engine.start_instance(instance_id, name, body, app=self.app(request),
                                             trace_parent=caller_span(request))
        except InstanceExists as exc:
            return dapr_error(500, "ERR_START_WORKFLOW",
                              f"error starting workflow '{name}': unable to start workflow: failed to start workflow:"
                              f" {exc}")
        location = str(request.url_for(f"get{request.scope['route_prefix']}", component=request.path_params["component"],
                                       instance_id=instance_id))
        return JSONResponse({"instanceID": instance_id}, status_code=202, headers={"Location": location})

    async def get(self, request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        row = await self.engine.get_instance(instance_id, app=self.app(request))
        if row is None:
            return not_found(instance_id)
        return JSONResponse(workflow_json(row))

    async def raise_event(self, request: Request, instance_id: str) -> object:
        event_name = request.path_params.get("event_name", "")
        if not event_name:
            return dapr_error(400, "ERR_WORKFLOW_EVENT_NAME_MISSING", "missing workflow event name")
        body = await read_body(request, self.limit)
        if isinstance(body, Response):
            return body
        await self.engine.raise_event(instance_id, event_name, body, app=self.app(request),
                                      trace_parent=caller_span(request))
        return None

    def operations(self) -> dict[str, Callable[[Request], Awaitable[Response]]]:
        """The POST operations on an instance, by path suffix, with Dapr's error codes and messages."""
        engine, app = self.engine, self.app
        raise_handler = operation("ERR_RAISE_EVENT_WORKFLOW", lambda i: f"error raising event on workflow '{i}'",
                                  self.raise_event)
        return {
            "raiseEvent/{event_name}": raise_handler,
            "raiseEvent": raise_handler,
            "raiseEvent/": raise_handler,
            "pause": operation("ERR_PAUSE_WORKFLOW", lambda i: f"error pausing workflow {i}",
                               lambda r, i: engine.suspend(i, None, app=app(r))),
            "resume": operation("ERR_RESUME_WORKFLOW", lambda i: f"error resuming workflow {i}",
                                lambda r, i: engine.resume(i, None, app=app(r))),
            "terminate": operation("ERR_TERMINATE_WORKFLOW", lambda i: f"error terminating workflow '{i}'",
                                   lambda r, i: engine.terminate(i, None, True, app=app(r)), unknown_is_404=True),
            "purge": operation("ERR_PURGE_WORKFLOW", lambda i: f"error purging workflow {i}",
                               lambda r, i: engine.purge(i, True, app=app(r)), unknown_is_404=True),
        }


def caller_span(request: Request) -> SpanRef | None:
    """The caller's span from the W3C `traceparent`/`tracestate` headers."""
    traceparent = request.headers.get("traceparent")
    return parse_traceparent(traceparent, request.headers.get("tracestate", "")) if traceparent else None


def operation(
    code: str, describe: Callable[[str], str], act: Callable[[Request, str], Awaitable[object]],
    unknown_is_404: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    """A handler for an operation on an instance: 202, or Dapr's error answer for what the engine refused."""

    async def handler(request: Request) -> Response:
        instance_id = request.path_params["instance_id"]
        try:
            result = await act(request, instance_id)
        except InstanceNotFound as exc:
            if unknown_is_404:
                return not_found(instance_id)
            return dapr_error(500, code, f"{describe(instance_id)}: {exc}")
        except (InstanceStalled, InstanceNotTerminal, InstanceExists) as exc:
            return dapr_error(500, code, f"{describe(instance_id)}: {exc}")
        if isinstance(result, Response):
            return result
        return accepted()

    return handler


async def missing_name(request: Request) -> Response:
    return dapr_error(400, "ERR_WORKFLOW_NAME_MISSING", "workflow name is not configured")


async def missing_id(request: Request) -> Response:
    return dapr_error(400, "ERR_INSTANCE_ID_PROVIDED_MISSING", "no instance ID was provided")


def create_app(engine: Engine, app_id: str | None = None, apps: AppEndpoints | None = None) -> Starlette:
    """The HTTP API of one app's endpoint (`app_id`, default the engine's app); `apps` opens endpoints for
    other apps (`POST /durahub/v1/apps`), where the server can."""
    h = DaprWorkflowHandlers(engine, app_id)
    routes: list[BaseRoute] = [
        Route("/v1.0/healthz", h.healthz, methods=["GET"]),
        Route("/v1.0/healthz/outbound", h.healthz, methods=["GET"]),
        Route("/v1.0/metadata", h.metadata, methods=["GET"]),
        Route("/metrics", metrics_handler(engine.metrics_exposition), methods=["GET"]),
    ]
    operations = h.operations()
    for prefix in PREFIXES:
        base = f"{prefix}/workflows/{{component}}"
        # Empty path segments (`.../dapr//start`, `.../dapr//pause`) name no workflow or instance.
        routes.append(Route(f"{base}//start", missing_name, methods=["POST"]))
        routes.append(Route(f"{base}/", missing_id, methods=["GET"]))
        routes.append(Route(f"{base}//{{operation:path}}", missing_id, methods=["POST"]))
        routes.append(_prefixed(Route(f"{base}/{{name}}/start", h.start, methods=["POST"]), prefix))
        routes.append(_prefixed(Route(f"{base}/{{instance_id}}", h.get, methods=["GET"], name=f"get{prefix}"), prefix))
        for suffix, handler in operations.items():
            routes.append(_prefixed(Route(f"{base}/{{instance_id}}/{suffix}", handler, methods=["POST"]), prefix))
    routes.append(Mount("/durahub/v1", app=create_extensions_app(engine, h.app_id, apps)))
    if engine.config.dashboard:
        from durahub.dashboard import dashboard_app

        routes.append(Mount("/dashboard", app=dashboard_app(token_required=engine.config.api_token is not None)))
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, DurahubError: durahub_error},
                     middleware=[Middleware(BrowserGuard, bound_host=engine.config.host)])


async def durahub_error(request: Request, exc: Exception) -> Response:
    """A durahub error no route translated itself: its status and Dapr error code from `api.errors.DAPR_HTTP`."""
    assert isinstance(exc, DurahubError)
    status, code = lookup(DAPR_HTTP, exc) or (500, "ERR_INTERNAL")
    return dapr_error(status, code, str(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    """Routing errors as JSON: FastAPI's shape under /durahub, Dapr's elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/durahub/"):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    code = "ERR_NOT_FOUND" if exc.status_code == 404 else "ERR_BAD_REQUEST"
    return dapr_error(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")


def _prefixed(route: Route, prefix: str) -> Route:
    """Record which API prefix a request came in on, so a Location header points at the same version."""
    endpoint = route.app

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        scope["route_prefix"] = prefix
        await endpoint(scope, receive, send)

    route.app = app
    return route
