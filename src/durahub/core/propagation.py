"""History propagation (Dapr 1.18): the history a workflow hands to an activity or child workflow it calls.

The worker only marks a `scheduleTask` / `createChildWorkflow` action with a `HistoryPropagationScope`; the
engine builds what is sent. A chunk is one workflow's current-generation history, each event serialized on
its own, tagged with the app id of the engine that produced it (never the target's), the instance id and
the workflow name. With OWN_HISTORY the callee gets the caller's chunk only (a trust boundary: whatever the
caller received is dropped); with LINEAGE it gets the chunks the caller received, oldest ancestor first, then
the caller's. A child keeps what it received as its incoming history, delivered with every turn it runs.

daprd's rules, as read from durabletask-go (`backend/runtimestate/propagation.go`, `applier.go`) and the
daprd integration tests (`tests/integration/suite/daprd/workflow/propagation/`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from durahub.protos import pb

NONE = pb.HISTORY_PROPAGATION_SCOPE_NONE
OWN_HISTORY = pb.HISTORY_PROPAGATION_SCOPE_OWN_HISTORY
LINEAGE = pb.HISTORY_PROPAGATION_SCOPE_LINEAGE

# The scheduling events that record the scope their action asked for (a rerun dispatches again with it).
_SCOPED_EVENTS = ("taskScheduled", "childWorkflowInstanceCreated")


def serialize_event(event: pb.HistoryEvent) -> bytes:
    """One `rawEvents` entry. Deterministic, as daprd's are: the bytes a signer signs are the bytes sent."""
    raw: bytes = event.SerializeToString(deterministic=True)
    return raw


class SerializedEvents:
    """One generation's history serialized event by event, each event once.

    Within a generation the history only grows and its events do not change once appended, so the bytes of
    a prefix stay valid: a turn that fans out to many propagating calls serializes its history once, not once
    per call. A new generation (continue-as-new, a reloaded or rerun instance) needs a new object.
    """

    def __init__(self) -> None:
        self._raw: list[bytes] = []
        self._last: pb.HistoryEvent | None = None  # the last event serialized, to recognise its history

    def of(self, events: Sequence[pb.HistoryEvent]) -> Sequence[bytes]:
        """The serialized `events`, which must extend the events this object was given before (a call's
        history is the history of the calls before it plus events)."""
        done = len(self._raw)
        if len(events) < done or (done and events[done - 1] is not self._last):
            raise ValueError("these events do not extend the history already serialized")
        self._raw.extend(serialize_event(event) for event in events[done:])
        if events:
            self._last = events[-1]
        return self._raw


def workflow_name_of(events: Sequence[pb.HistoryEvent]) -> str:
    """The name on the first executionStarted, which names the chunk ("" when there is none)."""
    for event in events:
        if event.HasField("executionStarted"):
            return str(event.executionStarted.name)
    return ""


def own_chunk(
    events: Sequence[pb.HistoryEvent],
    *,
    app_id: str,
    instance_id: str,
    serialized: SerializedEvents | None = None,
) -> pb.PropagatedHistoryChunk | None:
    """The caller's own chunk: all of `events`, in order; None when there are none."""
    if not events:
        return None
    raw = serialized.of(events) if serialized is not None else [serialize_event(e) for e in events]
    chunk = pb.PropagatedHistoryChunk(appId=app_id, instanceId=instance_id,
                                      workflowName=workflow_name_of(events))
    chunk.rawEvents.extend(raw)
    return chunk


def assemble(
    scope: int,
    received: pb.PropagatedHistory | None,
    own_events: Sequence[pb.HistoryEvent],
    *,
    app_id: str,
    instance_id: str,
    serialized: SerializedEvents | None = None,
) -> pb.PropagatedHistory | None:
    """What a call with `scope` carries: None for NONE (the field stays absent); otherwise, for LINEAGE, the
    chunks `received` holds, verbatim, then the chunk of `own_events` (left out when there are none).

    Any other scope is treated as OWN_HISTORY and passed on as it came (daprd does the same).
    """
    if scope == NONE:
        return None
    if not app_id:
        # The SDK rejects a chunk without an app id, failing the activity or workflow that reads it.
        raise ValueError("propagated history needs the app id of the engine producing it")
    # The stubs want the enum type for `scope`; any int is a valid (open) proto3 enum value.
    history = pb.PropagatedHistory(scope=scope)  # type: ignore[arg-type]
    if scope == LINEAGE and received is not None:
        history.chunks.extend(received.chunks)
    chunk = own_chunk(own_events, app_id=app_id, instance_id=instance_id, serialized=serialized)
    if chunk is not None:
        history.chunks.append(chunk)
    return history


def next_generation_incoming(
    prior_generation_events: Sequence[pb.HistoryEvent],
    received: pb.PropagatedHistory | None,
    *,
    app_id: str,
    instance_id: str,
    serialized: SerializedEvents | None = None,
) -> pb.PropagatedHistory | None:
    """The incoming history of the generation a continue-as-new starts; it replaces `received`.

    A generation that received none passes none on, even if it propagated to its own calls. Otherwise the
    scope it received decides, applied to the prior generation: LINEAGE keeps the received chunks and adds the
    prior generation's; OWN_HISTORY keeps only the prior generation's chunk (the parent's is lost, unlike
    what the docs say).
    """
    if received is None:
        return None
    return assemble(received.scope, received, prior_generation_events, app_id=app_id, instance_id=instance_id,
                    serialized=serialized)


def scope_of(event: pb.HistoryEvent) -> int:
    """The scope recorded on a taskScheduled / childWorkflowInstanceCreated event; NONE on any other."""
    kind = event.WhichOneof("eventType")
    if kind not in _SCOPED_EVENTS:
        return NONE
    return int(getattr(event, kind).historyPropagationScope)


@dataclass
class Propagation:
    """One instance's side of propagation while a turn is applied: who it is, the history it received, and
    its current generation's history serialized once for all the calls of the turn."""

    app_id: str
    instance_id: str
    incoming: pb.PropagatedHistory | None = None
    serialized: SerializedEvents = field(default_factory=SerializedEvents)

    def outgoing(self, scope: int, history: Sequence[pb.HistoryEvent]) -> pb.PropagatedHistory | None:
        """The history for one call. `history` is the generation's history at the moment the call's action is
        applied: the committed events, this turn's new events, the events of the earlier actions of the same
        answer and the call's own taskScheduled / childWorkflowInstanceCreated, and none of later actions
        (in `core.turn`, the instance state's history right after the call's event is appended). A rerun
        passes the rerun instance's whole history."""
        return assemble(scope, self.incoming, history, app_id=self.app_id, instance_id=self.instance_id,
                        serialized=self.serialized)

    def next_generation(self, history: Sequence[pb.HistoryEvent]) -> pb.PropagatedHistory | None:
        """The next generation's incoming history, `history` being this generation's when it continues as
        new (the events of the actions before the continue-as-new included)."""
        return next_generation_incoming(history, self.incoming, app_id=self.app_id,
                                        instance_id=self.instance_id, serialized=self.serialized)


def _varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def incoming_size(history: pb.PropagatedHistory | None) -> int:
    """Bytes the history adds to the WorkflowRequest or ActivityRequest carrying it (field 8, tag and length
    prefix included), for the 95% dispatch budget; 0 when there is none."""
    if history is None:
        return 0
    size: int = history.ByteSize()
    return 1 + _varint_size(size) + size


def oversized_activity(request: pb.ActivityRequest, budget: int) -> str | None:
    """The stall description when an activity request, its propagated history included, is over the dispatch
    budget; None when it fits. daprd stalls the calling workflow with PAYLOAD_SIZE_EXCEEDED."""
    size: int = request.ByteSize()
    if size <= budget:
        return None
    return (f"activity '{request.name}::{request.taskId}' payload of {size} bytes exceeds the dispatch budget "
            f"of {budget} bytes (95% of the max message size)")
