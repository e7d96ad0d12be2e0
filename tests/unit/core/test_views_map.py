"""The workflow map: derived graphs of several runs merged by step name, with edge counts and shares,
per-step counts, p50/p95 durations and failure rates."""

from __future__ import annotations

import pytest
from views_histories import History

from durahub.core.views import Graph, graph, workflow_map
from durahub.core.views.workflow_map import percentile
from durahub.protos import pb


def order_run(approved: bool, charge_seconds: float, charge_fails: bool = False) -> Graph:
    h = History("order").start()
    check = h.schedule("check")
    h.turn(1)
    h.done(check)
    if approved:
        charge = h.schedule("charge")
        h.turn(1 + charge_seconds)
        if charge_fails:
            h.fail(charge, "declined")
            h.complete_run(pb.ORCHESTRATION_STATUS_FAILED, "declined")
        else:
            h.done(charge)
            h.complete_run()
    else:
        reject = h.schedule("reject")
        h.turn(2)
        h.done(reject)
        h.complete_run()
    return graph(h.events)


def test_branches_counts_durations_and_failures() -> None:
    runs = [order_run(True, 1), order_run(True, 2), order_run(True, 3, charge_fails=True), order_run(False, 0)]
    m = workflow_map(runs)
    assert m.workflow_name == "order" and m.runs == 4
    nodes = {n.id: n for n in m.nodes}
    assert set(nodes) == {"start", "activity:check", "activity:charge", "activity:reject", "end:completed",
                          "end:failed"}
    charge = nodes["activity:charge"]
    assert (charge.count, charge.runs) == (3, 3)
    assert (charge.p50_us, charge.p95_us) == (2_000_000, 3_000_000)
    assert charge.failure_rate == pytest.approx(1 / 3)
    assert nodes["activity:check"].failure_rate == 0 and nodes["start"].label == "order"
    edges = {(e.source, e.target): e for e in m.edges}
    assert edges[("activity:check", "activity:charge")].count == 3
    assert edges[("activity:check", "activity:charge")].share == pytest.approx(0.75)
    assert edges[("activity:check", "activity:reject")].share == pytest.approx(0.25)
    assert edges[("activity:charge", "end:failed")].runs == 1
    drawn = m.as_graph()
    assert {n.id for n in drawn.nodes} == set(nodes)
    assert next(e for e in drawn.edges if e.target == "activity:charge").label == "3 (75%)"
    assert next(n for n in drawn.nodes if n.id == "activity:charge").status == "degraded"


def test_no_runs_is_an_empty_map() -> None:
    m = workflow_map([], "nothing")
    assert (m.workflow_name, m.runs, m.nodes, m.edges) == ("nothing", 0, [], [])


def test_nearest_rank_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5], 0.95) == 5
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile(list(range(1, 101)), 0.5) == 50
    assert percentile([1, 2, 3, 4], 0.5) == 2
