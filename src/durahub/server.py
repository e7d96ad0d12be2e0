"""The durahub server: store + engine + gRPC and HTTP listeners, startable in-process or from the CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn
from dapr.proto.runtime.v1 import dapr_pb2_grpc

from durahub.api.auth import GrpcTokenInterceptor, HttpTokenMiddleware
from durahub.api.dapr import DaprWorkflowService
from durahub.api.http import create_app
from durahub.api.malformed import tolerant_handlers
from durahub.api.taskhub import TaskHubService
from durahub.config import Config
from durahub.core.apps import check_app_id
from durahub.engine import Engine
from durahub.observability.endpoint import MetricsListener
from durahub.observability.hooks import Observer, TraceLogFilter
from durahub.observability.metrics import WorkflowMetrics
from durahub.observability.span_export import make_tracer
from durahub.protos import taskhub_grpc
from durahub.store.base import Store
from durahub.store.sqlite import SqliteStore

log = logging.getLogger("durahub.server")


def grpc_options(config: Config) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # The SDK pings every 30 s, even with no call in flight; grpcio's defaults answer with GOAWAY.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.so_reuseport", 0),
    ]


class _HandlerCapture:
    """Stands in for a server to collect the handlers the SDK's generated `add_*_to_server` would register."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, handlers


def register(server: grpc.aio.Server, add_to_server: Callable[[Any, Any], None], servicer: object,
             keep: Callable[[str], bool] = lambda name: True) -> None:
    """Register a servicer's methods the way the generated `add_*_to_server` would, wrapped to answer
    undecodable requests with INVALID_ARGUMENT (`api.malformed`), and only the methods `keep` accepts."""
    capture = _HandlerCapture()
    add_to_server(servicer, capture)
    handlers = tolerant_handlers(capture.service, {n: h for n, h in capture.handlers.items() if keep(n)})
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, handlers),))
    server.add_registered_method_handlers(capture.service, handlers)


def add_dapr_workflow_methods(servicer: DaprWorkflowService, server: grpc.aio.Server) -> None:
    """Register only the workflow methods of `dapr.proto.runtime.v1.Dapr`: grpcio's per-call cost grows with
    the number of registered methods, and the other ~100 would only answer UNIMPLEMENTED anyway."""
    register(server, dapr_pb2_grpc.add_DaprServicer_to_server, servicer, lambda name: "Workflow" in name)


def _add_trace_log_filter() -> None:
    engine_log = logging.getLogger("durahub.engine")
    if not any(isinstance(f, TraceLogFilter) for f in engine_log.filters):
        engine_log.addFilter(TraceLogFilter())


def new_owner_id() -> str:
    """Identifies one engine process in leases and change announcements: unique among the processes sharing a
    database, and telling which host and process it is."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def open_store(config: Config, owner: str = "") -> Store:
    """`postgresql://...` selects PostgreSQL; anything else is a SQLite file path. `owner` is the engine
    process's id (`new_owner_id()`)."""
    if config.db.startswith(("postgresql://", "postgres://")):
        from durahub.store.postgres import PostgresStore

        return PostgresStore(config.db, owner=owner, app_id=config.app_id)
    return SqliteStore(config.db, synchronous=config.sqlite_synchronous, owner=owner, app_id=config.app_id)


# Endpoints are opened on request (`POST /durahub/v1/apps`): a bound on what a caller can make the engine hold.
MAX_APP_ENDPOINTS = 64


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket (OSError when the address cannot be bound)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, not left 0: asyncio turns Nagle off (TCP_NODELAY) only on connections whose socket says
    # TCP. Without it a response written as headers then body waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections (Linux)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class Endpoint:
    """One app's listeners: workers connecting to its gRPC port are that app's, and its HTTP API addresses that
    app's instances (Dapr gives each app a sidecar; durahub gives each an endpoint)."""

    app_id: str
    grpc: grpc.aio.Server
    http: uvicorn.Server
    http_task: asyncio.Task[None]
    grpc_port: int
    http_port: int


class Server:
    """One durahub engine with its listeners. `await start()` / `await stop()`, or `start_in_thread()`.

    The engine's own app (`config.app_id`) is served on the configured ports; `open_app` opens an endpoint for
    another app on one engine (`POST /durahub/v1/apps`, used by `durahub run --app-id` when it attaches)."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.owner = new_owner_id()
        self.store = open_store(self.config, owner=self.owner)
        tracer = make_tracer(self.config.app_id, self.config.otlp_endpoint, self.config.zipkin_endpoint)
        if tracer is not None:
            _add_trace_log_filter()
        self.engine = Engine(self.config, self.store,
                             Observer(WorkflowMetrics(), tracer, self.config.max_message_bytes))
        self.metrics = (MetricsListener(self.engine.metrics_exposition, self.config.host, self.config.metrics_port)
                        if self.config.metrics_port else None)
        self.endpoints: dict[str, Endpoint] = {}
        self._opening: asyncio.Lock | None = None  # created on the loop, in start()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.grpc_port = self.config.grpc_port
        self.http_port = self.config.http_port

    async def start(self) -> None:
        await self.store.open()
        await self.engine.start()
        self._opening = asyncio.Lock()
        main = await self._open_endpoint(self.config.app_id, self.config.grpc_port, self.config.http_port)
        self.grpc_port, self.http_port = main.grpc_port, main.http_port
        await self._reopen_app_endpoints()
        if self.metrics is not None:
            await self.metrics.start()
        log.info("event=server_started app=%s grpc=%s:%d http=%s:%d db=%s", self.config.app_id, self.config.host,
                 self.grpc_port, self.config.host, self.http_port, self.config.db)

    async def open_app(self, app_id: str, grpc_port: int = 0, http_port: int = 0) -> tuple[int, int]:
        """The (gRPC, HTTP) ports of `app_id`'s endpoint, opened now if it has none (0: any free port)."""
        check_app_id(app_id)
        assert self._opening is not None, "the server is not started"
        async with self._opening:
            endpoint = self.endpoints.get(app_id)
            if endpoint is None:
                if len(self.endpoints) >= MAX_APP_ENDPOINTS:
                    raise OSError(f"this engine already serves {MAX_APP_ENDPOINTS} apps, its limit")
                endpoint = await self._open_endpoint(app_id, grpc_port, http_port)
                await self.store.put_setting(self._endpoint_key(app_id), f"{endpoint.grpc_port},{endpoint.http_port}")
                log.info("event=app_endpoint_opened app=%s grpc=%d http=%d", app_id, endpoint.grpc_port,
                         endpoint.http_port)
            return endpoint.grpc_port, endpoint.http_port

    def _endpoint_key(self, app_id: str = "") -> str:
        # Per engine address: engines sharing a PostgreSQL database each remember their own.
        return f"endpoint:{self.config.host}:{self.http_port}:{app_id}"

    async def _reopen_app_endpoints(self) -> None:
        """Open the app endpoints this engine had before it stopped, on the same ports: the apps' workers keep
        reconnecting to them, so a restarted engine (even after kill -9) gets its attached apps back."""
        for key, ports in (await self.store.settings(self._endpoint_key())).items():
            app_id = key.rsplit(":", 1)[1]
            if app_id in self.endpoints:
                continue
            grpc_port, http_port = (int(p) for p in ports.split(","))
            try:
                await self._open_endpoint(app_id, grpc_port, http_port)
            except OSError as exc:
                log.warning("event=app_endpoint_not_reopened app=%s grpc=%d http=%d error=%s", app_id, grpc_port,
                            http_port, exc)
                continue
            log.info("event=app_endpoint_reopened app=%s grpc=%d http=%d", app_id, grpc_port, http_port)

    def app_ports(self) -> dict[str, tuple[int, int]]:
        return {app: (e.grpc_port, e.http_port) for app, e in self.endpoints.items()}

    async def _open_endpoint(self, app_id: str, grpc_port: int, http_port: int) -> Endpoint:
        host = self.config.host
        token = self.config.api_token
        # No interceptor without a token: grpcio's asyncio server then finds registered methods in C.
        interceptors = [GrpcTokenInterceptor(token)] if token else None
        server = grpc.aio.server(options=grpc_options(self.config), interceptors=interceptors)
        register(server, taskhub_grpc.add_TaskHubSidecarServiceServicer_to_server, TaskHubService(self.engine, app_id))
        add_dapr_workflow_methods(DaprWorkflowService(self.engine, app_id), server)
        try:
            bound = server.add_insecure_port(f"{host}:{grpc_port}")
        except RuntimeError:  # grpcio's "failed to bind"
            bound = 0
        if bound == 0:
            raise OSError(f"cannot listen for gRPC on {host}:{grpc_port}")
        await server.start()
        # The HTTP socket is bound here, not by uvicorn: uvicorn reports a port it cannot bind with sys.exit, which
        # would end the whole event loop, not just this endpoint.
        try:
            sock = _listen(host, http_port)
        except OSError:
            await server.stop(None)
            raise
        app = create_app(self.engine, app_id, self)
        http = uvicorn.Server(uvicorn.Config(HttpTokenMiddleware(app, token) if token else app, host=host,
                                             port=http_port, log_level="warning", lifespan="off"))
        task = asyncio.create_task(http.serve(sockets=[sock]), name=f"durahub-http-{app_id}")
        while not http.started:
            if task.done():
                await server.stop(None)
                sock.close()
                raise OSError(f"cannot serve HTTP on {host}:{http_port}")
            await asyncio.sleep(0.01)
        bound_http = sock.getsockname()[1]
        endpoint = Endpoint(app_id, server, http, task, bound, bound_http)
        self.endpoints[app_id] = endpoint
        return endpoint

    async def stop(self, grace: float = 5.0) -> None:
        self.engine.end_streams()
        endpoints = list(self.endpoints.values())
        await asyncio.gather(*(e.grpc.stop(grace) for e in endpoints))
        for e in endpoints:
            e.http.should_exit = True
        await asyncio.gather(*(e.http_task for e in endpoints))
        self.endpoints.clear()
        if self.metrics is not None:
            await self.metrics.stop()
        await self.engine.stop()
        await self.store.close()
        log.info("event=server_stopped")

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # -- embedding in a synchronous app ---------------------------------------------------------------

    def start_in_thread(self) -> None:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="durahub-server", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            raise errors[0]

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._thread = None
