"""W3C trace contexts on history events (pure): what durahub writes into `parentTraceContext` and
`workflowSpanID`, so the SDK's activity spans and the user's spans join the workflow's trace.

An execution's orchestration span has one id for its whole life, across turns and engine restarts: the
`workflowSpanID` written on its executionStarted event, derived from the execution id (so an event written
before this field existed still gets the same id every time it is read). Trace contexts are only carried
for sampled traces, as daprd does (parent-based sampling: an unsampled caller propagates nothing).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from durahub.protos import pb

SAMPLED = 0x01


@dataclass(frozen=True)
class SpanRef:
    """A span's identity as W3C trace context carries it."""

    trace_id: int
    span_id: int
    flags: int = SAMPLED
    state: str = ""

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    @functools.cached_property
    def traceparent(self) -> str:  # an orchestration span's is written on each of its activities
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.flags:02x}"

    def with_span(self, span_id: int) -> SpanRef:
        return SpanRef(self.trace_id, span_id, self.flags, self.state)

    def to_proto(self) -> pb.TraceContext:
        tc = pb.TraceContext(traceParent=self.traceparent)
        if self.state:
            tc.traceState.value = self.state
        return tc


def parse_traceparent(traceparent: str, tracestate: str = "") -> SpanRef | None:
    """A `traceparent` header value (version 00 layout), or None when it is malformed or all-zero."""
    parts = traceparent.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        version, trace_id, span_id, flags = (int(p, 16) for p in parts[:4])
    except ValueError:
        return None
    if version == 0xFF or trace_id == 0 or span_id == 0:
        return None
    return SpanRef(trace_id, span_id, flags, tracestate.strip())


def from_proto(tc: pb.TraceContext) -> SpanRef | None:
    """A TraceContext message; the legacy form (bare trace id in traceParent, span id apart) is read too."""
    return _from_fields(tc.traceParent, tc.spanID, tc.traceState.value if tc.HasField("traceState") else "")


@functools.lru_cache(maxsize=4096)
def _from_fields(traceparent: str, legacy_span_id: str, state: str) -> SpanRef | None:
    """Cached (SpanRef is immutable): one orchestration span's context is read on each of its activities."""
    ref = parse_traceparent(traceparent, state)
    if ref is None and len(traceparent) == 32 and len(legacy_span_id) == 16:
        ref = parse_traceparent(f"00-{traceparent}-{legacy_span_id}-01", state)
    return ref


def derived_id(seed: str, bits: int = 64) -> int:
    """A non-zero id of `bits` bits that is always the same for `seed` (an execution id, a task)."""
    digest = hashlib.blake2b(seed.encode(), digest_size=bits // 8).digest()
    return int.from_bytes(digest, "big") or 1


def workflow_span_id(execution_id: str) -> int:
    return derived_id("orchestration:" + execution_id)


def fresh_root(execution_id: str) -> SpanRef:
    """The parent of a continue-as-new generation: a new trace of its own, as daprd does since dapr/dapr#10064
    (copying the previous generation's context made one unbounded trace of an eternal workflow)."""
    return SpanRef(derived_id("root:" + execution_id, 128), derived_id("root-span:" + execution_id))


def stamp_start(started: pb.HistoryEvent, parent: SpanRef | None) -> None:
    """Record on an executionStarted event the span it runs under and its own orchestration span id."""
    if parent is None or not parent.sampled:
        return
    es = started.executionStarted
    es.parentTraceContext.CopyFrom(parent.to_proto())
    es.workflowSpanID.value = f"{workflow_span_id(es.workflowInstance.executionId.value):016x}"


def orchestration_span(es: pb.ExecutionStartedEvent) -> SpanRef | None:
    """The execution's orchestration span (its parent's trace, the persisted span id), or None if untraced."""
    if not es.HasField("parentTraceContext"):
        return None
    tc = es.parentTraceContext
    return _orchestration_span(tc.traceParent, tc.spanID, tc.traceState.value if tc.HasField("traceState") else "",
                               es.workflowSpanID.value if es.HasField("workflowSpanID") else "",
                               es.workflowInstance.executionId.value)


@functools.lru_cache(maxsize=4096)
def _orchestration_span(traceparent: str, legacy_span_id: str, tracestate: str, workflow_span: str,
                        execution_id: str) -> SpanRef | None:
    """Cached: an execution's state is rebuilt from its executionStarted each time its history is loaded."""
    parent = _from_fields(traceparent, legacy_span_id, "")
    if parent is None or not parent.sampled:
        return None
    span_id = 0
    if workflow_span:
        try:
            span_id = int(workflow_span, 16)
        except ValueError:
            span_id = 0
    return SpanRef(parent.trace_id, span_id or workflow_span_id(execution_id), parent.flags, tracestate)
