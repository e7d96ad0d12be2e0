"""The sticky executor driven in process like the SDK's own executor tests: a small engine that records each
turn's events and the events its actions commit, turns run through the sticky subclass and, for reference,
through the SDK's executor (full replay every turn). Both must return the same actions every turn."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from dapr.ext.workflow._durabletask import task
from dapr.ext.workflow._durabletask import worker as w
from dapr.ext.workflow._durabletask.internal import helpers as ph
from dapr.ext.workflow._durabletask.internal import protos as pb

from durahub import sticky

LOG = logging.getLogger("test-sticky")
T0 = datetime(2026, 1, 1)
STARTS: list[str] = []  # one entry per time a workflow function was called (a generator built)
SEEN: list[tuple[int, bool]] = []  # (step result, ctx.is_replaying when the generator got it)


def chain(ctx: task.OrchestrationContext, n: int) -> Any:
    STARTS.append("chain")
    total = 0
    for i in range(n):
        got = yield ctx.call_activity("step", input=i)
        SEEN.append((got, ctx.is_replaying))
        if got == -1:
            raise ValueError("step failed the workflow")
        total += got
        ctx.set_custom_status(f"at {i}")
    return total


def waiter(ctx: task.OrchestrationContext, _: Any) -> Any:
    STARTS.append("waiter")
    first = yield ctx.wait_for_external_event("go")
    second = yield ctx.call_activity("step", input=first)
    return second


def looper(ctx: task.OrchestrationContext, n: int) -> Any:
    STARTS.append("looper")
    yield ctx.call_activity("step", input=n)
    if n < 2:
        ctx.continue_as_new(n + 1)
    return n


@pytest.fixture
def cache() -> Iterator[sticky.StickyCache]:
    base = w._OrchestrationExecutor
    was_patched = sticky.cache() is not None
    c = sticky.patch(w)
    assert c is not None and w._OrchestrationExecutor is not base or was_patched
    c.clear()
    STARTS.clear()
    SEEN.clear()
    yield c
    c.clear()
    if not was_patched:
        sticky.unpatch(w)
        assert w._OrchestrationExecutor is base


def registry() -> Any:
    r = w._Registry()
    for fn in (chain, waiter, looper):
        r.add_orchestrator(fn)
    return r


class Engine:
    """One instance's history as an engine keeps it: each turn's new events, then the events its actions
    commit (taskScheduled, timerCreated)."""

    def __init__(self, name: str, instance_id: str, input: str, execution: str = "e1") -> None:
        started = ph.new_execution_started_event(name, instance_id, input)
        started.timestamp.FromDatetime(T0)
        started.executionStarted.workflowInstance.executionId.value = execution
        self.instance_id = instance_id
        self.history: list[pb.HistoryEvent] = []
        self.pending: list[pb.HistoryEvent] = [started]
        self.clock = T0
        self.actions: list[pb.WorkflowAction] = []

    def turn(self, executor: Any, history: list[pb.HistoryEvent] | None = None) -> w.ExecutionResults:
        self.clock += timedelta(seconds=1)
        new = [ph.new_workflow_started_event(self.clock), *self.pending]
        old = list(self.history if history is None else history)
        result = executor.execute(self.instance_id, old, new)
        self.history = old + new
        self.pending = []
        for a in result.actions:
            if a.HasField("scheduleTask"):
                self.history.append(ph.new_task_scheduled_event(a.id, a.scheduleTask.name))
            elif a.HasField("createTimer"):  # 1.19: an indefinite wait_for_external_event's optional timer
                created = pb.HistoryEvent(eventId=a.id, timerCreated=pb.TimerCreatedEvent(fireAt=a.createTimer.fireAt))
                self.history.append(created)
        self.actions = list(result.actions)
        return result

    def complete_scheduled(self, value: Callable[[int], int] = lambda i: i) -> None:
        for a in self.actions:
            if a.HasField("scheduleTask"):
                got = int(a.scheduleTask.input.value)
                self.pending.append(ph.new_task_completed_event(a.id, str(value(got))))


def scheduled_input(result: w.ExecutionResults) -> str:
    (action,) = [a for a in result.actions if a.HasField("scheduleTask")]
    return str(action.scheduleTask.input.value)


def run_chain(executor_cls: Any, n: int, instance_id: str = "chain-1", reg: Any = None) -> list[bytes]:
    reg = reg or registry()
    engine = Engine("chain", instance_id, str(n))
    out = []
    for _ in range(n + 1):
        result = engine.turn(executor_cls(reg, LOG))
        out.append(b"".join(a.SerializeToString(deterministic=True) for a in result.actions)
                   + (result.encoded_custom_status or "").encode())
        engine.complete_scheduled()
    return out


def test_sticky_turns_return_what_full_replay_returns(cache: sticky.StickyCache) -> None:
    base = w._OrchestrationExecutor.__bases__[0]
    expected = run_chain(base, 20)
    assert STARTS.count("chain") == 21  # the SDK builds a generator every turn
    STARTS.clear()
    SEEN.clear()
    assert run_chain(w._OrchestrationExecutor, 20) == expected
    assert STARTS.count("chain") == 1  # one generator for the whole run
    assert cache.stats.sticky_turns == 20 and cache.stats.full_replays == 1
    # Every result reached the generator once, as a new event (not replaying).
    assert SEEN == [(i, False) for i in range(20)]
    assert len(cache) == 0  # completed: dropped


def test_failed_generator_is_not_kept(cache: sticky.StickyCache) -> None:
    engine = Engine("chain", "fails", "5")
    reg = registry()
    engine.turn(w._OrchestrationExecutor(reg, LOG))
    engine.complete_scheduled()
    engine.turn(w._OrchestrationExecutor(reg, LOG))
    engine.complete_scheduled(lambda i: -1)
    result = engine.turn(w._OrchestrationExecutor(reg, LOG))
    (action,) = result.actions
    assert action.completeWorkflow.workflowStatus == pb.ORCHESTRATION_STATUS_FAILED
    assert "step failed the workflow" in action.completeWorkflow.failureDetails.errorMessage
    assert cache.stats.sticky_turns == 2 and len(cache) == 0


def test_redelivered_turn_replays_in_full(cache: sticky.StickyCache) -> None:
    """The engine sends a turn again (its commit was lost): the history is shorter than what the cache has
    processed, so the turn must replay, and return the same actions as the first time."""
    reg = registry()
    engine = Engine("chain", "again", "3")
    engine.turn(w._OrchestrationExecutor(reg, LOG))
    engine.complete_scheduled()
    before, pending = list(engine.history), list(engine.pending)
    first = engine.turn(w._OrchestrationExecutor(reg, LOG))
    engine.history, engine.pending = before, pending
    engine.clock -= timedelta(seconds=1)
    again = engine.turn(w._OrchestrationExecutor(reg, LOG))
    assert [a.SerializeToString() for a in again.actions] == [a.SerializeToString() for a in first.actions]
    assert cache.stats.mismatches == 1 and cache.stats.full_replays == 2
    assert STARTS.count("chain") == 2


def test_other_execution_with_the_same_id_replays_in_full(cache: sticky.StickyCache) -> None:
    """A re-created (or rerun) instance with the same id: same length of history, another executionStarted."""
    reg = registry()
    first = Engine("waiter", "same-id", "null", execution="e1")
    first.turn(w._OrchestrationExecutor(reg, LOG))
    second = Engine("waiter", "same-id", "null", execution="e2")
    second.turn(w._OrchestrationExecutor(reg, LOG))  # old history empty: shorter than the entry's
    second.pending.append(ph.new_event_raised_event("go", "7"))
    result = second.turn(w._OrchestrationExecutor(reg, LOG))
    assert scheduled_input(result) == "7"
    assert cache.stats.mismatches == 1 and cache.stats.sticky_turns == 1
    # Same length, same last event, another execution: still a mismatch.
    third = Engine("waiter", "same-id", "null", execution="e3")
    third.history = list(second.history[:-1])
    third.history[1] = third.pending.pop()
    third.pending = [second.history[-1]]
    third.pending.append(ph.new_event_raised_event("go", "8"))
    before = cache.stats.mismatches
    third.turn(w._OrchestrationExecutor(reg, LOG))
    assert cache.stats.mismatches == before + 1


def test_other_worker_registry_replays_in_full(cache: sticky.StickyCache) -> None:
    engine = Engine("waiter", "moved", "null")
    engine.turn(w._OrchestrationExecutor(registry(), LOG))
    engine.pending.append(ph.new_event_raised_event("go", "1"))
    engine.turn(w._OrchestrationExecutor(registry(), LOG))  # another worker's registry
    assert cache.stats.mismatches == 1 and cache.stats.sticky_turns == 0


def test_eviction_falls_back_to_full_replay(cache: sticky.StickyCache) -> None:
    cache.size = 1
    try:
        reg = registry()
        a, b = Engine("waiter", "a", "null"), Engine("waiter", "b", "null")
        a.turn(w._OrchestrationExecutor(reg, LOG))
        b.turn(w._OrchestrationExecutor(reg, LOG))  # evicts a
        assert cache.stats.evictions == 1
        a.pending.append(ph.new_event_raised_event("go", "1"))
        result = a.turn(w._OrchestrationExecutor(reg, LOG))
        assert scheduled_input(result) == "1"
        assert cache.stats.sticky_turns == 0 and cache.stats.mismatches == 0 and cache.stats.full_replays == 3
    finally:
        cache.size = sticky.DEFAULT_SIZE


def test_suspended_events_carry_over_between_sticky_turns(cache: sticky.StickyCache) -> None:
    reg = registry()
    engine = Engine("waiter", "susp", "null")
    engine.turn(w._OrchestrationExecutor(reg, LOG))
    engine.pending += [ph.new_suspend_event(), ph.new_event_raised_event("go", "5")]
    buffered = engine.turn(w._OrchestrationExecutor(reg, LOG))  # suspended: the event waits
    assert not [a for a in buffered.actions if a.HasField("scheduleTask")]
    engine.pending.append(ph.new_resume_event())
    result = engine.turn(w._OrchestrationExecutor(reg, LOG))
    assert scheduled_input(result) == "5"
    assert cache.stats.sticky_turns == 2


def test_terminate_and_continue_as_new_end_the_entry(cache: sticky.StickyCache) -> None:
    reg = registry()
    engine = Engine("waiter", "term", "null")
    engine.turn(w._OrchestrationExecutor(reg, LOG))
    assert len(cache) == 1
    engine.pending.append(ph.new_terminated_event(encoded_output='"bye"'))
    (action,) = engine.turn(w._OrchestrationExecutor(reg, LOG)).actions
    assert action.completeWorkflow.workflowStatus == pb.ORCHESTRATION_STATUS_TERMINATED
    assert len(cache) == 0
    loop = Engine("looper", "loop", "0")
    loop.turn(w._OrchestrationExecutor(reg, LOG))
    loop.complete_scheduled()
    (action,) = loop.turn(w._OrchestrationExecutor(reg, LOG)).actions
    assert action.completeWorkflow.workflowStatus == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW
    assert action.completeWorkflow.result.value == "1"
    assert len(cache) == 0
