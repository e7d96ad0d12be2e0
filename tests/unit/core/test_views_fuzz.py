"""Every view over arbitrary histories (any order, unknown ids, duplicates, names with markup and control
characters): no exception, graphs stay acyclic, drawings stay well-formed XML with names as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from views_histories import T0, History

from durahub.core.views import graph, summary, timeline, to_dot, to_mermaid, to_svg, workflow_map
from durahub.protos import pb

NAMES = st.sampled_from(["a", "b", "<img src=x onerror=alert(1)>", 'q"u\\o', "\x00ctl\x1f", "é✓", ""])
IDS = st.integers(min_value=0, max_value=8)
STEPS = st.one_of(
    st.tuples(st.just("turn"), st.floats(min_value=0, max_value=1e6)),
    st.tuples(st.just("schedule"), NAMES),
    st.tuples(st.just("retry"), NAMES, IDS),
    st.tuples(st.just("done"), IDS),
    st.tuples(st.just("fail"), IDS),
    st.tuples(st.just("timer"), st.floats(min_value=0, max_value=1e5)),
    st.tuples(st.just("retry_timer"), IDS),
    st.tuples(st.just("wait_event"), NAMES, st.one_of(st.none(), st.floats(min_value=0, max_value=100))),
    st.tuples(st.just("fire"), IDS),
    st.tuples(st.just("raise_event"), NAMES),
    st.tuples(st.just("child"), NAMES),
    st.tuples(st.just("child_done"), IDS),
    st.tuples(st.just("child_failed"), IDS),
    st.tuples(st.just("send"), NAMES),
    st.tuples(st.just("suspend")),
    st.tuples(st.just("resume")),
    st.tuples(st.just("complete_run"), st.sampled_from([pb.ORCHESTRATION_STATUS_COMPLETED,
                                                        pb.ORCHESTRATION_STATUS_FAILED,
                                                        pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW])),
    st.tuples(st.just("stall")),
)


def build(name: str, steps: list[tuple[object, ...]]) -> History:
    h = History(name).start()
    for step in steps:
        kind, *args = step
        if kind == "retry":
            if args[1] in h.executions:
                h.retry(str(args[0]), int(args[1]))  # type: ignore[call-overload]
        elif kind == "retry_timer":
            if args[0] in h.executions:
                h.retry_timer(int(args[0]), 1)  # type: ignore[call-overload]
        elif kind == "stall":
            h.stall(pb.PATCH_MISMATCH, "patches differ")
        elif kind == "send":
            h.send("other", str(args[0]))
        else:
            getattr(h, str(kind))(*args)
    return h


@given(NAMES, st.lists(STEPS, max_size=30))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_views_never_fail_and_drawings_stay_well_formed(name: str, steps: list[tuple[object, ...]]) -> None:
    events = build(name, steps).events
    g = graph(events)
    ids = [n.id for n in g.nodes]
    assert len(ids) == len(set(ids))
    position = {node_id: i for i, node_id in enumerate(ids)}
    assert all(position[e.source] < position[e.target] for e in g.edges)  # causes precede what they caused
    root = ET.fromstring(to_svg(g))
    assert "<img" not in to_svg(g) and "<img" not in to_mermaid(g) and "<img" not in to_dot(g)
    assert root.tag.endswith("svg")
    summary(events, T0)
    timeline(events, now_us=T0)
    m = workflow_map([g, events])
    assert m.runs == 2
    ET.fromstring(to_svg(m.as_graph()))
