"""One pass over an execution's history that every view shares: the steps the workflow took (activities,
timers, event waits, children, sent events) with their attempts, and the turns that delivered their results
and began the next ones.

A turn starts at a `workflowStarted` event; the results after it (task, timer, child and event deliveries) were
handed to the workflow in that turn, and the scheduling events after them are what it did in answer.

Retries fold into the step they retry: the SDK re-schedules a failed activity under the same
`taskExecutionId` (a child under the same instance id) after a timer whose origin names it, so a failed attempt
followed by a retry timer is an internal detail of its step, not a result the workflow saw.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from durahub.core.state import InstanceState, status_name
from durahub.core.time import is_never, ts_to_us
from durahub.protos import pb

StepKind = Literal["activity", "timer", "child", "event", "send"]
# pending: still open; abandoned: still open when the run ended (a when_any loser, an unused timer);
# timed_out: an event wait whose timeout fired; the rest say how the step ended.
StepStatus = Literal["pending", "completed", "failed", "fired", "received", "timed_out", "sent", "abandoned"]
AttemptStatus = Literal["pending", "completed", "failed", "abandoned"]
TimerOrigin = Literal["createTimer", "externalEvent", "activityRetry", "childWorkflowRetry"]

START = "start"
END = "end"


@dataclass
class Attempt:
    """One try of an activity or child workflow, and the retry timer that followed it if it failed."""

    event_id: int  # its taskScheduled / childWorkflowInstanceCreated
    start_us: int
    end_us: int | None = None
    status: AttemptStatus = "pending"
    failure: str | None = None
    retry_timer_id: int | None = None
    retry_at_us: int | None = None
    retry_fired: bool = False


@dataclass
class Step:
    key: str  # kind and first scheduling event id, e.g. "activity-3"; stable for links and renders
    kind: StepKind
    name: str
    event_id: int  # the first scheduling event (what rerun-from-event takes); -1 for an event nobody awaited
    order: int  # history index of its first event: steps sort in the order they began
    turn: int  # the turn that began it
    start_us: int
    end_us: int | None = None
    status: StepStatus = "pending"
    failure: str | None = None  # the last failure, "ErrorType: message"
    attempts: list[Attempt] = field(default_factory=list)  # activities and children
    task_execution_id: str = ""  # activities
    instance_id: str = ""  # a child's id; a sent event's target
    app_id: str = ""  # the app it runs in or goes to, when the workflow named one (its router's target)
    origin: TimerOrigin | None = None  # timers and event waits
    timer_id: int | None = None  # timers and event waits
    fire_at_us: int | None = None  # timers and event waits; None: never (the SDK's indefinite wait)

    @property
    def is_open(self) -> bool:
        return self.status == "pending"

    @property
    def duration_us(self) -> int | None:
        return None if self.end_us is None else self.end_us - self.start_us


@dataclass
class Delivery:
    """A result handed to the workflow in a turn: a step's ending, or the run's start."""

    key: str
    index: int  # history index of the event that delivered it
    attempt: int | None = None  # the attempt it ended (activities and children)


@dataclass
class Turn:
    index: int
    start_us: int
    event_index: int  # history index of its workflowStarted (or of its first event when history has none)
    delivered: list[Delivery] = field(default_factory=list)
    began: list[str] = field(default_factory=list)  # step keys begun (END for the run's end), retries excluded


@dataclass
class Timer:
    timer_id: int
    origin: TimerOrigin | None
    fire_at_us: int | None  # None: never fires
    owner: str  # the step it times (a timer, an event wait, or the step a retry timer retries)
    fired: bool = False


@dataclass
class Execution:
    instance_id: str
    name: str
    execution_id: str
    status: str  # RUNNING, COMPLETED, ... (core.state status names)
    suspended: bool
    start_us: int | None
    end_us: int | None  # when the run ended (executionCompleted / continueAsNew)
    end_index: int | None  # history index of that event
    last_us: int | None  # the newest event's time
    outcome: str | None  # completed / failed / terminated / continued_as_new / canceled
    failure: str | None
    stall: pb.ExecutionStalledEvent | None
    steps: list[Step]
    turns: list[Turn]
    timers: list[Timer]
    by_key: dict[str, Step] = field(default_factory=dict, repr=False)

    def step(self, key: str) -> Step:
        return self.by_key[key]

    def began_at(self, key: str) -> int:
        """History index of the event that began a step (or ended the run, for END)."""
        if key == END:
            assert self.end_index is not None
            return self.end_index
        return self.by_key[key].order

    def results(self, turn: Turn) -> list[Delivery]:
        """The results the workflow saw in a turn: failed attempts it retried are left out."""
        return [d for d in turn.delivered if not self._retried(d)]

    def _retried(self, delivery: Delivery) -> bool:
        if delivery.attempt is None or delivery.key == START:
            return False
        return self.by_key[delivery.key].attempts[delivery.attempt].retry_timer_id is not None


def describe_failure(details: pb.TaskFailureDetails) -> str:
    if details.errorType and details.errorMessage:
        return f"{details.errorType}: {details.errorMessage}"
    return details.errorType or details.errorMessage or "failed"


_OUTCOMES = {
    pb.ORCHESTRATION_STATUS_COMPLETED: "completed",
    pb.ORCHESTRATION_STATUS_FAILED: "failed",
    pb.ORCHESTRATION_STATUS_TERMINATED: "terminated",
    pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW: "continued_as_new",
    pb.ORCHESTRATION_STATUS_CANCELED: "canceled",
}


class _Reader:
    """Builds an Execution event by event (see `read_execution`)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.turns: list[Turn] = []
        self.timers: dict[int, Timer] = {}
        self.by_schedule: dict[int, Step] = {}  # taskScheduled / childWorkflowInstanceCreated id -> step
        self.by_execution_id: dict[str, Step] = {}  # the activity a taskExecutionId names
        self.by_child_id: dict[str, Step] = {}  # the latest child step of an instance id
        self.waits: dict[str, deque[Step]] = {}  # open event waits by case-folded name, oldest first
        self.by_key: dict[str, Step] = {}
        self.instance_id = ""
        self.end_us: int | None = None
        self.end_index: int | None = None
        self.outcome: str | None = None
        self.failure: str | None = None
        self.handlers: dict[str, Callable[[int, pb.HistoryEvent, int, Turn], None]] = {
            "executionStarted": self._on_started,
            "taskScheduled": self._on_task_scheduled,
            "taskCompleted": self._on_task_completed,
            "taskFailed": self._on_task_failed,
            "childWorkflowInstanceCreated": self._on_child_created,
            "childWorkflowInstanceCompleted": self._on_child_completed,
            "childWorkflowInstanceFailed": self._on_child_failed,
            "timerCreated": self._on_timer_created,
            "timerFired": self._on_timer_fired,
            "eventRaised": self._on_event_raised,
            "eventSent": self._on_event_sent,
            "executionCompleted": self._on_execution_completed,
            "continueAsNew": self._on_continue_as_new,
        }

    def turn(self, index: int, at_us: int) -> Turn:
        if not self.turns:  # a history without workflowStarted events: one implicit turn
            self.turns.append(Turn(index=0, start_us=at_us, event_index=index))
        return self.turns[-1]

    def add_step(self, step: Step, began: bool = True) -> Step:
        self.steps.append(step)
        self.by_key[step.key] = step
        if began:
            self.turns[-1].began.append(step.key)
        return step

    def read(self, index: int, event: pb.HistoryEvent) -> None:
        kind = event.WhichOneof("eventType")
        at = ts_to_us(event.timestamp)
        if kind == "workflowStarted":
            self.turns.append(Turn(index=len(self.turns), start_us=at, event_index=index))
            return
        # Suspend, resume, terminate and stalls are state InstanceState keeps; the rest a view does not draw.
        handler = self.handlers.get(kind or "")
        if handler is not None:
            handler(index, event, at, self.turn(index, at))

    def _on_started(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        self.instance_id = event.executionStarted.workflowInstance.instanceId
        turn.delivered.append(Delivery(START, index))

    def _on_task_scheduled(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        ts = event.taskScheduled
        attempt = Attempt(event_id=event.eventId, start_us=at)
        retried = self.by_execution_id.get(ts.taskExecutionId) if ts.taskExecutionId else None
        if retried is not None and retried.attempts and retried.attempts[-1].retry_timer_id is not None:
            retried.attempts.append(attempt)
            retried.status, retried.end_us = "pending", None
            self.by_schedule[event.eventId] = retried
            return
        step = self.add_step(Step(key=f"activity-{event.eventId}", kind="activity", name=ts.name,
                                  event_id=event.eventId, order=index, turn=turn.index, start_us=at,
                                  attempts=[attempt], task_execution_id=ts.taskExecutionId,
                                  app_id=event.router.targetAppID))
        self.by_schedule[event.eventId] = step
        if ts.taskExecutionId:
            self.by_execution_id[ts.taskExecutionId] = step

    def _on_child_created(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        cc = event.childWorkflowInstanceCreated
        attempt = Attempt(event_id=event.eventId, start_us=at)
        retried = self.by_child_id.get(cc.instanceId)
        if retried is not None and retried.attempts and retried.attempts[-1].retry_timer_id is not None:
            retried.attempts.append(attempt)
            retried.status, retried.end_us = "pending", None
            self.by_schedule[event.eventId] = retried
            return
        step = self.add_step(Step(key=f"child-{event.eventId}", kind="child", name=cc.name, event_id=event.eventId,
                                  order=index, turn=turn.index, start_us=at, attempts=[attempt],
                                  instance_id=cc.instanceId, app_id=event.router.targetAppID))
        self.by_schedule[event.eventId] = step
        self.by_child_id[cc.instanceId] = step

    def _end_attempt(self, index: int, scheduled_id: int, at: int, turn: Turn,
                     failure: pb.TaskFailureDetails | None) -> None:
        step = self.by_schedule.get(scheduled_id)
        if step is None:
            return
        number = next((n for n, a in enumerate(step.attempts) if a.event_id == scheduled_id), None)
        if number is None or step.attempts[number].status != "pending":
            return  # a duplicate delivery
        attempt = step.attempts[number]
        attempt.end_us = at
        if failure is None:
            attempt.status = step.status = "completed"
        else:
            attempt.status = step.status = "failed"
            attempt.failure = step.failure = describe_failure(failure)
        step.end_us = at
        turn.delivered.append(Delivery(step.key, index, number))

    def _on_task_completed(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        self._end_attempt(index, event.taskCompleted.taskScheduledId, at, turn, None)

    def _on_task_failed(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        self._end_attempt(index, event.taskFailed.taskScheduledId, at, turn, event.taskFailed.failureDetails)

    def _on_child_completed(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        self._end_attempt(index, event.childWorkflowInstanceCompleted.taskScheduledId, at, turn, None)

    def _on_child_failed(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        failed = event.childWorkflowInstanceFailed
        self._end_attempt(index, failed.taskScheduledId, at, turn, failed.failureDetails)

    def _on_timer_created(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        tc = event.timerCreated
        origin: TimerOrigin | None = tc.WhichOneof("origin")
        fire_us = ts_to_us(tc.fireAt)
        fire_at = None if is_never(fire_us) else fire_us
        timer_id = event.eventId
        retried: Step | None = None
        if origin == "activityRetry":
            retried = self.by_execution_id.get(tc.activityRetry.taskExecutionId)
        elif origin == "childWorkflowRetry":
            retried = self.by_child_id.get(tc.childWorkflowRetry.instanceId)
        if retried is not None and retried.attempts and retried.attempts[-1].status == "failed":
            last = retried.attempts[-1]
            last.retry_timer_id, last.retry_at_us = timer_id, fire_at
            retried.status, retried.end_us = "pending", None
            self.timers[timer_id] = Timer(timer_id, origin, fire_at, retried.key)
            return
        if origin == "externalEvent":
            step = Step(key=f"event-{timer_id}", kind="event", name=tc.externalEvent.name, event_id=timer_id,
                        order=index, turn=turn.index, start_us=at, origin=origin, timer_id=timer_id,
                        fire_at_us=fire_at)
            self.waits.setdefault(step.name.casefold(), deque()).append(step)
        else:
            step = Step(key=f"timer-{timer_id}", kind="timer", name=tc.name or "timer", event_id=timer_id,
                        order=index, turn=turn.index, start_us=at, origin=origin, timer_id=timer_id,
                        fire_at_us=fire_at)
        self.add_step(step)
        self.timers[timer_id] = Timer(timer_id, origin, fire_at, step.key)

    def _on_timer_fired(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        timer = self.timers.get(event.timerFired.timerId)
        if timer is None or timer.fired:
            return
        timer.fired = True
        step = self.by_key[timer.owner]
        if timer.origin in ("activityRetry", "childWorkflowRetry"):
            for attempt in step.attempts:
                if attempt.retry_timer_id == timer.timer_id:
                    attempt.retry_fired = True
            return  # the retry's re-scheduling follows in this turn
        if not step.is_open:
            return  # an event wait already satisfied: its timeout no longer matters
        step.end_us = at
        if step.kind == "event":
            step.status = "timed_out"
            self.waits[step.name.casefold()].remove(step)
        else:
            step.status = "fired"
        turn.delivered.append(Delivery(step.key, index))

    def _on_event_raised(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        name = event.eventRaised.name
        waiting = self.waits.get(name.casefold())
        if waiting:  # the SDK hands events to waiters of the same name, oldest first
            step = waiting.popleft()
        else:  # nobody waits yet: the SDK keeps it for a later wait, which records no timer
            step = self.add_step(Step(key=f"event@{index}", kind="event", name=name, event_id=-1, order=index,
                                      turn=turn.index, start_us=at), began=False)
        step.status, step.end_us = "received", at
        turn.delivered.append(Delivery(step.key, index))

    def _on_event_sent(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        sent = event.eventSent
        self.add_step(Step(key=f"send-{event.eventId}", kind="send", name=sent.name, event_id=event.eventId,
                           order=index, turn=turn.index, start_us=at, end_us=at, status="sent",
                           instance_id=sent.instanceId, app_id=event.router.targetAppID))

    def _on_execution_completed(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        done = event.executionCompleted
        self._end(index, at, turn, _OUTCOMES.get(done.workflowStatus, "completed"))
        if done.HasField("failureDetails") and done.workflowStatus == pb.ORCHESTRATION_STATUS_FAILED:
            self.failure = describe_failure(done.failureDetails)

    def _on_continue_as_new(self, index: int, event: pb.HistoryEvent, at: int, turn: Turn) -> None:
        self._end(index, at, turn, "continued_as_new")

    def _end(self, index: int, at: int, turn: Turn, outcome: str) -> None:
        if self.outcome is None:
            self.end_us, self.outcome, self.end_index = at, outcome, index
            turn.began.append(END)


def read_execution(history: list[pb.HistoryEvent]) -> Execution:
    """The steps and turns of one execution (the history of its current generation)."""
    reader = _Reader()
    for index, event in enumerate(history):
        reader.read(index, event)
    state = InstanceState.from_history("", 0, history)
    if reader.outcome is not None:
        for step in reader.steps:  # what was still open when the run ended was never waited for again
            if step.is_open:
                step.status = "abandoned"
            for attempt in step.attempts:
                if attempt.status == "pending":
                    attempt.status = "abandoned"
    return Execution(
        instance_id=reader.instance_id,
        name=state.name,
        execution_id=state.execution_id,
        status=status_name(state.status),
        suspended=state.suspended,
        start_us=state.created_us if state.started else None,
        end_us=reader.end_us,
        end_index=reader.end_index,
        last_us=ts_to_us(history[-1].timestamp) if history else None,
        outcome=reader.outcome,
        failure=reader.failure,
        stall=state.stall,
        steps=reader.steps,
        turns=reader.turns,
        timers=list(reader.timers.values()),
        by_key=reader.by_key,
    )
