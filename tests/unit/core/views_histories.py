"""Hand-built histories for the view tests, shaped like the ones durahub records for the official SDK: each
turn is a workflowStarted, the results it delivers, then what the workflow scheduled (ids from 1 in order)."""

from __future__ import annotations

from durahub.core.time import NEVER_US, us_to_ts
from durahub.protos import pb

T0 = 1_700_000_000_000_000
SECOND = 1_000_000


class History:
    def __init__(self, name: str = "wf", instance_id: str = "i1") -> None:
        self.name = name
        self.instance_id = instance_id
        self.events: list[pb.HistoryEvent] = []
        self.now = T0
        self.next_id = 1
        self.executions: dict[int, str] = {}

    def at(self, seconds: float) -> History:
        self.now = T0 + int(seconds * SECOND)
        return self

    def _add(self, event_id: int = -1) -> pb.HistoryEvent:
        ev = pb.HistoryEvent(eventId=event_id, timestamp=us_to_ts(self.now))
        self.events.append(ev)
        return ev

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    # -- turns and the run -------------------------------------------------------------------------------
    def turn(self, seconds: float | None = None) -> History:
        if seconds is not None:
            self.at(seconds)
        self._add().workflowStarted.SetInParent()
        return self

    def start(self, input: str | None = None) -> History:
        self.turn()
        es = self._add().executionStarted
        es.name = self.name
        es.workflowInstance.instanceId = self.instance_id
        es.workflowInstance.executionId.value = "exec-1"
        if input is not None:
            es.input.value = input
        return self

    def complete_run(self, status: int = pb.ORCHESTRATION_STATUS_COMPLETED, failure: str | None = None) -> None:
        ec = self._add(self._id()).executionCompleted
        ec.workflowStatus = status  # type: ignore[assignment]
        if failure is not None:
            ec.failureDetails.errorType = "RuntimeError"
            ec.failureDetails.errorMessage = failure

    def terminate(self) -> None:
        self._add().executionTerminated.SetInParent()

    def suspend(self) -> None:
        self._add().executionSuspended.SetInParent()

    def resume(self) -> None:
        self._add().executionResumed.SetInParent()

    def stall(self, reason: int, description: str) -> None:
        ev = self._add().executionStalled
        ev.reason = reason  # type: ignore[assignment]
        ev.description = description

    # -- activities --------------------------------------------------------------------------------------
    def schedule(self, name: str, execution_id: str | None = None) -> int:
        task_id = self._id()
        ts = self._add(task_id).taskScheduled
        ts.name = name
        ts.taskExecutionId = execution_id or f"x-{task_id}"
        self.executions[task_id] = ts.taskExecutionId
        return task_id

    def retry(self, name: str, first_task_id: int) -> int:
        """Re-schedule an activity under the taskExecutionId of its first attempt."""
        task_id = self.schedule(name, self.executions[first_task_id])
        self.executions[task_id] = self.executions[first_task_id]
        return task_id

    def done(self, task_id: int, result: str = "1") -> None:
        tc = self._add().taskCompleted
        tc.taskScheduledId = task_id
        tc.result.value = result

    def fail(self, task_id: int, message: str = "boom") -> None:
        tf = self._add().taskFailed
        tf.taskScheduledId = task_id
        tf.failureDetails.errorType = "ValueError"
        tf.failureDetails.errorMessage = message

    # -- timers and events -------------------------------------------------------------------------------
    def timer(self, fire_in: float, origin: str = "createTimer", **origin_fields: str) -> int:
        timer_id = self._id()
        tc = self._add(timer_id).timerCreated
        tc.fireAt.CopyFrom(us_to_ts(self.now + int(fire_in * SECOND)))
        getattr(tc, origin).SetInParent()
        for key, value in origin_fields.items():
            setattr(getattr(tc, origin), key, value)
        return timer_id

    def retry_timer(self, first_task_id: int, fire_in: float) -> int:
        return self.timer(fire_in, "activityRetry", taskExecutionId=self.executions[first_task_id])

    def wait_event(self, name: str, timeout: float | None = None) -> int:
        timer_id = self._id()
        tc = self._add(timer_id).timerCreated
        if timeout is None:  # the SDK's indefinite-wait sentinel, 9999-12-31T23:59:59.999999999Z
            tc.fireAt.seconds = NEVER_US // SECOND
            tc.fireAt.nanos = 999_999_999
        else:
            tc.fireAt.CopyFrom(us_to_ts(self.now + int(timeout * SECOND)))
        tc.externalEvent.name = name
        return timer_id

    def fire(self, timer_id: int) -> None:
        self._add().timerFired.timerId = timer_id

    def raise_event(self, name: str, data: str = '"x"') -> None:
        er = self._add().eventRaised
        er.name = name
        er.input.value = data

    def send(self, instance_id: str, name: str) -> int:
        event_id = self._id()
        es = self._add(event_id).eventSent
        es.instanceId = instance_id
        es.name = name
        return event_id

    # -- children ----------------------------------------------------------------------------------------
    def child(self, name: str, instance_id: str | None = None, app_id: str = "") -> int:
        task_id = self._id()
        ev = self._add(task_id)
        if app_id:
            ev.router.targetAppID = app_id
        cc = ev.childWorkflowInstanceCreated
        cc.name = name
        cc.instanceId = instance_id or f"{self.instance_id}:{task_id:04x}"
        return task_id

    def child_done(self, task_id: int) -> None:
        self._add().childWorkflowInstanceCompleted.taskScheduledId = task_id

    def child_failed(self, task_id: int, message: str = "child broke") -> None:
        cf = self._add().childWorkflowInstanceFailed
        cf.taskScheduledId = task_id
        cf.failureDetails.errorType = "TaskFailedError"
        cf.failureDetails.errorMessage = message
