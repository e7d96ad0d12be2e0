"""HTTP adapter: Dapr's health and metadata endpoints (the workflow HTTP API is added separately)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from durahub import __version__
from durahub.engine import Engine


def create_app(engine: Engine) -> Starlette:
    async def healthz(request: Request) -> Response:
        return Response(status_code=204)

    async def metadata(request: Request) -> Response:
        return JSONResponse(
            {
                "id": engine.config.app_id,
                "runtimeVersion": f"durahub-{__version__}",
                "enabledFeatures": [],
                "actors": [],
                "components": [],
                "extended": {},
                "workflows": {"connectedWorkers": engine.connected_workers},
            }
        )

    return Starlette(
        routes=[
            Route("/v1.0/healthz", healthz, methods=["GET"]),
            Route("/v1.0/healthz/outbound", healthz, methods=["GET"]),
            Route("/v1.0/metadata", metadata, methods=["GET"]),
        ]
    )
