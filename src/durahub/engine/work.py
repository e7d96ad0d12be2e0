"""What the engine's parts pass between them: turns and activity tasks in flight, work-item streams, jobs, and
the few helpers every part uses (clock, ids, request checks, running a mutation to completion)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from durahub.core.outcome import TurnPlan
from durahub.core.state import InstanceState
from durahub.core.tracing import SpanRef
from durahub.errors import EngineStopping, InvalidRequest
from durahub.protos import pb

log = logging.getLogger("durahub.engine")

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["EngineStopping", "InvalidRequest"]  # re-exported from their home, durahub.errors

CAP_STATEFUL_HISTORY = pb.WORKER_CAPABILITY_STATEFUL_HISTORY
CAP_HEALTH_PING = pb.WORKER_CAPABILITY_HEALTH_PING


def now_us() -> int:
    return time.time_ns() // 1000


def new_id() -> str:
    return str(uuid.uuid4())


def check_text(**fields: str | None) -> None:
    # PostgreSQL text cannot hold NUL; refusing it everywhere keeps both backends alike.
    for name, value in fields.items():
        if value is not None and "\x00" in value:
            raise InvalidRequest(f"{name} must not contain NUL characters")


def run_to_completion(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Engine mutations finish even if the RPC that asked for them is cancelled (client gone, stream closed):
    a commit whose follow-up (dispatch, wake-ups, ending the turn) was skipped would leave an instance stuck."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        task = asyncio.ensure_future(fn(*args, **kwargs))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                task.add_done_callback(_log_failure)
            raise

    return run


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("event=detached_operation_failed error=%r", exc, exc_info=exc)


@dataclass
class Stream:
    """One open GetWorkItems stream: its capabilities and the items it owes an answer for."""

    id: int
    capabilities: frozenset[int]
    # The app its worker is: the endpoint it connected to names it (the SDK sends no app id).
    app_id: str = ""
    outstanding: set[str] = field(default_factory=set)
    closed: bool = False
    connected_us: int = field(default_factory=now_us)
    # The task serving this stream, so shutdown can end it at once instead of waiting out a grace period.
    task: asyncio.Task[Any] | None = None

    @property
    def stateful(self) -> bool:
        return CAP_STATEFUL_HISTORY in self.capabilities

    @property
    def pings(self) -> bool:
        return CAP_HEALTH_PING in self.capabilities


@dataclass
class Turn:
    """One orchestration turn in flight: loaded, sent to a worker, waiting for its answer."""

    instance_id: str  # the instance key (`core.apps`); `state.instance_id` is the plain id
    state: InstanceState
    plan: TurnPlan
    replace_history: bool = False
    loops: int = 0
    custom_status: str | None = None
    token: str = ""
    sent_at: float = 0.0


@dataclass
class PendingTask:
    """An activity task made durable and waiting for (or out with) a worker."""

    seq: int
    instance_id: str  # the calling instance's key
    generation: int
    task_id: int
    request: pb.ActivityRequest
    # The app whose workers run it (a cross-app call's target, else the instance's app).
    app_id: str
    token: str = ""
    # The calling workflow's name (metrics), when known.
    workflow_name: str = ""
    # perf_counter() when it was queued and when it was last handed to a worker (metrics).
    queued_at: float = field(default_factory=time.perf_counter)
    sent_at: float = 0.0
    # Traced tasks: the open span of the current attempt, and the orchestration span it runs under.
    span: Any = None
    trace_parent: SpanRef | None = None


@dataclass
class OrchestrationJob:
    instance_id: str  # key


@dataclass
class ContinueJob:
    """The next iteration of a continue-as-new loop, run within the same turn."""

    turn: Turn


@dataclass
class ActivityJob:
    seq: int


Job = OrchestrationJob | ContinueJob | ActivityJob
