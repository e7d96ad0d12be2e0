"""The derived execution graph over hand-built histories: causes to actions per turn, fan-in across turns,
late when_any losers, retries folded into one node, children, event waits, ends of every kind."""

from __future__ import annotations

from views_histories import History

from durahub.core.views import Graph, Node, graph
from durahub.protos import pb


def edges(g: Graph) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in g.edges}


def late(g: Graph) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in g.edges if e.late}


def node(g: Graph, node_id: str) -> Node:
    return next(n for n in g.nodes if n.id == node_id)


def test_chain() -> None:
    h = History("chain").start()
    a = h.schedule("a")
    h.turn(1)
    h.done(a)
    b = h.schedule("b")
    h.turn(3)
    h.done(b)
    h.complete_run()
    g = graph(h.events)
    assert [n.id for n in g.nodes] == ["start", "activity-1", "activity-2", "end"]
    assert edges(g) == {("start", "activity-1"), ("activity-1", "activity-2"), ("activity-2", "end")}
    assert late(g) == set()
    assert node(g, "activity-2").duration_us == 2_000_000 and node(g, "activity-2").status == "completed"
    assert node(g, "end").status == "completed" and node(g, "end").duration_us == 3_000_000
    assert node(g, "start").label == "chain" and g.status == "COMPLETED" and g.instance_id == "i1"


def test_fan_out_fan_in_keeps_causes_across_turns_that_schedule_nothing() -> None:
    h = History().start()
    ids = [h.schedule("work") for _ in range(3)]
    h.turn(1)
    h.done(ids[0])
    h.done(ids[1])
    h.turn(2)  # the when_all still waits: nothing scheduled
    h.done(ids[2])
    total = h.schedule("total")
    h.turn(3)
    h.done(total)
    h.complete_run()
    g = graph(h.events)
    fan_in = {(f"activity-{i}", f"activity-{total}") for i in ids}
    fan_out = {("start", f"activity-{i}") for i in ids}
    assert edges(g) == fan_out | fan_in | {(f"activity-{total}", "end")}
    assert late(g) == set()


def test_when_any_loser_completing_later_is_late() -> None:
    h = History().start()
    fast, slow = h.schedule("fast"), h.schedule("slow")
    h.turn(1)
    h.done(fast)
    after = h.schedule("after")
    h.turn(2)
    h.done(after)
    wait = h.timer(10)
    h.turn(3)
    h.done(slow)  # the loser: the workflow went on without it
    h.turn(12)
    h.fire(wait)
    h.complete_run()
    g = graph(h.events)
    assert ("activity-1", "activity-3") in edges(g)
    assert ("activity-2", "activity-3") not in edges(g)
    assert late(g) == {(f"activity-{slow}", "end")}
    assert (f"timer-{wait}", "end") in edges(g)


def test_a_loser_never_heard_from_is_abandoned_when_the_run_ends() -> None:
    h = History().start()
    fast, slow = h.schedule("fast"), h.schedule("slow")
    h.turn(1)
    h.done(fast)
    h.complete_run()
    g = graph(h.events)
    assert node(g, f"activity-{slow}").status == "abandoned"
    assert edges(g) == {("start", "activity-1"), ("start", "activity-2"), ("activity-1", "end")}


def test_retries_fold_into_one_node_with_its_attempts() -> None:
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
    t2 = h.retry_timer(first, 2)
    h.turn(5)
    h.fire(t2)
    third = h.retry("flaky", first)
    h.turn(6)
    h.done(third)
    h.complete_run()
    g = graph(h.events)
    assert [n.id for n in g.nodes] == ["start", f"activity-{first}", "end"]
    flaky = node(g, f"activity-{first}")
    assert flaky.attempts == 3 and flaky.status == "completed" and flaky.failure == "ValueError: boom 2"
    assert flaky.duration_us == 6_000_000 and flaky.event_id == first
    assert edges(g) == {("start", f"activity-{first}"), (f"activity-{first}", "end")}


def test_exhausted_retries_fail_the_node_and_the_failure_is_a_cause() -> None:
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
    cleanup = h.schedule("cleanup")
    h.turn(4)
    h.done(cleanup)
    h.complete_run(pb.ORCHESTRATION_STATUS_FAILED, "gave up")
    g = graph(h.events)
    assert node(g, f"activity-{first}").status == "failed" and node(g, f"activity-{first}").attempts == 2
    assert (f"activity-{first}", f"activity-{cleanup}") in edges(g)
    end = node(g, "end")
    assert end.status == "failed" and end.label == "failed" and end.failure == "RuntimeError: gave up"


def test_a_retrying_member_of_a_fan_out_adds_no_edges_and_makes_nothing_late() -> None:
    h = History().start()
    a, b = h.schedule("a"), h.schedule("b")
    h.turn(1)
    h.fail(a)
    h.done(b)
    t = h.retry_timer(a, 1)  # the only thing this turn does is internal to `a`
    h.turn(2)
    h.fire(t)
    a2 = h.retry("a", a)
    h.turn(3)
    h.done(a2)
    join = h.schedule("join")
    h.turn(4)
    h.done(join)
    h.complete_run()
    g = graph(h.events)
    assert edges(g) == {("start", "activity-1"), ("start", "activity-2"), ("activity-1", f"activity-{join}"),
                        ("activity-2", f"activity-{join}"), (f"activity-{join}", "end")}
    assert late(g) == set()


def test_child_workflow_and_its_retry() -> None:
    h = History("parent").start()
    c = h.child("kid", "kid-1")
    h.turn(1)
    h.child_failed(c, "kid broke")
    t = h.timer(1, "childWorkflowRetry", instanceId="kid-1")
    h.turn(2)
    h.fire(t)
    c2 = h.child("kid", "kid-1")
    h.turn(3)
    h.child_done(c2)
    h.complete_run()
    g = graph(h.events)
    kid = node(g, f"child-{c}")
    assert kid.kind == "child" and kid.instance_id == "kid-1" and kid.attempts == 2 and kid.status == "completed"
    assert edges(g) == {("start", f"child-{c}"), (f"child-{c}", "end")}


def test_a_child_in_another_app_carries_that_app() -> None:
    h = History("parent").start()
    here, there = h.child("kid"), h.child("kid", "remote-1", app_id="billing")
    g = graph(h.events)
    assert (node(g, f"child-{here}").app_id, node(g, f"child-{there}").app_id) == ("", "billing")
    assert node(g, f"child-{there}").instance_id == "remote-1"


def test_event_waits_with_and_without_timeout() -> None:
    h = History().start()
    forever = h.wait_event("approve")
    h.turn(5)
    h.raise_event("APPROVE")  # names match case-insensitively, as in the SDK
    soon = h.wait_event("second", timeout=2)
    h.turn(7)
    h.fire(soon)
    h.complete_run()
    g = graph(h.events)
    assert node(g, f"event-{forever}").status == "received"
    assert node(g, f"event-{soon}").status == "timed_out"
    assert edges(g) == {("start", f"event-{forever}"), (f"event-{forever}", f"event-{soon}"),
                        (f"event-{soon}", "end")}


def test_a_timeout_firing_after_its_event_arrived_is_not_a_cause() -> None:
    h = History().start()
    wait = h.wait_event("approve", timeout=10)
    h.turn(1)
    h.raise_event("approve")
    work = h.schedule("work")
    h.turn(10)
    h.fire(wait)  # durahub still fires the timer; the SDK ignores it
    h.turn(11)
    h.done(work)
    h.complete_run()
    g = graph(h.events)
    assert edges(g) == {("start", f"event-{wait}"), (f"event-{wait}", f"activity-{work}"),
                        (f"activity-{work}", "end")}
    assert node(g, f"event-{wait}").status == "received"


def test_an_event_nobody_awaited_yet_is_a_cause_of_the_next_step() -> None:
    h = History().start()
    work = h.schedule("work")
    h.turn(1)
    h.raise_event("early")
    h.turn(2)
    h.done(work)
    h.complete_run()
    g = graph(h.events)
    early = next(n for n in g.nodes if n.kind == "event")
    assert early.label == "early" and early.status == "received" and early.event_id == -1
    assert (early.id, "end") in edges(g) and (f"activity-{work}", "end") in edges(g)
    assert late(g) == set()


def test_sent_events_timers_and_a_running_run_without_end() -> None:
    h = History().start()
    sent = h.send("other", "ping")
    t = h.timer(5)
    g = graph(h.events)
    assert [n.id for n in g.nodes] == ["start", f"send-{sent}", f"timer-{t}"]
    assert node(g, f"send-{sent}").instance_id == "other" and node(g, f"send-{sent}").status == "sent"
    assert node(g, f"timer-{t}").status == "pending" and g.status == "RUNNING"


def test_continue_as_new_and_termination_end_nodes() -> None:
    h = History().start()
    h.complete_run(pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW)
    assert graph(h.events).nodes[-1].label == "continued as new"

    h = History().start()
    work = h.schedule("work")
    h.turn(1)
    h.terminate()
    h.complete_run(pb.ORCHESTRATION_STATUS_TERMINATED)
    g = graph(h.events)
    assert node(g, "end").status == "terminated" and node(g, f"activity-{work}").status == "abandoned"


def test_events_carried_over_by_continue_as_new_arrive_with_the_start() -> None:
    h = History().start('{"n": 2}')
    h.raise_event("carried")
    work = h.schedule("work")
    g = graph(h.events)
    carried = next(n for n in g.nodes if n.kind == "event")
    assert edges(g) == {("start", f"activity-{work}"), (carried.id, f"activity-{work}")}


def test_empty_history_is_a_lone_start() -> None:
    g = graph([])
    assert [n.id for n in g.nodes] == ["start"] and g.edges == [] and g.status == "PENDING"
