"""The timeline over hand-built histories: retries as segments of one bar, lanes, turn markers, idle gaps."""

from __future__ import annotations

from views_histories import SECOND, T0, History

from durahub.core.views import timeline


def test_retries_are_segments_of_one_bar() -> None:
    h = History().start()
    first = h.schedule("flaky")
    h.turn(1)
    h.fail(first, "boom 1")
    t1 = h.retry_timer(first, 1)
    h.turn(2)
    h.fire(t1)
    second = h.retry("flaky", first)
    h.turn(3)
    h.done(second)
    h.complete_run()
    [bar] = timeline(h.events).bars
    assert (bar.kind, bar.name, bar.status, bar.attempts, bar.start_us, bar.end_us) == (
        "activity", "flaky", "completed", 2, T0, T0 + 3 * SECOND)
    assert [(s.kind, s.status, s.start_us - T0, (s.end_us or 0) - T0, s.event_id) for s in bar.segments] == [
        ("attempt", "failed", 0, SECOND, first),
        ("backoff", "completed", SECOND, 2 * SECOND, t1),
        ("attempt", "completed", 2 * SECOND, 3 * SECOND, second),
    ]
    assert bar.segments[0].failure == "ValueError: boom 1" and bar.failure == "ValueError: boom 1"


def test_parallel_bars_get_their_own_lanes_and_sequential_ones_share() -> None:
    h = History().start()
    ids = [h.schedule("work") for _ in range(3)]
    h.turn(1)
    for i in ids:
        h.done(i)
    after = h.schedule("after")
    h.turn(2)
    h.done(after)
    h.complete_run()
    t = timeline(h.events)
    assert [b.lane for b in t.bars] == [0, 1, 2, 0] and t.lanes == 3
    assert [m.at_us - T0 for m in t.turns] == [0, SECOND, 2 * SECOND]
    assert t.end_us == T0 + 2 * SECOND and t.status == "COMPLETED"


def test_an_open_bar_keeps_its_lane_and_a_running_axis_reaches_now() -> None:
    h = History().start()
    forever = h.wait_event("approve")
    work = h.schedule("work")
    h.turn(1)
    h.done(work)
    later = h.schedule("later")
    t = timeline(h.events, now_us=T0 + 5 * SECOND)
    lanes = {b.key: b.lane for b in t.bars}
    assert lanes[f"event-{forever}"] == 0 and lanes[f"activity-{work}"] == 1 and lanes[f"activity-{later}"] == 1
    wait = t.bars[0]
    assert wait.end_us is None and wait.status == "pending" and wait.fire_at_us is None
    assert t.end_us == T0 + 5 * SECOND
    assert timeline(h.events).end_us == T0 + SECOND  # without `now`, the newest event


def test_idle_gaps_longer_than_the_threshold() -> None:
    h = History().start()
    t = h.timer(7200)
    h.turn(7200)
    h.fire(t)
    h.complete_run()
    gaps = timeline(h.events).gaps
    assert [(g.start_us - T0, g.end_us - T0) for g in gaps] == [(0, 7200 * SECOND)]
    assert timeline(h.events, min_gap_us=8000 * SECOND).gaps == []
    [bar] = timeline(h.events).bars
    assert (bar.kind, bar.status, bar.fire_at_us) == ("timer", "fired", T0 + 7200 * SECOND)
