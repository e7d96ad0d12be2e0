"""What a turn is made of and what it produces: the inbox events it carries, the plan sent to the worker, the
outcome made durable (history to append, activity tasks, timers, child starts, messages to other instances),
and the history events the engine itself writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from durahub.core.state import InstanceState
from durahub.core.time import us_to_ts
from durahub.core.tracing import SpanRef, stamp_start
from durahub.protos import pb


@dataclass
class InboxItem:
    seq: int
    event: pb.HistoryEvent
    # Set on timers and activity results: they belong to one generation (ids restart after continue-as-new).
    generation: int | None = None


@dataclass
class TurnPlan:
    """What a turn sends to the worker and which inbox rows it consumes."""

    consumed: list[int]
    new_events: list[pb.HistoryEvent]
    terminate: pb.ExecutionTerminatedEvent | None = None

    @property
    def runnable(self) -> bool:
        return bool(self.new_events)


@dataclass
class ActivityTask:
    task_id: int
    generation: int
    request: pb.ActivityRequest
    # The app whose workers run it (the action's target app, else the instance's own).
    app_id: str = ""


@dataclass
class TimerTask:
    generation: int
    fire_at_us: int
    event: pb.HistoryEvent


@dataclass
class ChildStart:
    instance_id: str
    name: str
    start_event: pb.HistoryEvent
    # Delivered to the parent instead when the id is held by an active instance.
    conflict_event: pb.HistoryEvent
    parent_task_id: int
    # The app the child is created in (the action's target app, else the parent's own).
    app_id: str = ""
    # The history propagated to it, kept as its incoming history.
    incoming: pb.PropagatedHistory | None = None


@dataclass
class Message:
    """An event for another instance's inbox (parent notification, recursive terminate, sendEvent)."""

    target: str
    event: pb.HistoryEvent
    # The target instance's app.
    app_id: str = ""


@dataclass
class TurnOutcome:
    """Everything one turn makes durable, in one transaction."""

    state: InstanceState
    consumed: list[int]
    appended: list[pb.HistoryEvent]
    replace_history: bool = False
    custom_status: str | None = None
    tasks: list[ActivityTask] = field(default_factory=list)
    timers: list[TimerTask] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    stalled: bool = False
    # Set when the worker asked to continue as new: the engine re-runs the turn with these new events.
    continue_as_new: list[pb.HistoryEvent] | None = None
    # Events queued ahead of the instance's inbox (a new generation's start, see `start_next_generation`).
    inbox_front: list[pb.HistoryEvent] = field(default_factory=list)
    # Continue-as-new: the next generation's incoming history (daprd's rule, `core.propagation`).
    next_incoming: pb.PropagatedHistory | None = None


def new_event(now_us: int, event_id: int = -1) -> pb.HistoryEvent:
    return pb.HistoryEvent(eventId=event_id, timestamp=us_to_ts(now_us))


def workflow_started(now_us: int) -> pb.HistoryEvent:
    ev = new_event(now_us)
    ev.workflowStarted.SetInParent()
    return ev


def execution_started(
    now_us: int,
    instance_id: str,
    execution_id: str,
    name: str,
    input: str | None,
    parent: pb.ParentInstanceInfo | None = None,
    scheduled_us: int | None = None,
    app_id: str = "",
    target_app_id: str = "",
    tags: dict[str, str] | None = None,
    trace_parent: SpanRef | None = None,
) -> pb.HistoryEvent:
    """`trace_parent`: the span the execution runs under (the create span, the parent's orchestration span)."""
    ev = new_event(now_us)
    es = ev.executionStarted
    es.name = name
    if input is not None:
        es.input.value = input
    es.workflowInstance.instanceId = instance_id
    es.workflowInstance.executionId.value = execution_id
    if parent is not None:
        es.parentInstance.CopyFrom(parent)
    if scheduled_us is not None:
        es.scheduledStartTimestamp.CopyFrom(us_to_ts(scheduled_us))
    if tags:
        es.tags.update(tags)
    if app_id:
        ev.router.sourceAppID = app_id
    if target_app_id:
        # What makes the SDK's `ctx.app_id` the child's app for a child created in another app.
        ev.router.targetAppID = target_app_id
    if trace_parent is not None:
        stamp_start(ev, trace_parent)
    return ev
