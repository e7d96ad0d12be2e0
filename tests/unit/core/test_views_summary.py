"""The "waiting on now" summary over hand-built histories: attempts and retry waits, timers by origin,
awaited events with and without timeout, children, stalls and suspension."""

from __future__ import annotations

from views_histories import SECOND, T0, History

from durahub.core.views import summary
from durahub.protos import pb


def test_activity_waiting_for_its_third_attempt() -> None:
    h = History().start()
    first = h.schedule("flaky")
    h.turn(1)
    h.fail(first, "boom 1")
    t1 = h.retry_timer(first, 1)
    h.turn(2)
    h.fire(t1)
    second = h.retry("flaky", first)
    h.turn(3)
    h.fail(second, "boom 2")
    t2 = h.retry_timer(first, 4)
    s = summary(h.events, now_us=T0 + 4 * SECOND)
    [activity] = s.activities
    assert activity.name == "flaky" and activity.attempt == 3 and activity.last_failure == "ValueError: boom 2"
    assert activity.retry_at_us == T0 + 7 * SECOND and activity.task_id == second and activity.first_task_id == first
    assert activity.since_us == T0 and activity.scheduled_us == T0 + 2 * SECOND
    [timer] = s.timers
    assert (timer.timer_id, timer.origin, timer.name) == (t2, "activityRetry", "flaky")
    assert timer.due_in_us == 3 * SECOND
    assert s.status == "RUNNING" and s.events == [] and s.children == [] and s.stall is None

    h.turn(7)
    h.fire(t2)
    third = h.retry("flaky", first)
    [activity] = summary(h.events, now_us=T0 + 8 * SECOND).activities
    assert (activity.attempt, activity.task_id, activity.retry_at_us) == (3, third, None)
    assert summary(h.events, now_us=T0).timers == []


def test_awaited_events_and_their_timeouts() -> None:
    h = History().start()
    forever = h.wait_event("approve")
    soon = h.wait_event("cancel", timeout=30)
    t = h.timer(60)
    s = summary(h.events, now_us=T0 + 10 * SECOND)
    assert [(e.name, e.timer_id, e.timeout_at_us) for e in s.events] == [
        ("approve", forever, None), ("cancel", soon, T0 + 30 * SECOND)]
    assert [(x.timer_id, x.origin, x.fire_at_us, x.due_in_us) for x in s.timers] == [
        (forever, "externalEvent", None, None),
        (soon, "externalEvent", T0 + 30 * SECOND, 20 * SECOND),
        (t, "createTimer", T0 + 60 * SECOND, 50 * SECOND),
    ]
    h.turn(5)
    h.raise_event("approve")
    s = summary(h.events, now_us=T0 + 10 * SECOND)
    assert [e.name for e in s.events] == ["cancel"] and forever not in [x.timer_id for x in s.timers]


def test_pending_child_and_suspension() -> None:
    h = History().start()
    c = h.child("kid", "kid-7")
    h.turn(1)
    h.suspend()
    s = summary(h.events, now_us=T0)
    assert s.suspended and s.status == "SUSPENDED"
    [child] = s.children
    assert (child.instance_id, child.name, child.task_id, child.attempt) == ("kid-7", "kid", c, 1)
    h.turn(2)
    h.resume()
    assert not summary(h.events, now_us=T0).suspended


def test_stall_reason_with_a_remedy_until_the_next_event() -> None:
    h = History().start()
    h.schedule("a")
    h.stall(pb.PAYLOAD_SIZE_EXCEEDED, "work item of 5000000 bytes exceeds the dispatch budget")
    s = summary(h.events, now_us=T0)
    assert s.status == "STALLED" and s.stall is not None
    assert s.stall.reason == "PAYLOAD_SIZE_EXCEEDED" and "5000000 bytes" in s.stall.description
    assert "--max-message-bytes" in s.stall.remedy
    h.turn(1)
    h.done(1)
    assert summary(h.events, now_us=T0).stall is None


def test_every_stall_reason_has_a_remedy() -> None:
    for reason in pb.StalledReason.values():
        h = History().start()
        h.stall(reason, "x")
        stall = summary(h.events, now_us=T0).stall
        assert stall is not None and stall.remedy


def test_a_finished_run_waits_on_nothing() -> None:
    h = History().start()
    h.schedule("loser")
    h.wait_event("never")
    h.child("kid")
    h.turn(1)
    h.complete_run(pb.ORCHESTRATION_STATUS_FAILED, "bad")
    s = summary(h.events, now_us=T0)
    assert (s.activities, s.timers, s.events, s.children) == ([], [], [], [])
    assert s.status == "FAILED" and s.failure == "RuntimeError: bad" and s.workflow_name == "wf"
