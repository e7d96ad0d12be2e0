"""OpenTelemetry spans like daprd's (durabletask's tracer): `create_orchestration||{name}`, one
`orchestration||{name}` per execution, `activity||{name}` per attempt, `timer`, `orchestration_event||{name}`.

The orchestration span is built when its execution ends, from history: its id is the persisted
`workflowSpanID` (`core.tracing`), its start the execution's first turn, so no span is held open across turns
or engine restarts. Needs the `otel` extra (`opentelemetry-sdk` and an exporter); `make_tracer` returns None
when tracing is not configured or the packages are missing, and the engine then skips every hook.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from durahub.core.state import CONTINUED_AS_NEW, InstanceState, status_name
from durahub.core.time import ts_to_us
from durahub.core.tracing import SpanRef, from_proto
from durahub.protos import pb

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("durahub.tracing")

TRACER_NAME = "durabletask"


def span_name(kind: str, name: str = "", version: str = "") -> str:
    if version:
        return f"{kind}||{name}||{version}"
    return f"{kind}||{name}" if name else kind


def _ns(us: int) -> int:
    return us * 1000


class WorkflowTracer:
    """Starts and ends the engine's spans on one TracerProvider (never the global one)."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            SpanKind,
            Status,
            StatusCode,
            TraceFlags,
        )
        from opentelemetry.trace.span import TraceState

        self._provider = provider
        self._tracer = provider.get_tracer(TRACER_NAME)
        self._ids: ChosenIdGenerator = provider.id_generator  # type: ignore[assignment, unused-ignore]
        self._trace = trace
        self._kinds = SpanKind
        self._status = Status
        self._error_code = StatusCode.ERROR
        self._span_context = SpanContext
        self._non_recording = NonRecordingSpan
        self._flags = TraceFlags
        self._trace_state = TraceState

    def _failed(self, message: str) -> Any:
        return self._status(self._error_code, message)

    def shutdown(self) -> None:
        self._provider.shutdown()

    # -- contexts ------------------------------------------------------------------------------------

    def _context(self, parent: SpanRef | None) -> Any:
        if parent is None:
            return None
        state = self._trace_state.from_header([parent.state]) if parent.state else None
        ctx = self._span_context(parent.trace_id, parent.span_id, True, self._flags(parent.flags), state)
        return self._trace.set_span_in_context(self._non_recording(ctx))

    @staticmethod
    def ref(span: Any) -> SpanRef | None:
        """The span as a trace context to propagate, or None when it is not sampled (daprd's rule)."""
        ctx = span.get_span_context()
        if not ctx.is_valid or not ctx.trace_flags.sampled:
            return None
        return SpanRef(ctx.trace_id, ctx.span_id, int(ctx.trace_flags), ctx.trace_state.to_header())

    def _start(self, name: str, kind: Any, parent: SpanRef | None, attributes: dict[str, Any],
               start_us: int | None = None, span_id: int | None = None) -> Any:
        if span_id is not None:
            self._ids.chosen = span_id
        try:
            return self._tracer.start_span(name, context=self._context(parent), kind=kind, attributes=attributes,
                                           start_time=_ns(start_us) if start_us is not None else None)
        finally:
            self._ids.chosen = 0

    # -- client operations ---------------------------------------------------------------------------

    @contextmanager
    def server_call(self, method: str, parent: SpanRef | None) -> Iterator[SpanRef | None]:
        """An API call's server span (daprd's gRPC instrumentation names it after the method)."""
        span = self._start(method, self._kinds.SERVER, parent, {"rpc.system": "grpc"})
        try:
            yield self.ref(span) or parent
        except BaseException as exc:
            span.set_status(self._failed(str(exc)))
            raise
        finally:
            span.end()

    @contextmanager
    def creating(self, instance_id: str, name: str, parent: SpanRef | None) -> Iterator[SpanRef | None]:
        """`create_orchestration||{name}`: the new execution's parent."""
        span = self._start(span_name("create_orchestration", name), self._kinds.CLIENT, parent, {
            "durabletask.type": "orchestration", "durabletask.task.name": name,
            "durabletask.task.instance_id": instance_id})
        try:
            yield self.ref(span)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(self._failed(str(exc)))
            raise
        finally:
            span.end()

    @contextmanager
    def raising(self, instance_id: str, event_name: str, parent: SpanRef | None) -> Iterator[None]:
        """`orchestration_event||{name}` (the Durable Task Framework's producer span for sending an event)."""
        span = self._start(span_name("orchestration_event", event_name), self._kinds.PRODUCER, parent, {
            "durabletask.type": "event", "durabletask.event.name": event_name,
            "durabletask.event.instance_id": instance_id})
        try:
            yield
        except BaseException as exc:
            span.set_status(self._failed(str(exc)))
            raise
        finally:
            span.end()

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
        span = self._start(span_name("orchestration", state.name, version), self._kinds.SERVER, parent, attributes,
                           start_us=ts_to_us(state.history[0].timestamp), span_id=own.span_id)
        if state.completion is not None:
            for name, at_us, event_attributes in notable_events(state.history):
                span.add_event(name, event_attributes, timestamp=_ns(at_us))
        failure = state.failure
        if failure is not None and status != CONTINUED_AS_NEW:
            span.set_status(self._failed(failure.errorMessage))
        span.end(end_time=_ns(end_us))

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
            span = self._start("timer", self._kinds.INTERNAL, own, {
                "durabletask.type": "timer", "durabletask.fire_at": fire_at,
                "durabletask.task.task_id": fired.timerId, "durabletask.task.instance_id": state.instance_id,
            }, start_us=start_us)
            span.end(end_time=_ns(ts_to_us(ev.timestamp)))

    # -- activities ----------------------------------------------------------------------------------

    def activity_started(self, request: pb.ActivityRequest, parent: SpanRef | None) -> Any:
        name = request.name
        version = request.version.value if request.HasField("version") else ""
        attributes: dict[str, Any] = {
            "durabletask.type": "activity", "durabletask.task.name": name,
            "durabletask.task.task_id": request.taskId,
            "durabletask.task.instance_id": request.workflowInstance.instanceId,
        }
        if version:
            attributes["durabletask.task.version"] = version
        return self._start(span_name("activity", name, version), self._kinds.SERVER, parent, attributes)

    def activity_ended(self, span: Any, failure: pb.TaskFailureDetails | None) -> None:
        if failure is not None:
            span.set_status(self._failed(failure.errorMessage))
        span.end()


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


# -- configuration ------------------------------------------------------------------------------------

class ChosenIdGenerator:
    """The SDK's id generator (random ids), except that the next span id can be chosen: an orchestration span
    gets its persisted id."""

    def __init__(self) -> None:
        self.chosen = 0

    def generate_span_id(self) -> int:
        if self.chosen:
            return self.chosen
        span_id = random.getrandbits(64)
        while span_id == 0:
            span_id = random.getrandbits(64)
        return span_id

    def is_trace_id_random(self) -> bool:
        return True

    def generate_trace_id(self) -> int:
        trace_id = random.getrandbits(128)
        while trace_id == 0:
            trace_id = random.getrandbits(128)
        return trace_id


def _otlp_exporter(endpoint: str, protocol: str) -> Any:
    if protocol.startswith("http"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        url = endpoint if "://" in endpoint else f"http://{endpoint}"
        if url.rstrip("/").count("/") <= 2:  # no path: the collector's standard one
            url = url.rstrip("/") + "/v1/traces"
        return HttpExporter(endpoint=url)
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

    insecure = not endpoint.startswith("https://")
    return GrpcExporter(endpoint=endpoint.removeprefix("http://").removeprefix("https://"), insecure=insecure)


def make_tracer(app_id: str, otlp_endpoint: str | None = None, zipkin_endpoint: str | None = None,
                otlp_protocol: str | None = None) -> WorkflowTracer | None:
    """A tracer exporting to the given endpoints (or the standard `OTEL_EXPORTER_OTLP_*` variables), or None
    when no endpoint is configured or the OpenTelemetry SDK is not installed."""
    env_endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    otlp_endpoint = otlp_endpoint or env_endpoint
    if not otlp_endpoint and not zipkin_endpoint:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning("event=tracing_unavailable reason=%s", "the OpenTelemetry SDK is not installed: pip install "
                    "'durahub[otel]'")
        return None

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or app_id})
    provider = TracerProvider(resource=resource, id_generator=ChosenIdGenerator())  # type: ignore[arg-type, unused-ignore]
    try:
        if otlp_endpoint:
            protocol = otlp_protocol or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") \
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(otlp_endpoint, protocol)))
        if zipkin_endpoint:
            from opentelemetry.exporter.zipkin.json import ZipkinExporter

            provider.add_span_processor(BatchSpanProcessor(ZipkinExporter(endpoint=zipkin_endpoint)))
    except ImportError as exc:
        log.warning("event=tracing_unavailable reason=%r", f"exporter not installed: {exc}")
        return None
    log.info("event=tracing_enabled otlp=%s zipkin=%s", otlp_endpoint or "", zipkin_endpoint or "")
    return WorkflowTracer(provider)
