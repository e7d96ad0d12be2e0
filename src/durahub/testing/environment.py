"""`WorkflowEnvironment`: a durahub engine inside the test process, on free ports with a temporary SQLite store,
for testing Dapr workflows with the official SDK and nothing else running.

    with WorkflowEnvironment.start_time_skipping() as env:
        env.start(wfr)                                   # the app's own WorkflowRuntime, unmodified
        iid = env.client.schedule_new_workflow(order_workflow, input=order)
        state = env.client.wait_for_workflow_completion(iid)   # a 24 h timeout fires at once

Time skipping (`engine/skipping.py`): while anyone waits for a workflow and the engine is idle, the engine's
virtual clock jumps to the next timer; activities run in real time; a wait nothing can end fails with an
error naming what the workflow waits on. `start_local()` is the same engine on the wall clock.

The engine runs on an event loop of its own in a background thread, so the SDK's blocking calls work from
sync and async tests alike (`with` or `async with`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import dapr.ext.workflow as wf

from durahub.config import Config
from durahub.core.views import Summary, summary
from durahub.core.waiting import waiting_on
from durahub.protos import pb
from durahub.server import Server
from durahub.testing.history import history_json
from durahub.testing.sdk import SdkSettings, twin_of

T = TypeVar("T")

HOST = "127.0.0.1"
# How long a call into the engine may take before the test is told (the engine is in the same process).
CALL_TIMEOUT = 60.0


def _us(value: timedelta | float) -> int:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return int(seconds * 1_000_000)


class WorkflowEnvironment:
    """An in-process engine for tests. Build it with `start_time_skipping()` or `start_local()` and use it as a
    context manager (`with` or `async with`); `open()` / `close()` do the same by hand."""

    def __init__(self, *, time_skipping: bool, start_time: datetime | None = None,
                 blocked_after: timedelta | None = timedelta(seconds=0.5),
                 max_skip: timedelta = timedelta(days=3660), app_id: str = "durahub",
                 export_sdk_settings: bool = True, log_level: str = "warning") -> None:
        self.time_skipping = time_skipping
        self._start_time = start_time
        self._blocked_after = blocked_after
        self._max_skip = max_skip
        self._app_id = app_id
        self._export = export_sdk_settings
        self._log_level = log_level
        self._dir: Path | None = None
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._settings: SdkSettings | None = None
        self._client: wf.DaprWorkflowClient | None = None
        self._runtimes: list[wf.WorkflowRuntime] = []

    # -- construction -------------------------------------------------------------------------------------

    @classmethod
    def start_time_skipping(cls, *, start_time: datetime | None = None,
                            blocked_after: timedelta | None = timedelta(seconds=0.5),
                            max_skip: timedelta = timedelta(days=3660), app_id: str = "durahub",
                            export_sdk_settings: bool = True) -> WorkflowEnvironment:
        """An engine on a virtual clock (starting at `start_time`, default now). `blocked_after`: real time of
        idleness, with nothing to skip to, before a wait fails naming what the workflow waits on (None: wait
        until the caller's own timeout). `max_skip`: virtual time one wait may skip (eternal loops)."""
        return cls(time_skipping=True, start_time=start_time, blocked_after=blocked_after, max_skip=max_skip,
                   app_id=app_id, export_sdk_settings=export_sdk_settings)

    @classmethod
    def start_local(cls, *, app_id: str = "durahub", export_sdk_settings: bool = True) -> WorkflowEnvironment:
        """An engine on the wall clock: timers take their real time."""
        return cls(time_skipping=False, app_id=app_id, export_sdk_settings=export_sdk_settings)

    # -- lifecycle ----------------------------------------------------------------------------------------

    def open(self) -> WorkflowEnvironment:
        if self._server is not None:
            return self
        logging.getLogger("durahub").setLevel(self._log_level.upper())
        self._dir = Path(tempfile.mkdtemp(prefix="durahub-test-"))
        config = Config(host=HOST, grpc_port=0, http_port=0, db=str(self._dir / "durahub.db"), app_id=self._app_id,
                        sqlite_synchronous="normal", log_level=self._log_level, time_skipping=self.time_skipping)
        server = Server(config)
        skipper = server.engine.time_skipper
        if skipper is not None:
            if self._start_time is not None:
                start = self._start_time if self._start_time.tzinfo else self._start_time.replace(tzinfo=UTC)
                skipper.clock.advance_to(int(start.timestamp() * 1_000_000))
            skipper.blocked_after = (None if self._blocked_after is None
                                     else self._blocked_after.total_seconds())
            skipper.max_skip_us = _us(self._max_skip)
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(server.start())
            except BaseException as exc:  # noqa: BLE001 - handed to the opening thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(server.stop(grace=1.0))
            loop.close()

        self._thread = threading.Thread(target=run, name="durahub-test-engine", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            shutil.rmtree(self._dir, ignore_errors=True)
            raise failure[0]
        self._server = server
        if self._export:
            self._settings = SdkSettings(HOST, server.grpc_port, server.http_port)
            self._settings.apply()
        return self

    def close(self) -> None:
        for runtime in reversed(self._runtimes):
            try:
                runtime.shutdown()  # type: ignore[no-untyped-call]
            except Exception as exc:  # noqa: BLE001 - closing goes on; the test has its own verdict
                logging.getLogger("durahub.testing").warning("runtime shutdown failed: %r", exc)
        self._runtimes.clear()
        if self._client is not None:
            close = getattr(self._client, "close", None)
            if close is not None:
                close()
            self._client = None
        if self._settings is not None:
            self._settings.restore()
            self._settings = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._server = self._loop = self._thread = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> WorkflowEnvironment:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> WorkflowEnvironment:
        return await asyncio.to_thread(self.open)

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await asyncio.to_thread(self.close)

    # -- addresses and the SDK ----------------------------------------------------------------------------

    @property
    def server(self) -> Server:
        if self._server is None:
            raise RuntimeError("the environment is not open (use it in a `with` block)")
        return self._server

    @property
    def grpc_port(self) -> int:
        return self.server.grpc_port

    @property
    def http_port(self) -> int:
        return self.server.http_port

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def client(self) -> wf.DaprWorkflowClient:
        """A `DaprWorkflowClient` connected to this engine."""
        if self._client is None:
            self._client = wf.DaprWorkflowClient(host=HOST, port=str(self.grpc_port))
        return self._client

    def start(self, runtime: wf.WorkflowRuntime) -> wf.WorkflowRuntime:
        """Run what `runtime` registers against this engine until the environment closes. `runtime` may be
        the app's module-level one, built with any address and started or not: a twin connected here runs its
        registrations (`durahub.testing.sdk`). Returns the running twin.

        One runtime per environment: the engine hands any work item of its app to any of the app's workers, so
        two runtimes registering different workflows would be sent each other's (as two apps sharing one Dapr
        sidecar would)."""
        if self._runtimes:
            raise RuntimeError("this environment already runs a WorkflowRuntime: register every workflow and "
                               "activity the test needs on one runtime")
        twin = twin_of(runtime, HOST, self.grpc_port)
        twin.start()  # type: ignore[no-untyped-call]
        self._runtimes.append(twin)
        return twin

    # -- the engine ---------------------------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the environment is not open (use it in a `with` block)")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result(timeout)

    def now(self) -> datetime:
        """The engine's time (virtual under time skipping), as an aware UTC datetime."""
        return datetime.fromtimestamp(self.server.engine.clock.now_us() / 1_000_000, tz=UTC)

    def sleep(self, duration: timedelta | float) -> None:
        """Let `duration` pass. Under time skipping the clock moves forward at once, timer by timer, each fired
        and its turns run before the next (an hourly timer fires 24 times in a day); else a real sleep."""
        skipper = self.server.engine.time_skipper
        if skipper is None:
            time.sleep(_us(duration) / 1_000_000)
            return
        self._call(skipper.skip(_us(duration)))

    def raise_event(self, instance_id: str, name: str, data: Any = None) -> None:
        """Raise event `name` on the instance; `data` is sent as JSON (as the SDK does)."""
        payload = None if data is None else json.dumps(data)
        self._call(self.server.engine.raise_event(instance_id, name, payload))

    def history_events(self, instance_id: str) -> list[pb.HistoryEvent]:
        """The instance's history as the engine stores it (protobuf events)."""
        events = self._call(self.server.engine.history(instance_id))
        if events is None:
            raise KeyError(f"no such workflow instance: '{instance_id}'")
        return events

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The instance's decoded history: what `GET /durahub/v1/instances/{id}` and `durahub workflow export`
        show (event_id, kind, timestamp, details), and what `replay` takes."""
        return history_json(self.history_events(instance_id))

    def summary(self, instance_id: str) -> Summary:
        """What the instance waits on now: open activities and children, timers, awaited events, a stall."""
        return summary(self.history_events(instance_id), self.server.engine.clock.now_us())

    def waiting_on(self, instance_id: str) -> str:
        """`summary` as one sentence, e.g. "workflow 'x' (approval) waits for external event 'approved'"."""
        return waiting_on(self.summary(instance_id), self._app_id)
