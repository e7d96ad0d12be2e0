"""The derived execution graph of one run: which results the workflow had in hand when it began each step.

Walk the turns in order. The results a turn delivered join a set of unconsumed causes; when a turn begins
steps (or ends the run), every unconsumed cause gets an edge to every step it began, and the set is cleared.
The first turn's cause is the run's start. Keeping causes across turns that began nothing is what makes a
`when_all` fan-in come out right. A result that arrives in a turn that begins nothing, after the workflow
already went on without it (a `when_any` loser, a timeout that lost its race), is marked late: renderers draw
its edge dashed ("completed after its consumer"). Failed attempts that were retried are not results; all the
attempts of a step are one node.

This is the observed causal order of this run only: branches the code did not take are absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from durahub.core.views.execution import END, START, Delivery, Execution, Turn, read_execution
from durahub.protos import pb


@dataclass
class Node:
    id: str  # "start", "end", or a step key such as "activity-3"
    kind: str  # start, end, activity, timer, child, event, send
    label: str
    status: str
    start_us: int | None = None
    end_us: int | None = None
    duration_us: int | None = None
    failure: str | None = None
    attempts: int = 1
    event_id: int = -1  # a step's first scheduling event (rerun-from-event takes it)
    instance_id: str = ""  # a child's id, a sent event's target
    app_id: str = ""  # the app a step runs in or goes to, when the workflow named one
    note: str = ""  # a second line for renderers (a workflow map's statistics)


@dataclass
class Edge:
    source: str
    target: str
    late: bool = False  # the cause completed after the workflow went on without it: drawn dashed
    label: str = ""


@dataclass
class Graph:
    workflow_name: str
    instance_id: str
    status: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


_END_LABELS = {
    "completed": "completed", "failed": "failed", "terminated": "terminated",
    "continued_as_new": "continued as new", "canceled": "canceled",
}


def _nodes(execution: Execution) -> list[Node]:
    nodes = [Node(id=START, kind="start", label=execution.name or "start", status="started",
                  start_us=execution.start_us, end_us=execution.start_us)]
    for step in sorted(execution.steps, key=lambda s: s.order):
        nodes.append(Node(id=step.key, kind=step.kind, label=step.name, status=step.status, start_us=step.start_us,
                          end_us=step.end_us, duration_us=step.duration_us, failure=step.failure,
                          attempts=max(1, len(step.attempts)), event_id=step.event_id, instance_id=step.instance_id,
                          app_id=step.app_id))
    if execution.outcome is not None:
        start = execution.start_us
        end = execution.end_us
        nodes.append(Node(id=END, kind="end", label=_END_LABELS.get(execution.outcome, execution.outcome),
                          status=execution.outcome, start_us=end, end_us=end,
                          duration_us=None if start is None or end is None else end - start,
                          failure=execution.failure))
    return nodes


def _late(execution: Execution, turn: Turn, key: str, acted: list[int]) -> bool:
    """Delivered in a turn that began nothing, after a turn that began something while this step was open."""
    if turn.began or key == START:
        return False
    began_in = execution.step(key).turn
    return any(began_in < t < turn.index for t in acted)


def build_graph(execution: Execution) -> Graph:
    result = Graph(workflow_name=execution.name, instance_id=execution.instance_id, status=execution.status,
                   nodes=_nodes(execution))
    seen: set[tuple[str, str]] = set()
    causes: list[tuple[Delivery, bool]] = []
    acted: list[int] = []  # turns that began something
    for turn in execution.turns:
        causes += [(d, _late(execution, turn, d.key, acted)) for d in execution.results(turn)]
        if not turn.began:
            continue
        acted.append(turn.index)
        for cause, late in causes:
            for target in turn.began:
                # A result reaches what the workflow did after it (SDK histories put results first in a turn).
                if cause.index < execution.began_at(target) and (cause.key, target) not in seen:
                    seen.add((cause.key, target))
                    result.edges.append(Edge(cause.key, target, late))
        # Consumed, unless it came after everything this turn did (only a malformed history does that).
        causes = [(c, late) for c, late in causes if c.index > execution.began_at(turn.began[-1])]
    return result


def graph(history: list[pb.HistoryEvent]) -> Graph:
    """The derived execution DAG of one instance (see the module docstring)."""
    return build_graph(read_execution(history))
