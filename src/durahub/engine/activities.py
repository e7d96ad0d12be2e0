"""Activities: handing a task to a worker, and recording its result (once) in the instance's inbox."""

from __future__ import annotations

import logging

from durahub.core.apps import app_of, id_of
from durahub.core.time import us_to_ts
from durahub.engine.clock import Clock
from durahub.engine.dispatch import Outstanding, Streams
from durahub.engine.scheduler import Scheduler
from durahub.engine.tasks import ActivityTable
from durahub.engine.work import PendingTask, Stream, run_to_completion
from durahub.observability.hooks import Observer
from durahub.protos import pb
from durahub.store.base import Store

log = logging.getLogger("durahub.engine")


class ActivityResults:
    def __init__(self, store: Store, tasks: ActivityTable, streams: Streams, scheduler: Scheduler,
                 clock: Clock, observer: Observer) -> None:
        self._store = store
        self._clock = clock
        self._observer = observer
        self._tasks = tasks
        self._streams = streams
        self._scheduler = scheduler
        # Activity results received and being committed per instance, and instances with a committed result
        # whose turn waits for those: a turn started between two commits would see only the first result.
        self._recording: dict[str, int] = {}
        self._recorded: set[str] = set()

    def add(self, task: PendingTask) -> None:
        """Hold a (durable) task and queue it for a worker."""
        self._tasks.add(task)
        self._scheduler.dispatch_task(task.seq, task.app_id)

    def recording(self) -> bool:
        """Whether a result is being committed (the time skipper's idle test)."""
        return bool(self._recording)

    def materialize(self, seq: int, stream: Stream) -> pb.WorkItem | None:
        task = self._tasks.get(seq)
        if task is None or task.token:
            return None
        task.token = self._streams.issue(stream, task)
        return pb.WorkItem(activityRequest=self._observer.activity_sent(task), completionToken=task.token)

    @run_to_completion
    async def complete(self, response: pb.ActivityResponse, app_id: str) -> None:
        """A worker of app `app_id` answered an activity."""
        def matches(item: Outstanding) -> bool:
            return (isinstance(item, PendingTask) and id_of(item.instance_id) == response.instanceId
                    and item.task_id == response.taskId and item.app_id == app_id)

        token = response.completionToken
        task: PendingTask | None = None
        if token:
            item = self._streams.take(token, matches)
            if isinstance(item, PendingTask):
                task = item
            else:
                # A late answer from a dropped stream still counts if its task has not been completed yet.
                # The retired token names the exact task: task ids restart after continue-as-new, so
                # (instance, task id) alone could match a newer generation's task.
                seq = self._streams.retired(token)
                task = self._tasks.get(seq) if seq is not None else None
        else:
            # Workers that do not echo tokens: the current generation's task with that id.
            task = self._tasks.find(app_id, response.instanceId, response.taskId)
        if task is not None and task.token:
            self._streams.take(task.token, matches)
        if task is None or not matches(task):
            log.info("event=late_activity_completion_ignored instance=%s task=%d", response.instanceId,
                     response.taskId)
            return
        # Out of the dispatch maps while the result is being recorded, so a duplicate answer is ignored.
        self._tasks.drop(task)
        self._observer.activity_answered(task, response)
        event = result_event(task, response, self._clock.now_us())
        instance_id = task.instance_id
        self._recording[instance_id] = self._recording.get(instance_id, 0) + 1
        recorded = False
        try:
            recorded = await self._store.complete_task(task.seq, instance_id, task.generation,
                                                       event.SerializeToString())
        except Exception:
            # Not recorded: the task runs again (at least once); the worker is told to expect a re-dispatch.
            task.token = ""
            self.add(task)
            raise
        finally:
            self._result_committed(instance_id, recorded)

    def _result_committed(self, instance_id: str, recorded: bool) -> None:
        """One activity result's commit ended. The last of the instance's results being committed schedules the
        turn (gathering), so results that arrived together are delivered in one turn."""
        left = self._recording[instance_id] - 1
        if left:
            self._recording[instance_id] = left
        else:
            del self._recording[instance_id]
        if recorded:
            self._recorded.add(instance_id)
        if left or instance_id not in self._recorded:
            return
        self._recorded.discard(instance_id)
        self._scheduler.gather(instance_id)


def result_event(task: PendingTask, response: pb.ActivityResponse, now_us: int) -> pb.HistoryEvent:
    """The taskCompleted or taskFailed event a worker's answer becomes."""
    ev = pb.HistoryEvent(eventId=-1, timestamp=us_to_ts(now_us))
    # As daprd: the result carries the scheduling event's router (caller's app, and the target if another).
    caller = app_of(task.instance_id)
    ev.router.sourceAppID = caller
    if task.app_id != caller:
        ev.router.targetAppID = task.app_id
    if response.HasField("failureDetails"):
        ev.taskFailed.taskScheduledId = task.task_id
        ev.taskFailed.failureDetails.CopyFrom(response.failureDetails)
        ev.taskFailed.taskExecutionId = task.request.taskExecutionId
    else:
        ev.taskCompleted.taskScheduledId = task.task_id
        if response.HasField("result"):
            ev.taskCompleted.result.CopyFrom(response.result)
        ev.taskCompleted.taskExecutionId = task.request.taskExecutionId
    return ev
