"""The engine's spans without a server: `WorkflowTracer` builds finished spans itself (no SDK Tracer), so its
sampling and parenting are checked here against the SDK's rules, and `otlp_wire` writes the OTLP request
itself, so its bytes are checked against the SDK's own encoder for the same spans."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.common")

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import Event, ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased  # noqa: E402
from opentelemetry.sdk.util.instrumentation import InstrumentationScope  # noqa: E402
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags  # noqa: E402
from opentelemetry.trace.span import TraceState  # noqa: E402

from durahub.core.tracing import SpanRef  # noqa: E402
from durahub.observability.otlp_wire import RequestEncoder  # noqa: E402
from durahub.observability.tracing import WorkflowTracer  # noqa: E402
from durahub.protos import pb  # noqa: E402

RESOURCE = Resource.create({"service.name": "wire-test", "answer": 42, "ratio": 0.5, "on": True})
SCOPE = InstrumentationScope("durabletask")
CALLER = SpanRef(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, 1, "vendor=abc,other=1")


class Collecting:
    """A span processor keeping what it is handed."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        pass


def tracer(sampler: Any = None) -> tuple[WorkflowTracer, Collecting]:
    sink = Collecting()
    return WorkflowTracer([sink], RESOURCE, SCOPE, sampler), sink


def activity(task_id: int, name: str = "work") -> pb.ActivityRequest:
    request = pb.ActivityRequest(name=name, taskId=task_id)
    request.workflowInstance.instanceId = "inst-1"
    return request


def client_calls(t: WorkflowTracer, parent: SpanRef | None) -> SpanRef | None:
    """StartInstance → create_orchestration → three activity attempts (one failed), as one start does."""
    with t.server_call("/TaskHubSidecarService/StartInstance", parent) as call, \
            t.creating("inst-1", "order", call) as created:
        pass
    if created is None:  # untraced: the engine starts no activity spans (no parentTraceContext on the tasks)
        return None
    for i in range(3):
        span = t.activity_started(activity(i), created)
        if span is not None:
            t.activity_ended(span, pb.TaskFailureDetails(errorMessage="no") if i == 2 else None)
    return created


def test_spans_nest_as_daprd_s() -> None:
    t, sink = tracer()
    created = client_calls(t, CALLER)
    create, server, *activities = sink.spans  # in the order they ended
    assert [s.name for s in sink.spans] == ["create_orchestration||order", "/TaskHubSidecarService/StartInstance",
                                            "activity||work", "activity||work", "activity||work"]
    assert {s.context.trace_id for s in sink.spans} == {CALLER.trace_id}
    assert server.parent is not None and server.parent.span_id == CALLER.span_id and server.kind == SpanKind.SERVER
    assert create.parent is not None and create.parent.span_id == server.context.span_id
    assert created == SpanRef(CALLER.trace_id, create.context.span_id, 1, CALLER.state)
    assert all(a.parent is not None and a.parent.span_id == create.context.span_id for a in activities)
    assert dict(activities[1].attributes) == {"durabletask.type": "activity", "durabletask.task.name": "work",
                                              "durabletask.task.task_id": 1, "durabletask.task.instance_id": "inst-1"}
    assert [a.status.status_code for a in activities] == [StatusCode.UNSET, StatusCode.UNSET, StatusCode.ERROR]
    assert all(s.context.trace_state.to_header() == CALLER.state for s in sink.spans)
    assert all(s.end_time is not None and s.start_time is not None and s.end_time >= s.start_time
               for s in sink.spans)


def test_a_root_call_starts_its_own_trace() -> None:
    t, sink = tracer()
    client_calls(t, None)
    [server] = [s for s in sink.spans if s.name == "/TaskHubSidecarService/StartInstance"]
    assert server.parent is None
    assert len({s.context.trace_id for s in sink.spans}) == 1


def test_an_unsampled_caller_gets_no_spans_and_propagates_nothing() -> None:
    t, sink = tracer()
    assert client_calls(t, SpanRef(CALLER.trace_id, CALLER.span_id, 0)) is None
    assert sink.spans == []


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, ParentBased(TraceIdRatioBased(0.0))])
def test_a_configured_sampler_decides(sampler: Any) -> None:
    t, sink = tracer(sampler)
    assert client_calls(t, None) is None
    assert sink.spans == []


def test_a_failed_create_records_the_exception() -> None:
    t, sink = tracer()
    with pytest.raises(ValueError), t.creating("inst-1", "order", CALLER):
        raise ValueError("boom")
    [span] = sink.spans
    assert span.status.status_code == StatusCode.ERROR and span.status.description == "boom"
    assert [e.name for e in span.events] == ["exception"]
    assert span.events[0].attributes is not None and span.events[0].attributes["exception.type"] == "ValueError"


def test_wire_encoding_is_the_sdk_s_to_the_byte() -> None:
    t, sink = tracer()
    client_calls(t, CALLER)
    client_calls(t, None)
    # What only orchestration spans and odd inputs carry: events, all value types, a status message.
    context = SpanContext(CALLER.trace_id, 0x1234, False, TraceFlags(1), TraceState([("k", "v")]))
    sink.spans.append(ReadableSpan(
        "orchestration||order", context, SpanContext(CALLER.trace_id, 0x99, True, TraceFlags(1)), RESOURCE,
        {"s": "x", "i": -5, "big": 2**40, "f": 1.25, "b": False, "bytes": b"\x00\x01"},
        [Event("Received external event", {"name": "go", "size": 3}, 1_700_000_000_000_000_123)], (),
        SpanKind.SERVER, None, Status(StatusCode.ERROR, "it failed: ünïcode"), 1, 2**63, SCOPE))
    encoder = RequestEncoder(RESOURCE, SCOPE)
    wire = encoder.encode(sink.spans)
    assert wire == encode_spans(sink.spans).SerializeToString()
    assert ExportTraceServiceRequest.FromString(wire) == encode_spans(sink.spans)


def test_spans_the_wire_encoder_does_not_know_are_left_to_the_sdk() -> None:
    t, sink = tracer()
    client_calls(t, CALLER)
    other = RequestEncoder(Resource.create({"service.name": "someone-else"}), SCOPE)
    assert other.encode(sink.spans) is None
    sink.spans[0]._attributes = {"list": [1, 2]}  # a value type the engine never sets
    assert RequestEncoder(RESOURCE, SCOPE).encode(sink.spans) is None
