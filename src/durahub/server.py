"""The durahub server: store + engine + gRPC and HTTP listeners, startable in-process or from the CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid

import grpc
import uvicorn
from dapr.proto.runtime.v1 import dapr_pb2_grpc

from durahub.api.auth import GrpcTokenInterceptor, HttpTokenMiddleware
from durahub.api.dapr import DaprWorkflowService
from durahub.api.http import create_app
from durahub.api.malformed import MalformedRequestInterceptor
from durahub.api.taskhub import TaskHubService
from durahub.config import Config
from durahub.engine import Engine
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


def add_dapr_workflow_methods(servicer: DaprWorkflowService, server: grpc.aio.Server) -> None:
    """Register only the workflow methods of `dapr.proto.runtime.v1.Dapr`: grpcio's per-call cost grows with
    the number of registered methods, and the other ~100 would only answer UNIMPLEMENTED anyway."""
    capture = _HandlerCapture()
    dapr_pb2_grpc.add_DaprServicer_to_server(servicer, capture)  # type: ignore[no-untyped-call]
    workflow = {name: handler for name, handler in capture.handlers.items() if "Workflow" in name}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, workflow),))
    server.add_registered_method_handlers(capture.service, workflow)


def new_owner_id() -> str:
    """Identifies one engine process in leases and change announcements: unique among the processes sharing a
    database, and telling which host and process it is."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def open_store(config: Config, owner: str = "") -> Store:
    """`postgresql://...` selects PostgreSQL; anything else is a SQLite file path. `owner` is the engine
    process's id (`new_owner_id()`)."""
    if config.db.startswith(("postgresql://", "postgres://")):
        from durahub.store.postgres import PostgresStore

        return PostgresStore(config.db, owner=owner)
    return SqliteStore(config.db, synchronous=config.sqlite_synchronous, owner=owner)


class Server:
    """One durahub engine with its listeners. `await start()` / `await stop()`, or `start_in_thread()`."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config()
        self.owner = new_owner_id()
        self.store = open_store(self.config, owner=self.owner)
        self.engine = Engine(self.config, self.store)
        self._grpc: grpc.aio.Server | None = None
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.grpc_port = self.config.grpc_port
        self.http_port = self.config.http_port

    async def start(self) -> None:
        await self.store.open()
        await self.engine.start()
        token = self.config.api_token
        interceptors: list[grpc.aio.ServerInterceptor] = [GrpcTokenInterceptor(token)] if token else []
        interceptors.append(MalformedRequestInterceptor())
        self._grpc = grpc.aio.server(options=grpc_options(self.config), interceptors=interceptors)
        taskhub_grpc.add_TaskHubSidecarServiceServicer_to_server(  # type: ignore[no-untyped-call]
            TaskHubService(self.engine), self._grpc)
        add_dapr_workflow_methods(DaprWorkflowService(self.engine), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{self.config.host}:{self.config.grpc_port}")
        if self.grpc_port == 0:
            raise OSError(f"cannot listen for gRPC on {self.config.host}:{self.config.grpc_port}")
        await self._grpc.start()
        app = create_app(self.engine)
        http_config = uvicorn.Config(
            HttpTokenMiddleware(app, token) if token else app, host=self.config.host, port=self.config.http_port, log_level="warning",
            lifespan="off",
        )
        self._http = uvicorn.Server(http_config)
        self._http_task = asyncio.create_task(self._http.serve(), name="durahub-http")
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise OSError(f"cannot listen for HTTP on {self.config.host}:{self.config.http_port}")
            await asyncio.sleep(0.01)
        if self.config.http_port == 0:
            self.http_port = self._http.servers[0].sockets[0].getsockname()[1]
        log.info("event=server_started grpc=%s:%d http=%s:%d db=%s", self.config.host, self.grpc_port,
                 self.config.host, self.http_port, self.config.db)

    async def stop(self, grace: float = 5.0) -> None:
        self.engine.end_streams()
        if self._grpc is not None:
            await self._grpc.stop(grace)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
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
