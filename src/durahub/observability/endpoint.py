"""`GET /metrics`: the handler every HTTP port mounts, and the listener of its own (`--metrics-port`)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

log = logging.getLogger("durahub.server")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Render = Callable[[], Awaitable[str]]


def metrics_handler(render: Render) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        return Response(await render(), media_type=CONTENT_TYPE)

    return metrics


class MetricsListener:
    """The metrics page on a port of its own, as daprd's `--metrics-port`."""

    def __init__(self, render: Render, host: str, port: int) -> None:
        self._app = Starlette(routes=[Route("/metrics", metrics_handler(render), methods=["GET"])])
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        """Listen; a port that cannot be bound is logged, not fatal: the workflows matter more than the
        metrics, which every HTTP port serves as well."""
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            log.warning("event=metrics_port_unavailable port=%d error=%s", self._port, exc)
            return
        self.port = sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self._app, log_level="warning", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="durahub-metrics")
        log.info("event=metrics_listening host=%s port=%d", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
