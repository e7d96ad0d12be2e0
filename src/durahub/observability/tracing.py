"""OpenTelemetry spans like daprd's (durabletask's tracer): `create_orchestration||{name}`, one
`orchestration||{name}` per execution, `activity||{name}` per attempt, `timer`, `orchestration_event||{name}`.

Every span is built finished: the engine knows each span's ids, parent, start and end, so it makes the SDK's
`ReadableSpan` at the end and hands it to the span processors, without the SDK's Tracer (its per-span
sampler call, id generator, locks and bounded attribute copies cost more than the engine's own work for a
turn). The orchestration span is built when its execution ends, from history: its id is the persisted
`workflowSpanID` (`core.tracing`), its start the execution's first turn, so no span is held open across turns
or engine restarts. Exporting is `observability.span_export`'s job.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from durahub.core.state import CONTINUED_AS_NEW, InstanceState, status_name
from durahub.core.time import ts_to_us
from durahub.core.tracing import SAMPLED, SpanRef, from_proto
from durahub.protos import pb

TRACER_NAME = "durabletask"


def span_name(kind: str, name: str = "", version: str = "") -> str:
    if version:
        return f"{kind}||{name}||{version}"
    return f"{kind}||{name}" if name else kind


def _ns(us: int) -> int:
    return us * 1000


def _new_span_id() -> int:
    return random.getrandbits(64) or 1


def _new_trace_id() -> int:
    return random.getrandbits(128) or 1


class OpenSpan:
    """A span begun and not ended yet (an activity attempt out with a worker): what its end needs."""

    __slots__ = ("name", "kind", "ref", "parent", "attributes", "start_ns")

    def __init__(self, name: str, kind: Any, ref: SpanRef, parent: SpanRef | None, attributes: dict[str, Any],
                 start_ns: int) -> None:
        self.name = name
        self.kind = kind
        self.ref = ref
        self.parent = parent
        self.attributes = attributes
        self.start_ns = start_ns


class WorkflowTracer:
    """Builds the engine's spans and hands them to `processors` (the SDK's span processors, each with its
    exporter), all of `resource` and instrumentation `scope`. `sampler` is an SDK sampler, or None for the
    default rule (parent-based, always on), which is decided here without a call."""

    def __init__(self, processors: Sequence[Any], resource: Any, scope: Any, sampler: Any = None) -> None:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
        from opentelemetry.trace.span import TraceState

        self._processors = list(processors)
        self._resource = resource
        self._sampler = sampler
        self._scope = scope
        self._readable = ReadableSpan
        self._event = Event
        self._span_context = SpanContext
        self._trace_state = TraceState
        self._flags = {f: TraceFlags(f) for f in range(256)}
        self._kinds = SpanKind
        self._status = Status
        self._unset = Status(StatusCode.UNSET)
        self._error_code = StatusCode.ERROR

    def shutdown(self) -> None:
        for processor in self._processors:
            processor.shutdown()

    # -- building spans ------------------------------------------------------------------------------

    def _begin(self, name: str, kind: Any, parent: SpanRef | None, attributes: dict[str, Any],
               start_ns: int | None = None, span_id: int | None = None) -> OpenSpan | None:
        """A new span under `parent`, or None when it is not sampled (nothing is recorded or propagated)."""
        if self._sampler is None:
            if parent is not None and not parent.sampled:
                return None
            trace_id = parent.trace_id if parent is not None else _new_trace_id()
            ref = SpanRef(trace_id, span_id or _new_span_id(), SAMPLED, parent.state if parent is not None else "")
        else:
            ref_or_none = self._sampled(name, kind, parent, attributes, span_id)
            if ref_or_none is None:
                return None
            ref = ref_or_none
        return OpenSpan(name, kind, ref, parent, attributes, start_ns if start_ns is not None else time.time_ns())

    def _sampled(self, name: str, kind: Any, parent: SpanRef | None, attributes: dict[str, Any],
                 span_id: int | None) -> SpanRef | None:
        """The configured sampler's decision (`OTEL_TRACES_SAMPLER`), as the SDK's Tracer would ask for it."""
        from opentelemetry import trace

        context = trace.set_span_in_context(trace.NonRecordingSpan(self._context(parent))) if parent else None
        trace_id = parent.trace_id if parent is not None else _new_trace_id()
        result = self._sampler.should_sample(context, trace_id, name, kind, attributes)
        if not result.decision.is_sampled():
            return None
        state = result.trace_state.to_header() if result.trace_state is not None else ""
        return SpanRef(trace_id, span_id or _new_span_id(), SAMPLED, state)

    def _context(self, ref: SpanRef, remote: bool = False) -> Any:
        state = self._trace_state.from_header([ref.state]) if ref.state else None
        return self._span_context(ref.trace_id, ref.span_id, remote, self._flags[ref.flags & 0xFF], state)

    def _end(self, span: OpenSpan, end_ns: int | None = None, status: Any = None, events: Sequence[Any] = ()) -> None:
        readable = self._readable(
            span.name, self._context(span.ref), self._context(span.parent, True) if span.parent else None,
            self._resource, span.attributes, events, (), span.kind, None, status or self._unset, span.start_ns,
            end_ns if end_ns is not None else time.time_ns(), self._scope)
        for processor in self._processors:
            processor.on_end(readable)

    def _failed(self, message: str) -> Any:
        return self._status(self._error_code, message)

    @staticmethod
    def ref(span: OpenSpan | None) -> SpanRef | None:
        """The span as a trace context to propagate, or None when it is not sampled (daprd's rule)."""
        return span.ref if span is not None else None

    # -- client operations ---------------------------------------------------------------------------

    @contextmanager
    def _around(self, span: OpenSpan | None, record_exception: bool = False) -> Iterator[None]:
        """Ends `span` after the block, with Error status if it raised."""
        if span is None:
            yield
            return
        try:
            yield
        except BaseException as exc:
            events = [self._event("exception", {
                "exception.type": type(exc).__qualname__, "exception.message": str(exc),
                "exception.stacktrace": traceback.format_exc(), "exception.escaped": "False"})] \
                if record_exception else []
            self._end(span, status=self._failed(str(exc)), events=events)
            raise
        self._end(span)

    @contextmanager
    def server_call(self, method: str, parent: SpanRef | None) -> Iterator[SpanRef | None]:
        """An API call's server span (daprd's gRPC instrumentation names it after the method)."""
        span = self._begin(method, self._kinds.SERVER, parent, {"rpc.system": "grpc"})
        with self._around(span):
            yield span.ref if span is not None else parent

    @contextmanager
    def creating(self, instance_id: str, name: str, parent: SpanRef | None) -> Iterator[SpanRef | None]:
        """`create_orchestration||{name}`: the new execution's parent."""
        span = self._begin(span_name("create_orchestration", name), self._kinds.CLIENT, parent, {
            "durabletask.type": "orchestration", "durabletask.task.name": name,
            "durabletask.task.instance_id": instance_id})
        with self._around(span, record_exception=True):
            yield self.ref(span)

    @contextmanager
    def raising(self, instance_id: str, event_name: str, parent: SpanRef | None) -> Iterator[None]:
        """`orchestration_event||{name}` (the Durable Task Framework's producer span for sending an event)."""
        span = self._begin(span_name("orchestration_event", event_name), self._kinds.PRODUCER, parent, {
            "durabletask.type": "event", "durabletask.event.name": event_name,
            "durabletask.event.instance_id": instance_id})
        with self._around(span):
            yield

    # -- executions ----------------------------------------------------------------------------------

    def execution_ended(self, state: InstanceState, end_us: int) -> None:
        """The orchestration span of an execution that completed, failed, was terminated or continued as new."""
        own = state.trace
        started = _start_event(state.history)
        if own is None or started is None or not state.history:
            return
        parent = from_proto(started.parentTraceContext)
        status = state.status if state.completion is not None else CONTINUED_AS_NEW
        attributes: dict[str, Any] = {
            "durabletask.type": "orchestration", "durabletask.task.name": state.name,
            "durabletask.task.instance_id": state.instance_id,
            "durabletask.runtime_status": status_name(status),
        }
        version = started.version.value if started.HasField("version") else ""
        if version:
            attributes["durabletask.task.version"] = version
        span = self._begin(span_name("orchestration", state.name, version), self._kinds.SERVER, parent, attributes,
                           start_ns=_ns(ts_to_us(state.history[0].timestamp)), span_id=own.span_id)
        if span is None:
            return
        events = []
        if state.completion is not None:
            events = [self._event(name, event_attributes, _ns(at_us))
                      for name, at_us, event_attributes in notable_events(state.history)]
        failure = state.failure
        failed = self._failed(failure.errorMessage) if failure is not None and status != CONTINUED_AS_NEW else None
        self._end(span, _ns(end_us), failed, events)

    def timers_fired(self, state: InstanceState, events: Sequence[pb.HistoryEvent]) -> None:
        """A `timer` span per timerFired event delivered, from the timer's creation to its firing."""
        own = state.trace
        if own is None:
            return
        for ev in events:
            if not ev.HasField("timerFired"):
                continue
            fired = ev.timerFired
            created = next((e for e in reversed(state.history)
                            if e.eventId == fired.timerId and e.HasField("timerCreated")), None)
            start_us = ts_to_us(created.timestamp) if created is not None else ts_to_us(ev.timestamp)
            fire_at = datetime.fromtimestamp(ts_to_us(fired.fireAt) / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            span = self._begin("timer", self._kinds.INTERNAL, own, {
                "durabletask.type": "timer", "durabletask.fire_at": fire_at,
                "durabletask.task.task_id": fired.timerId, "durabletask.task.instance_id": state.instance_id,
            }, start_ns=_ns(start_us))
            if span is not None:
                self._end(span, _ns(ts_to_us(ev.timestamp)))

    # -- activities ----------------------------------------------------------------------------------

    def activity_started(self, request: pb.ActivityRequest, parent: SpanRef | None) -> OpenSpan | None:
        name = request.name
        version = request.version.value if request.HasField("version") else ""
        attributes: dict[str, Any] = {
            "durabletask.type": "activity", "durabletask.task.name": name,
            "durabletask.task.task_id": request.taskId,
            "durabletask.task.instance_id": request.workflowInstance.instanceId,
        }
        if version:
            attributes["durabletask.task.version"] = version
        return self._begin(span_name("activity", name, version), self._kinds.SERVER, parent, attributes)

    def activity_ended(self, span: OpenSpan, failure: pb.TaskFailureDetails | None) -> None:
        self._end(span, status=self._failed(failure.errorMessage) if failure is not None else None)


def _start_event(history: Sequence[pb.HistoryEvent]) -> pb.ExecutionStartedEvent | None:
    for ev in history[:4]:  # it follows the first turn's workflowStarted
        if ev.HasField("executionStarted"):
            return ev.executionStarted
    return None


def notable_events(history: Sequence[pb.HistoryEvent]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """The span events an orchestration span carries (as durabletask's): external events, suspend, resume,
    stalls."""
    for ev in history:
        kind = ev.WhichOneof("eventType")
        if kind == "eventRaised":
            yield "Received external event", ts_to_us(ev.timestamp), {
                "name": ev.eventRaised.name, "size": len(ev.eventRaised.input.value.encode())}
        elif kind == "executionSuspended":
            yield "Execution suspended", ts_to_us(ev.timestamp), {"reason": ev.executionSuspended.input.value}
        elif kind == "executionResumed":
            yield "Execution resumed", ts_to_us(ev.timestamp), {"reason": ev.executionResumed.input.value}
        elif kind == "executionStalled":
            stalled = ev.executionStalled
            yield "Execution stalled", ts_to_us(ev.timestamp), {
                "reason": pb.StalledReason.Name(stalled.reason), "description": stalled.description}
