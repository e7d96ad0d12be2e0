"""What a running workflow waits on now: open activities and children (with their attempt number and last
failure), timers, awaited external events, and why it is stalled if it is."""

from __future__ import annotations

from dataclasses import dataclass, field

from durahub.core.views.execution import Execution, Step, read_execution
from durahub.protos import pb

# What an operator can do about each stall reason (the engine retries a stalled instance when a worker connects).
STALL_REMEDIES: dict[str, str] = {
    "PATCH_MISMATCH": "The connected worker's code records other patches than this history. Deploy a worker"
                      " whose patches extend the recorded ones (patches may only be appended), or terminate the"
                      " instance; it is retried when a worker connects.",
    "VERSION_NOT_AVAILABLE": "No connected worker registers the workflow version this run started with. Connect a"
                             " worker that registers it, or terminate the instance; it is retried when a worker"
                             " connects.",
    "PAYLOAD_SIZE_EXCEEDED": "The next work item exceeds the gRPC message limit. Raise --max-message-bytes (and the"
                             " SDK's maximum message size) or shrink inputs and outputs, then reconnect the worker;"
                             " or terminate the instance.",
}


@dataclass
class PendingActivity:
    name: str
    task_id: int  # taskScheduled event id of the current attempt (of the failed one while waiting to retry)
    first_task_id: int  # taskScheduled event id of the first attempt (what rerun-from-event takes)
    task_execution_id: str
    app_id: str  # the app it runs in, when the workflow named one
    since_us: int  # when the first attempt was scheduled
    scheduled_us: int  # when the current attempt was scheduled
    attempt: int  # the current attempt, from 1; while waiting to retry, the one that comes next
    retry_at_us: int | None  # set while waiting to retry: when the next attempt is scheduled
    last_failure: str | None


@dataclass
class PendingChild:
    instance_id: str
    app_id: str  # the child's app, when the workflow named one
    name: str
    task_id: int
    since_us: int
    attempt: int
    retry_at_us: int | None
    last_failure: str | None


@dataclass
class PendingTimer:
    timer_id: int
    origin: str  # createTimer, externalEvent (an event's timeout), activityRetry, childWorkflowRetry; "" if unknown
    name: str  # the timer's name, the awaited event's, or the name of the activity or child it retries
    step: str  # key of the step it belongs to
    fire_at_us: int | None  # None: never fires (an event awaited with no timeout)
    due_in_us: int | None  # fire_at - now; negative when due


@dataclass
class AwaitedEvent:
    name: str
    timer_id: int
    since_us: int
    timeout_at_us: int | None  # None: no timeout


@dataclass
class Stall:
    reason: str
    description: str
    remedy: str


@dataclass
class Summary:
    instance_id: str
    workflow_name: str
    status: str
    suspended: bool
    now_us: int
    activities: list[PendingActivity] = field(default_factory=list)
    children: list[PendingChild] = field(default_factory=list)
    timers: list[PendingTimer] = field(default_factory=list)
    events: list[AwaitedEvent] = field(default_factory=list)
    stall: Stall | None = None
    failure: str | None = None


def _retry_state(step: Step) -> tuple[int, int | None]:
    """The current attempt number and, while waiting to retry, when the next attempt starts."""
    last = step.attempts[-1]
    if last.retry_timer_id is not None:
        return len(step.attempts) + 1, last.retry_at_us
    return len(step.attempts), None


def _last_failure(step: Step) -> str | None:
    return next((a.failure for a in reversed(step.attempts) if a.failure is not None), None)


def _stall(event: pb.ExecutionStalledEvent) -> Stall:
    reason = pb.StalledReason.Name(event.reason)
    return Stall(reason=reason, description=event.description, remedy=STALL_REMEDIES.get(reason, ""))


def summarize(execution: Execution, now_us: int) -> Summary:
    summary = Summary(instance_id=execution.instance_id, workflow_name=execution.name, status=execution.status,
                      suspended=execution.suspended, now_us=now_us, failure=execution.failure)
    if execution.stall is not None:
        summary.stall = _stall(execution.stall)
    for step in execution.steps:
        if not step.is_open:
            continue
        if step.kind == "activity":
            attempt, retry_at = _retry_state(step)
            current = step.attempts[-1]
            summary.activities.append(PendingActivity(
                name=step.name, task_id=current.event_id, first_task_id=step.event_id,
                task_execution_id=step.task_execution_id, app_id=step.app_id, since_us=step.start_us, scheduled_us=current.start_us,
                attempt=attempt, retry_at_us=retry_at, last_failure=_last_failure(step)))
        elif step.kind == "child":
            attempt, retry_at = _retry_state(step)
            summary.children.append(PendingChild(
                instance_id=step.instance_id, app_id=step.app_id, name=step.name, task_id=step.attempts[-1].event_id,
                since_us=step.start_us, attempt=attempt, retry_at_us=retry_at, last_failure=_last_failure(step)))
        elif step.kind == "event" and step.timer_id is not None:
            summary.events.append(AwaitedEvent(name=step.name, timer_id=step.timer_id, since_us=step.start_us,
                                               timeout_at_us=step.fire_at_us))
    for timer in execution.timers:
        owner = execution.step(timer.owner)
        if timer.fired or not owner.is_open:
            continue
        summary.timers.append(PendingTimer(
            timer_id=timer.timer_id, origin=timer.origin or "", name=owner.name, step=owner.key,
            fire_at_us=timer.fire_at_us,
            due_in_us=None if timer.fire_at_us is None else timer.fire_at_us - now_us))
    return summary


def summary(history: list[pb.HistoryEvent], now_us: int) -> Summary:
    """The "waiting on now" panel of one instance, from its history."""
    return summarize(read_execution(history), now_us)
