"""The engine in-process over a temporary SQLite store, driven by a fake worker that answers work items the way
the SDK would: the turn/activity round trip, duplicate answers, and continue-as-new past one turn's limit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("durahub")

from durahub.config import Config  # noqa: E402
from durahub.core.state import COMPLETED, RUNNING  # noqa: E402
from durahub.core.turn import MAX_CONTINUE_AS_NEW_LOOPS  # noqa: E402
from durahub.engine import Engine, Stream  # noqa: E402
from durahub.protos import pb  # noqa: E402
from durahub.server import open_store  # noqa: E402


async def started(tmp_path: Path) -> Engine:
    config = Config(db=str(tmp_path / "engine.db"))
    store = open_store(config)
    await store.open()
    engine = Engine(config, store)
    await engine.start()
    return engine


async def stopped(engine: Engine) -> None:
    await engine.stop()
    await engine.store.close()


async def next_item(engine: Engine, stream: Stream) -> pb.WorkItem:
    return await asyncio.wait_for(engine.next_work_item(stream), timeout=5)


def kinds(events: list[pb.HistoryEvent]) -> list[str]:
    return [e.WhichOneof("eventType") or "" for e in events]


def test_a_turn_an_activity_and_the_turn_that_gets_its_result(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await started(tmp_path)
        stream = engine.open_stream([])
        await engine.start_instance("i", "wf", '"x"')
        first = await next_item(engine, stream)
        assert kinds(list(first.workflowRequest.newEvents)) == ["workflowStarted", "executionStarted"]
        answer = pb.WorkflowResponse(instanceId="i", completionToken=first.completionToken)
        action = answer.actions.add(id=1)
        action.scheduleTask.name = "act"
        action.scheduleTask.input.value = '"in"'
        await engine.complete_workflow_task(answer)
        activity = await next_item(engine, stream)
        assert activity.activityRequest.name == "act" and activity.activityRequest.taskId == 1
        result = pb.ActivityResponse(instanceId="i", taskId=1, completionToken=activity.completionToken)
        result.result.value = '"out"'
        await engine.complete_activity_task(result)
        await engine.complete_activity_task(result)  # a duplicate answer is ignored
        second = await next_item(engine, stream)
        assert kinds(list(second.workflowRequest.newEvents)) == ["workflowStarted", "taskCompleted"]
        assert len(second.workflowRequest.pastEvents) == 3
        done = pb.WorkflowResponse(instanceId="i", completionToken=second.completionToken)
        finish = done.actions.add(id=2)
        finish.completeWorkflow.workflowStatus = COMPLETED
        finish.completeWorkflow.result.value = '"out"'
        await engine.complete_workflow_task(done)
        row = await engine.get_instance("i")
        assert row is not None and row.status == COMPLETED and row.output == '"out"'
        history = await engine.history("i")
        assert history is not None and kinds(history).count("taskCompleted") == 1
        engine.close_stream(stream)
        await stopped(engine)

    asyncio.run(scenario())


def test_continue_as_new_past_the_loop_limit_is_saved_and_goes_on(tmp_path: Path) -> None:
    target = MAX_CONTINUE_AS_NEW_LOOPS * 2 + 5

    async def scenario() -> None:
        engine = await started(tmp_path)
        stream = engine.open_stream([])
        await engine.start_instance("loop", "wf", "0")
        items = 0
        while True:
            item = await next_item(engine, stream)
            items += 1
            started_event = next(e for e in item.workflowRequest.newEvents if e.HasField("executionStarted"))
            n = json.loads(started_event.executionStarted.input.value)
            answer = pb.WorkflowResponse(instanceId="loop", completionToken=item.completionToken)
            action = answer.actions.add(id=1)
            if n >= target:
                action.completeWorkflow.workflowStatus = COMPLETED
                action.completeWorkflow.result.value = str(n)
                await engine.complete_workflow_task(answer)
                break
            action.completeWorkflow.workflowStatus = pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW
            action.completeWorkflow.result.value = str(n + 1)
            await engine.complete_workflow_task(answer)
            if (n + 1) % (MAX_CONTINUE_AS_NEW_LOOPS + 1) == 0:
                # The loop limit: the next generation was saved, waiting for a turn of its own.
                row = await engine.get_instance("loop")
                assert row is not None and row.status == RUNNING and row.generation == n + 1
                assert await engine.history("loop") == []
        row = await engine.get_instance("loop")
        assert row is not None and row.status == COMPLETED and row.output == str(target)
        assert row.generation == target and items == target + 1
        engine.close_stream(stream)
        await stopped(engine)

    asyncio.run(scenario())
