"""An instance's committed history and what follows from it (status, ids in use, output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from durahub.core.apps import instance_key
from durahub.core.time import ts_to_us
from durahub.core.tracing import SpanRef, orchestration_span
from durahub.protos import pb

RUNNING = pb.ORCHESTRATION_STATUS_RUNNING
COMPLETED = pb.ORCHESTRATION_STATUS_COMPLETED
CONTINUED_AS_NEW = pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW
FAILED = pb.ORCHESTRATION_STATUS_FAILED
CANCELED = pb.ORCHESTRATION_STATUS_CANCELED
TERMINATED = pb.ORCHESTRATION_STATUS_TERMINATED
PENDING = pb.ORCHESTRATION_STATUS_PENDING
SUSPENDED = pb.ORCHESTRATION_STATUS_SUSPENDED
STALLED = pb.ORCHESTRATION_STATUS_STALLED

TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, TERMINATED, CANCELED})
ACTIVE_STATUSES = frozenset({RUNNING, PENDING, SUSPENDED, STALLED})


# Precomputed: these run for every stored or read instance row.
_STATUS_NAMES: dict[int, str] = {
    int(value): name.removeprefix("ORCHESTRATION_STATUS_") for name, value in pb.OrchestrationStatus.items()
}
_STATUS_VALUES: dict[str, int] = {name: value for value, name in _STATUS_NAMES.items()}


def status_name(status: int) -> str:
    """`ORCHESTRATION_STATUS_RUNNING` -> `RUNNING` (the form stored and shown over HTTP)."""
    name = _STATUS_NAMES.get(status)
    if name is None:
        raise ValueError(f"unknown orchestration status {status!r}")
    return name


def status_from_name(name: str) -> int:
    value = _STATUS_VALUES.get(name)
    if value is None:
        raise ValueError(f"unknown orchestration status name {name!r}")
    return value


@dataclass
class InstanceState:
    """Derived view of one execution's history, updated incrementally as events are appended."""

    instance_id: str
    generation: int = 0
    history: list[pb.HistoryEvent] = field(default_factory=list)
    # The app the instance belongs to (see `core.apps`); "" only in pure tests that do not care.
    app_id: str = ""
    name: str = ""
    execution_id: str = ""
    input: str | None = None
    parent: pb.ParentInstanceInfo | None = None
    created_us: int = 0
    updated_us: int = 0
    scheduled_tasks: set[int] = field(default_factory=set)
    task_results: set[int] = field(default_factory=set)
    timers: set[int] = field(default_factory=set)
    fired_timers: set[int] = field(default_factory=set)
    children: dict[int, str] = field(default_factory=dict)
    # The app of each child created in another app (by its task id); the others are in this instance's app.
    child_apps: dict[int, str] = field(default_factory=dict)
    child_results: set[int] = field(default_factory=set)
    started: bool = False
    suspended: bool = False
    stall: pb.ExecutionStalledEvent | None = None
    completion: pb.ExecutionCompletedEvent | None = None
    # Patches recorded on WorkflowStarted events, in order (the SDK's is_patched source of truth).
    patches: list[str] = field(default_factory=list)
    first_version_name: str = ""
    has_workflow_started: bool = False
    # When the generation's first turn started (its first workflowStarted event): Dapr's `startedAt`.
    started_us: int | None = None
    # The tags given at creation (on executionStarted).
    tags: dict[str, str] = field(default_factory=dict)
    # Serialized size of the history, kept current so dispatch budgets cost nothing per turn.
    history_bytes: int = 0
    # The history its caller propagated to it (Dapr 1.18), sent with every turn; None when it got none.
    incoming: pb.PropagatedHistory | None = None
    # The execution's orchestration span when its trace is sampled (`core.tracing`); None when untraced.
    trace: SpanRef | None = None

    @classmethod
    def from_history(cls, instance_id: str, generation: int, history: list[pb.HistoryEvent],
                     app_id: str = "") -> InstanceState:
        state = cls(instance_id=instance_id, generation=generation, app_id=app_id)
        for event in history:
            state.append(event)
        return state

    @property
    def key(self) -> str:
        """The engine's name for the instance (`core.apps.instance_key`)."""
        return instance_key(self.app_id, self.instance_id)

    @property
    def parent_app_id(self) -> str:
        """The parent's app: recorded on the start event, or (older histories) this instance's own."""
        if self.parent is None:
            return ""
        return self.parent.appID or self.app_id

    def child_app(self, task_id: int) -> str:
        return self.child_apps.get(task_id, self.app_id)

    @property
    def status(self) -> int:
        if self.completion is not None:
            return self.completion.workflowStatus
        if self.stall is not None:
            return STALLED
        if not self.started:
            return PENDING
        if self.suspended:
            return SUSPENDED
        return RUNNING

    @property
    def is_terminal(self) -> bool:
        return self.completion is not None

    @property
    def output(self) -> str | None:
        if self.completion is not None and self.completion.HasField("result"):
            return str(self.completion.result.value)
        return None

    @property
    def failure(self) -> pb.TaskFailureDetails | None:
        if self.completion is not None and self.completion.HasField("failureDetails"):
            return self.completion.failureDetails
        return None

    def append(self, event: pb.HistoryEvent) -> None:
        self.history.append(event)
        self.history_bytes += event.ByteSize() + 6  # field tag and length prefix inside a repeated field
        kind = event.WhichOneof("eventType")
        self.updated_us = ts_to_us(event.timestamp)
        if kind != "executionStalled":
            self.stall = None
        if kind == "executionStarted":
            es = event.executionStarted
            self.started = True
            self.name = es.name
            self.execution_id = es.workflowInstance.executionId.value
            self.input = es.input.value if es.HasField("input") else None
            self.parent = es.parentInstance if es.HasField("parentInstance") else None
            self.created_us = ts_to_us(event.timestamp)
            self.tags = dict(es.tags)
            self.trace = orchestration_span(es)
        elif kind == "workflowStarted":
            version = event.workflowStarted.version
            if not self.has_workflow_started and version.name:
                self.first_version_name = version.name
            if not self.has_workflow_started:
                self.started_us = self.updated_us
            self.has_workflow_started = True
            self.patches.extend(version.patches)
        elif kind == "taskScheduled":
            self.scheduled_tasks.add(event.eventId)
        elif kind == "taskCompleted":
            self.task_results.add(event.taskCompleted.taskScheduledId)
        elif kind == "taskFailed":
            self.task_results.add(event.taskFailed.taskScheduledId)
        elif kind == "timerCreated":
            self.timers.add(event.eventId)
        elif kind == "timerFired":
            self.fired_timers.add(event.timerFired.timerId)
        elif kind == "childWorkflowInstanceCreated":
            self.children[event.eventId] = event.childWorkflowInstanceCreated.instanceId
            target = event.router.targetAppID
            if target and target != self.app_id:
                self.child_apps[event.eventId] = target
        elif kind == "childWorkflowInstanceCompleted":
            self.child_results.add(event.childWorkflowInstanceCompleted.taskScheduledId)
        elif kind == "childWorkflowInstanceFailed":
            self.child_results.add(event.childWorkflowInstanceFailed.taskScheduledId)
        elif kind == "executionSuspended":
            self.suspended = True
        elif kind == "executionResumed":
            self.suspended = False
        elif kind == "executionCompleted":
            self.completion = event.executionCompleted
        elif kind == "executionStalled":
            self.stall = event.executionStalled


# Predicates over an instance's committed status, for long-polls (`Engine.wait_for`).
class _HasStatus(Protocol):
    status: int


def is_started(row: _HasStatus) -> bool:
    return row.status != PENDING


def is_finished(row: _HasStatus) -> bool:
    return row.status in TERMINAL_STATUSES


def is_suspended_or_finished(row: _HasStatus) -> bool:
    return row.status == SUSPENDED or row.status in TERMINAL_STATUSES


def is_running_or_finished(row: _HasStatus) -> bool:
    return row.status == RUNNING or row.status in TERMINAL_STATUSES
