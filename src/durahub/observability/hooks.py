"""The engine's one point of contact with metrics, traces and log correlation: each method is called at one
meaningful point (a client operation, a turn sent, answered or committed, an activity handed out or answered)
and does what metrics and tracing need there. With tracing off every span step is skipped."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from durahub.core.apps import app_of
from durahub.core.state import COMPLETED, FAILED, TERMINATED, InstanceState
from durahub.core.time import ts_to_us
from durahub.core.tracing import SpanRef, from_proto
from durahub.observability.metrics import (
    FAILED as STATUS_FAILED,
)
from durahub.observability.metrics import (
    RECOVERABLE,
    SUCCESS,
    WorkflowMetrics,
)
from durahub.observability.metrics import (
    TERMINATED as STATUS_TERMINATED,
)
from durahub.observability.tracing import WorkflowTracer
from durahub.protos import pb

_EXECUTION_STATUS: dict[int, str] = {COMPLETED: SUCCESS, FAILED: STATUS_FAILED, TERMINATED: STATUS_TERMINATED}

# The trace of what the current task is doing for an instance, for its log lines (`TraceLogFilter`).
current_span: contextvars.ContextVar[SpanRef | None] = contextvars.ContextVar("durahub_span", default=None)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def _workflow_name(state: InstanceState, new_events: list[pb.HistoryEvent]) -> str:
    """The workflow's name, also on its first turn (the name then is on the executionStarted the turn brings)."""
    if state.name:
        return state.name
    for ev in new_events:
        if ev.HasField("executionStarted"):
            return ev.executionStarted.name
    return ""


class Observer:
    def __init__(self, metrics: WorkflowMetrics, tracer: WorkflowTracer | None, max_message_bytes: int) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self._max_bytes = max_message_bytes

    # -- client operations ----------------------------------------------------------------------------

    @contextmanager
    def operation(self, key: str, operation: str) -> Iterator[None]:
        """A client operation on instance `key` (Dapr's operation series)."""
        start = time.perf_counter()
        try:
            yield
        except BaseException:
            self.metrics.operation(app_of(key), operation, STATUS_FAILED, _ms_since(start))
            raise
        self.metrics.operation(app_of(key), operation, SUCCESS, _ms_since(start))

    @contextmanager
    def creating(self, key: str, instance_id: str, name: str, parent: SpanRef | None) -> Iterator[SpanRef | None]:
        """Creating an instance: yields the span its execution runs under (None when untraced)."""
        with self.operation(key, "create_workflow"):
            if self.tracer is None:
                yield None
                return
            with self.tracer.creating(instance_id, name, parent) as span:
                token = current_span.set(span)
                try:
                    yield span
                finally:
                    current_span.reset(token)

    def rerunning(self, instance_id: str, name: str, parent: SpanRef | None) -> Any:
        """Creating a rerun instance: a context yielding the span its execution runs under (None when
        untraced). Not a client create, so no create_workflow metric."""
        if self.tracer is None:
            return nullcontext()
        return self.tracer.creating(instance_id, name, parent)

    def raising(self, key: str, instance_id: str, event_name: str, parent: SpanRef | None) -> Any:
        if self.tracer is None:
            return nullcontext()
        return self.tracer.raising(instance_id, event_name, parent)

    # -- turns ----------------------------------------------------------------------------------------

    def turn_sent(self, state: InstanceState, new_events: list[pb.HistoryEvent], size: int) -> None:
        app = state.app_id
        if not state.started:  # the generation's first run: Dapr's scheduling latency
            for ev in new_events:
                if ev.HasField("executionStarted"):
                    es = ev.executionStarted
                    since = es.scheduledStartTimestamp if es.HasField("scheduledStartTimestamp") else ev.timestamp
                    self.metrics.scheduling(app, es.name, (time.time() * 1e6 - ts_to_us(since)) / 1000.0)
                    break
        self.metrics.payload_ratio.observe((app, self.metrics.namespace, state.name), size / self._max_bytes)

    def turn_answered(self, state: InstanceState, seconds: float) -> None:
        if self.tracer is not None:  # log correlation (only installed when tracing)
            current_span.set(state.trace)
        self.metrics.turn_latency.observe((state.app_id,), seconds * 1000.0)

    def turn_failed(self, state: InstanceState, new_events: list[pb.HistoryEvent]) -> None:
        """A worker's answer could not be made durable; the turn runs again."""
        self.metrics.execution(state.app_id, _workflow_name(state, new_events), RECOVERABLE, 0.0)

    def turn_lost(self, state: InstanceState, new_events: list[pb.HistoryEvent]) -> None:
        """The worker's stream closed with the turn unanswered; the turn runs again (daprd counts an execution
        its worker dropped as recoverable)."""
        self.metrics.execution(state.app_id, _workflow_name(state, new_events), RECOVERABLE, 0.0)

    def generation_ended(self, state: InstanceState, now_us: int) -> None:
        """The execution continued as new (its state holds the finished generation)."""
        if self.tracer is not None:
            self.tracer.execution_ended(state, now_us)

    def turn_committed(self, state: InstanceState, appended: list[pb.HistoryEvent], commit_seconds: float,
                       now_us: int) -> None:
        self.metrics.commit_latency.observe((), commit_seconds * 1000.0)
        status = _EXECUTION_STATUS.get(state.status) if state.completion is not None else None
        if status is not None:
            elapsed = (now_us - ts_to_us(state.history[0].timestamp)) / 1000.0 if state.history else 0.0
            self.metrics.execution(state.app_id, state.name, status, elapsed)
        if self.tracer is not None and state.trace is not None:
            self.tracer.timers_fired(state, appended)
            if state.completion is not None:
                self.tracer.execution_ended(state, now_us)

    # -- activities -----------------------------------------------------------------------------------

    def activity_sent(self, task: Any) -> pb.ActivityRequest:
        """An activity task handed to a worker (a `PendingTask`): the request to send, carrying the attempt's
        span when traced."""
        now = time.perf_counter()
        request: pb.ActivityRequest = task.request
        app = app_of(task.instance_id)
        self.metrics.activity_operation(app, request.name, SUCCESS, (now - task.queued_at) * 1000.0)
        self.metrics.activity_payload_ratio.observe((app, self.metrics.namespace, task.workflow_name, request.name),
                                                    request.ByteSize() / self._max_bytes)
        if task.sent_at:  # sent before to a worker that went away: daprd counts that attempt as recoverable
            self.metrics.activity_execution(app, request.name, RECOVERABLE, (now - task.sent_at) * 1000.0)
        task.sent_at = now
        if self.tracer is None:
            return request
        if task.trace_parent is None:  # the first attempt: the orchestration span it runs under
            if not request.HasField("parentTraceContext"):
                return request
            task.trace_parent = from_proto(request.parentTraceContext)
        if task.span is not None:  # an earlier attempt whose worker went away
            self.tracer.activity_ended(task.span, pb.TaskFailureDetails(errorMessage="the worker went away"))
        task.span = self.tracer.activity_started(request, task.trace_parent)
        # The request is the task's own (its durable copy is in the store): it carries this attempt's span.
        attempt = self.tracer.ref(task.span)
        if attempt is not None:
            request.parentTraceContext.CopyFrom(attempt.to_proto())
        else:
            request.ClearField("parentTraceContext")
        return request

    def activity_answered(self, task: Any, response: pb.ActivityResponse) -> None:
        failure = response.failureDetails if response.HasField("failureDetails") else None
        status = STATUS_FAILED if failure is not None else SUCCESS
        elapsed = _ms_since(task.sent_at) if task.sent_at else 0.0
        self.metrics.activity_execution(app_of(task.instance_id), task.request.name, status, elapsed)
        if task.span is not None and self.tracer is not None:
            current_span.set(self.tracer.ref(task.span))
            self.tracer.activity_ended(task.span, failure)
            task.span = None

    def shutdown(self) -> None:
        if self.tracer is not None:
            self.tracer.shutdown()


class TraceLogFilter(logging.Filter):
    """Appends the trace and span ids of what the current task does for an instance to its log lines (the
    engine's `event=... key=value` lines; nothing is added when the instance is untraced)."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = current_span.get()
        if span is not None and isinstance(record.msg, str) and record.msg.startswith("event=") \
                and isinstance(record.args, tuple):
            record.msg = f"{record.msg} trace_id=%s span_id=%s"
            record.args = (*record.args, f"{span.trace_id:032x}", f"{span.span_id:016x}")
        return True
