"""The engine's parts on their own, in-process and without a store: waiters, the activity table, the
scheduler (one turn per instance, turns that follow, gathering, timers) and the work-item streams."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

pytest.importorskip("durahub")

from durahub.core.apps import app_of  # noqa: E402
from durahub.core.state import COMPLETED, RUNNING, InstanceState  # noqa: E402
from durahub.engine.cache import StateCache  # noqa: E402
from durahub.engine.dispatch import Streams  # noqa: E402
from durahub.engine.scheduler import Scheduler  # noqa: E402
from durahub.engine.tasks import ActivityTable  # noqa: E402
from durahub.engine.waiters import Waiters  # noqa: E402
from durahub.engine.work import ActivityJob, OrchestrationJob, PendingTask, Turn, now_us  # noqa: E402
from durahub.protos import pb  # noqa: E402
from durahub.store.base import InstanceRow  # noqa: E402

T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(fn())  # type: ignore[arg-type]


def row(instance_id: str, status: int) -> InstanceRow:
    return InstanceRow(instance_id=instance_id, name="wf", status=status, execution_id="", generation=0,
                       created_us=0, updated_us=0, completed_us=None, input=None, output=None, custom_status=None,
                       failure=None, parent_instance_id=None, parent_task_id=None, history_len=0)


def task(seq: int, instance_id: str = "i", generation: int = 0, task_id: int = 1) -> PendingTask:
    return PendingTask(seq, instance_id, generation, task_id, pb.ActivityRequest(name="a", taskId=task_id),
                       app_id=app_of(instance_id))


def parts() -> tuple[ActivityTable, StateCache, Scheduler, Streams]:
    tasks = ActivityTable()
    cache = StateCache(store=None)  # type: ignore[arg-type]  # these tests never load from a store
    scheduler = Scheduler(cache, tasks)
    return tasks, cache, scheduler, Streams(scheduler, tasks, cache)


def drain(scheduler: Scheduler) -> list[object]:
    jobs = []
    for app in scheduler.queued():
        queue = scheduler.queue(app)
        while not queue.empty():
            jobs.append(queue.get_nowait())
    return jobs


# -- waiters ----------------------------------------------------------------------------------------------

def test_a_waiter_gets_the_committed_row_that_satisfies_it_without_reading_again() -> None:
    reads: list[str] = []
    current = {"i": row("i", RUNNING)}

    async def read(instance_id: str) -> InstanceRow | None:
        reads.append(instance_id)
        return current.get(instance_id)

    async def scenario() -> InstanceRow | None:
        waiters = Waiters(read)
        waiting = asyncio.ensure_future(waiters.wait_for("i", lambda r: r.status == COMPLETED, timeout=5))
        await asyncio.sleep(0.01)
        assert "i" in waiters
        waiters.notify("i", row("i", RUNNING))  # does not satisfy it: it keeps waiting
        await asyncio.sleep(0.01)
        assert not waiting.done()
        done = row("i", COMPLETED)
        waiters.notify("i", done)
        result = await waiting
        assert "i" not in waiters
        return result

    result = run(scenario)
    assert result is not None and result.status == COMPLETED
    assert reads == ["i"]


def test_a_waiter_times_out_with_none_and_fail_all_ends_the_others() -> None:
    async def read(instance_id: str) -> InstanceRow | None:
        return row(instance_id, RUNNING)

    async def scenario() -> None:
        waiters = Waiters(read)
        assert await waiters.wait_for("i", lambda r: False, timeout=0.05) is None
        pending = asyncio.ensure_future(waiters.wait_for("j", lambda r: False))
        await asyncio.sleep(0.01)
        waiters.fail_all(RuntimeError("stopping"))
        with pytest.raises(RuntimeError):
            await pending

    run(scenario)


# -- the activity table -----------------------------------------------------------------------------------

def test_activity_table_counts_open_tasks_and_drops_by_generation() -> None:
    tasks = ActivityTable()
    tasks.add(task(1, generation=0, task_id=1))
    tasks.add(task(2, generation=1, task_id=1))  # the same task id in the next generation
    tasks.add(task(3, instance_id="other"))
    assert tasks.find("i", "", 1) is not None and tasks.find("i", "", 1).seq == 2
    assert tasks.has_open("i") and len(tasks) == 3
    tasks.drop_instance("i", keep_generation=1)
    assert [t.seq for t in tasks] == [2, 3]
    tasks.drop(tasks.get(2))  # type: ignore[arg-type]
    assert not tasks.has_open("i") and tasks.find("i", "", 1) is None
    tasks.drop_instance("i", keep_generation=None)  # nothing left: a no-op
    assert tasks.seqs() == [3]


# -- the scheduler ----------------------------------------------------------------------------------------

def test_one_job_per_ready_instance_and_a_turn_follows_when_work_arrived_during_one() -> None:
    async def scenario() -> None:
        _, _, scheduler, _ = parts()
        scheduler.schedule("i")
        scheduler.schedule("i")
        assert [type(j) for j in drain(scheduler)] == [OrchestrationJob]
        scheduler.taken("i")
        scheduler.turns["i"] = None  # its turn is loading
        scheduler.schedule("i")  # new work meanwhile: no second job now
        assert drain(scheduler) == []
        scheduler.end_turn("i", reschedule=False)
        assert [j.instance_id for j in drain(scheduler)] == ["i"]  # type: ignore[attr-defined]
        scheduler.taken("i")
        scheduler.turns["i"] = None
        scheduler.end_turn("i", reschedule=False)  # nothing arrived: nothing follows
        assert drain(scheduler) == []

    run(scenario)


def test_results_gather_while_activities_are_out_and_the_last_one_schedules_at_once() -> None:
    async def scenario() -> None:
        tasks, cache, scheduler, _ = parts()
        cache.put(InstanceState.from_history("i", 0, []))
        cache.turn_seconds["i"] = 0.05
        tasks.add(task(1))
        scheduler.gather("i")  # one activity still out: wait (at most 5 ms on a short history)
        assert drain(scheduler) == []
        await asyncio.sleep(0.02)
        assert [j.instance_id for j in drain(scheduler)] == ["i"]  # type: ignore[attr-defined]
        scheduler.taken("i")
        scheduler.gather("i")
        tasks.drop(tasks.get(1))  # type: ignore[arg-type]
        scheduler.gather("i")  # the last result: at once
        assert [j.instance_id for j in drain(scheduler)] == ["i"]  # type: ignore[attr-defined]

    run(scenario)


def test_timers_schedule_their_instance_when_they_come() -> None:
    async def scenario() -> None:
        _, _, scheduler, _ = parts()
        loop = asyncio.ensure_future(scheduler.run_timers())
        scheduler.add_timer(now_us() + 60_000_000, "later")
        scheduler.add_timer(now_us() + 30_000, "soon")
        await asyncio.sleep(0.01)
        assert drain(scheduler) == []
        await asyncio.sleep(0.06)
        assert [j.instance_id for j in drain(scheduler)] == ["soon"]  # type: ignore[attr-defined]
        assert scheduler.timer_count == 1
        loop.cancel()

    run(scenario)


# -- streams ----------------------------------------------------------------------------------------------

def test_a_closed_stream_gives_back_its_turn_and_tasks_and_late_answers_still_match() -> None:
    async def scenario() -> None:
        tasks, _, scheduler, streams = parts()
        stream = streams.open([], None, "i")
        pending = task(7)
        tasks.add(pending)
        pending.token = streams.issue(stream, pending)
        turn = Turn(instance_id="w", state=InstanceState("w"), plan=None)  # type: ignore[arg-type]
        scheduler.turns["w"] = turn
        turn.token = streams.issue(stream, turn)
        # Someone else's answer does not take the item.
        assert streams.take(pending.token, lambda item: False) is None
        token = pending.token
        streams.close(stream)
        assert len(streams) == 0 and stream.closed
        assert pending.token == "" and streams.retired(token) == 7
        jobs = drain(scheduler)
        assert ActivityJob(7) in jobs and "w" not in scheduler.turns
        assert any(isinstance(j, OrchestrationJob) and j.instance_id == "w" for j in jobs)

    run(scenario)
