"""`/durahub/v1` routes for what is happening now: a server-sent-events stream of instance changes, and the
worker streams connected to this engine. The dashboard's live updates come from the stream.

The change feed numbers the instance keys the engine reports changed (`Engine.on_change`: its own commits,
creations and purges, and what other engines sharing a PostgreSQL database announce) and remembers the last
`REMEMBERED` of them, so a client that reconnects with `Last-Event-ID` gets what it missed; a client too far
behind (or from before a restart) gets a `reset` event and reloads instead. An event id is
"<feed epoch>:<change number>".
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from durahub.api.common import MAX_ID_LENGTH
from durahub.api.extensions import APP_ID_PATTERN, NO_NUL, StatusQuery
from durahub.core.apps import split_key
from durahub.core.state import status_name
from durahub.engine import Engine
from durahub.protos import pb

# Changes remembered for clients that reconnect.
REMEMBERED = 10_000
# A burst touching more instances than this is sent as one `reset` (reload) instead of one event each.
MAX_BATCH = 500
# Pause after each batch, so a busy engine costs a client at most ~10 batches a second.
COALESCE_SECONDS = 0.1
HEARTBEAT_SECONDS = 15.0
CAPABILITY_PREFIX = "WORKER_CAPABILITY_"


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


class ChangeFeed:
    """Numbered instance changes of one engine, the newest `REMEMBERED` of them kept (listening starts with
    the first subscriber and goes on, so reconnecting clients can resume)."""

    def __init__(self, engine: Engine, remembered: int = REMEMBERED) -> None:
        self.epoch = uuid.uuid4().hex[:8]
        self._engine = engine
        self._position = 0
        self._recent: deque[tuple[int, str]] = deque(maxlen=remembered)
        self._wakers: set[asyncio.Event] = set()
        self._listening: Callable[[], None] | None = None

    @property
    def position(self) -> int:
        return self._position

    def _changed(self, key: str) -> None:
        self._position += 1
        self._recent.append((self._position, key))
        for waker in self._wakers:
            waker.set()

    def subscribe(self) -> asyncio.Event:
        """An event set whenever something changed (the subscriber clears it)."""
        if self._listening is None:
            self._listening = self._engine.on_change(self._changed)
        waker = asyncio.Event()
        self._wakers.add(waker)
        return waker

    def unsubscribe(self, waker: asyncio.Event) -> None:
        self._wakers.discard(waker)

    def since(self, position: int) -> list[tuple[int, str]] | None:
        """The changes after `position`, oldest first; None when they are no longer all remembered."""
        if position > self._position:
            return None  # a position this feed never reached: another epoch's
        if position == self._position:
            return []
        if not self._recent or self._recent[0][0] > position + 1:
            return None
        return list(itertools.islice(self._recent, position + 1 - self._recent[0][0], None))


_feeds: weakref.WeakKeyDictionary[Engine, ChangeFeed] = weakref.WeakKeyDictionary()


def feed_of(engine: Engine) -> ChangeFeed:
    """The engine's one feed, shared by the streams of all its endpoints."""
    feed = _feeds.get(engine)
    if feed is None:
        feed = _feeds[engine] = ChangeFeed(engine)
    return feed


@dataclass
class StreamFilter:
    statuses: set[str]
    workflow_name: str | None
    app_id: str | None
    instance_id: str | None

    def wants_key(self, app_id: str, instance_id: str) -> bool:
        return ((self.app_id is None or app_id == self.app_id)
                and (self.instance_id is None or instance_id == self.instance_id))

    def wants(self, status: str, workflow_name: str) -> bool:
        return ((not self.statuses or status in self.statuses)
                and (self.workflow_name is None or workflow_name == self.workflow_name))


def sse(event: str, data: dict[str, object], event_id: str | None = None) -> str:
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


def parse_event_id(feed: ChangeFeed, last_event_id: str | None) -> int | None:
    """The position a Last-Event-ID names in this feed, if it is this feed's."""
    if not last_event_id:
        return None
    epoch, _, number = last_event_id.partition(":")
    if epoch != feed.epoch or not number.isdigit() or len(number) > 18:
        return None
    return int(number)


async def change_events(engine: Engine, feed: ChangeFeed, wanted: StreamFilter, last_event_id: str | None,
                        heartbeat: float) -> AsyncIterator[str]:
    """The stream's text: `ready`, then `instance` / `removed` per change, `reset` when changes were lost,
    a comment line as heartbeat."""
    waker = feed.subscribe()
    try:
        position = parse_event_id(feed, last_event_id)
        lost = bool(last_event_id) and (position is None or feed.since(position) is None)
        if position is None or lost:
            position = feed.position
        yield "retry: 2000\n\n"
        yield sse("reset" if lost else "ready", {}, f"{feed.epoch}:{position}")
        while True:
            waker.clear()
            changes = feed.since(position)
            if changes is None:  # fell too far behind
                position = feed.position
                yield sse("reset", {}, f"{feed.epoch}:{position}")
                continue
            if not changes:
                try:
                    await asyncio.wait_for(waker.wait(), timeout=heartbeat)
                except TimeoutError:
                    yield ": heartbeat\n\n"
                continue
            latest = {key: number for number, key in changes}
            position = changes[-1][0]
            if len(latest) > MAX_BATCH:
                yield sse("reset", {}, f"{feed.epoch}:{position}")
            else:
                for key, number in sorted(latest.items(), key=lambda item: item[1]):
                    text = await _change_event(engine, wanted, key, f"{feed.epoch}:{number}")
                    if text:
                        yield text
            await asyncio.sleep(COALESCE_SECONDS)
    finally:
        feed.unsubscribe(waker)


async def _change_event(engine: Engine, wanted: StreamFilter, key: str, event_id: str) -> str | None:
    app_id, instance_id = split_key(key)
    if not wanted.wants_key(app_id, instance_id):
        return None
    row = await engine.get_instance(instance_id, app=app_id)
    if row is None:
        return sse("removed", {"app_id": app_id, "instance_id": instance_id}, event_id)
    status = status_name(row.status)
    if not wanted.wants(status, row.name):
        return None
    return sse("instance", {
        "app_id": app_id, "instance_id": instance_id, "status": status, "workflow_name": row.name,
        "created_at": _dt(row.created_us).isoformat(), "last_updated_at": _dt(row.updated_us).isoformat(),
        "parent_instance_id": row.parent_instance_id, "parent_app_id": row.parent_app_id,
    }, event_id)


class Worker(BaseModel):
    stream_id: int = Field(description="This engine's number for the work-item stream")
    app_id: str = Field(description="The app whose work it gets (the endpoint it connected to)")
    capabilities: list[str] = Field(description="What the worker announced, e.g. HEALTH_PING")
    connected_at: datetime
    outstanding: int = Field(description="Work items sent to it and not yet answered")


def _capability(value: int) -> str:
    try:
        return str(pb.WorkerCapability.Name(value)).removeprefix(CAPABILITY_PREFIX)
    except ValueError:
        return str(value)


STREAM_DOC = """Server-sent events (`text/event-stream`) of instance changes on this engine (and, on PostgreSQL,
those other engines announce): `event: instance` with `{app_id, instance_id, status, workflow_name, created_at,
last_updated_at, parent_instance_id, parent_app_id}`; `event: removed` with `{app_id, instance_id}` (purged);
`event: reset` when changes were lost (reload what you show); `event: ready` first. A comment line every
`heartbeat_seconds`. Reconnect with the `Last-Event-ID` header (or `last_event_id`) to resume. With an API token,
browsers' EventSource (which cannot send headers) may pass it as `token` here, and only here."""


def live_router(engine: Engine) -> APIRouter:
    router = APIRouter()

    @router.get("/stream", summary="Server-sent events of instance changes", description=STREAM_DOC,
                response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}})
    async def stream(
        status: StatusQuery = None,
        workflow_name: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, pattern=NO_NUL)] = None,
        instance_id: Annotated[str | None, Query(max_length=MAX_ID_LENGTH, pattern=NO_NUL,
                                                 description="Only this instance (with appID: of that app)")] = None,
        app_id: Annotated[str | None, Query(alias="appID", max_length=256, pattern=APP_ID_PATTERN,
                                            description="One app's instances (default: every app's)")] = None,
        heartbeat_seconds: Annotated[float, Query(ge=1, le=300)] = HEARTBEAT_SECONDS,
        last_event_id: Annotated[str | None, Query(max_length=64, description="As the Last-Event-ID header")] = None,
        last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None,
        token: Annotated[str | None, Query(description="The API token, for clients that cannot send headers")] = None,
    ) -> StreamingResponse:
        wanted = StreamFilter({s.value for s in status or []}, workflow_name, app_id, instance_id)
        body = change_events(engine, feed_of(engine), wanted, last_event_id_header or last_event_id,
                             heartbeat_seconds)
        return StreamingResponse(body, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get("/workers", response_model=list[Worker], summary="The worker streams connected to this engine")
    async def workers() -> list[Worker]:
        return [Worker(stream_id=s.id, app_id=s.app_id, capabilities=sorted(_capability(c) for c in s.capabilities),
                       connected_at=_dt(s.connected_us), outstanding=len(s.outstanding))
                for s in engine.workers()]

    return router

