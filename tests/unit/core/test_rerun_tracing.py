"""A rerun is a new execution: it must not carry the source's trace context or orchestration span id (its spans
would land in the source's trace, under the source's workflowSpanID)."""

from __future__ import annotations

from durahub.core.outcome import execution_started
from durahub.core.rerun import build_rerun
from durahub.core.tracing import SpanRef, orchestration_span, workflow_span_id
from durahub.protos import pb

SOURCE_TRACE = SpanRef(trace_id=0x1234, span_id=0x99)


def traced_history() -> list[pb.HistoryEvent]:
    started = execution_started(1_000, "source", "exec-source", "order", '"in"', trace_parent=SOURCE_TRACE)
    scheduled = pb.HistoryEvent(eventId=0)
    scheduled.taskScheduled.name = "charge"
    turn = pb.HistoryEvent(eventId=-1)
    turn.workflowStarted.SetInParent()
    return [turn, started, scheduled]


def rerun_start(trace_parent: SpanRef | None) -> pb.ExecutionStartedEvent:
    plan = build_rerun(traced_history(), "source", 0, "copy", "exec-copy", None, False, 2_000,
                       trace_parent=trace_parent)
    starts = [e for e in plan.state.history if e.HasField("executionStarted")]
    assert len(starts) == 1
    return starts[0].executionStarted


def test_source_is_traced() -> None:
    span = orchestration_span(traced_history()[1].executionStarted)
    assert span is not None and span.trace_id == SOURCE_TRACE.trace_id


def test_untraced_rerun_drops_the_source_trace() -> None:
    es = rerun_start(None)
    assert not es.HasField("parentTraceContext")
    assert not es.HasField("workflowSpanID")
    assert orchestration_span(es) is None


def test_traced_rerun_runs_under_its_own_parent_and_span() -> None:
    parent = SpanRef(trace_id=0xABCD, span_id=0x42)
    es = rerun_start(parent)
    span = orchestration_span(es)
    assert span is not None
    assert span.trace_id == parent.trace_id
    assert span.span_id == workflow_span_id("exec-copy") != workflow_span_id("exec-source")
