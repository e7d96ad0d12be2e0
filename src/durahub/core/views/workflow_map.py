"""The map of one workflow: the derived graphs of many runs merged into one directly-follows graph keyed by
step (kind and name), so the branches real runs take show as edge counts and shares, and each step shows how
often it ran, how long it took (p50/p95) and how often it failed. It needs no source code."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from durahub.core.views.graph import Edge as GraphEdge
from durahub.core.views.graph import Graph, Node, graph
from durahub.core.views.render import duration_text
from durahub.protos import pb

ENDED_BADLY = frozenset({"failed", "timed_out", "terminated", "canceled"})
FINISHED = frozenset({"completed", "failed", "fired", "received", "timed_out", "sent", "terminated", "canceled",
                      "continued_as_new"})


@dataclass
class MapNode:
    id: str  # "start", "end:<outcome>", or "<kind>:<name>"
    kind: str
    label: str
    count: int  # how many times runs took this step
    runs: int  # in how many runs
    p50_us: int | None  # of the finished occurrences
    p95_us: int | None
    failure_rate: float | None  # failed / finished occurrences


@dataclass
class MapEdge:
    source: str
    target: str
    count: int
    runs: int
    share: float  # count / all edges leaving the source: which way runs go from here


@dataclass
class WorkflowMap:
    workflow_name: str
    runs: int
    nodes: list[MapNode] = field(default_factory=list)
    edges: list[MapEdge] = field(default_factory=list)

    def as_graph(self) -> Graph:
        """For the renderers: counts and durations as each node's note, counts and shares as edge labels."""
        nodes = [Node(id=n.id, kind=n.kind, label=n.label, status=_map_status(n), note=_note(n)) for n in self.nodes]
        edges = [GraphEdge(e.source, e.target, label=f"{e.count} ({e.share:.0%})") for e in self.edges]
        return Graph(workflow_name=self.workflow_name, instance_id="", status="", nodes=nodes, edges=edges)


def _map_status(node: MapNode) -> str:
    if node.failure_rate is None or node.failure_rate == 0:
        return "completed" if node.kind not in ("start", "end") else node.kind
    return "failed" if node.failure_rate >= 0.5 else "degraded"


def _note(node: MapNode) -> str:
    parts = [f"n={node.count}"]
    if node.p50_us is not None and node.p95_us is not None and node.kind not in ("start", "end"):
        parts.append(f"p50 {duration_text(node.p50_us)} p95 {duration_text(node.p95_us)}")
    if node.failure_rate and node.kind not in ("start", "end"):
        parts.append(f"{node.failure_rate:.0%} failed")
    return " · ".join(parts)


def percentile(values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-round(fraction * 100) * len(ordered) // 100))  # ceil(fraction * n) in integers
    return ordered[min(rank, len(ordered)) - 1]


def map_key(node: Node) -> str:
    if node.kind == "start":
        return "start"
    if node.kind == "end":
        return f"end:{node.status}"
    return f"{node.kind}:{node.label}"


@dataclass
class _Stats:
    node: Node
    count: int = 0
    runs: int = 0
    durations: list[int] = field(default_factory=list)
    failed: int = 0
    finished: int = 0


def workflow_map(runs: Iterable[Graph | list[pb.HistoryEvent]], workflow_name: str = "") -> WorkflowMap:
    """Merge the runs (of one workflow), given as derived graphs or as histories, into its map."""
    stats: dict[str, _Stats] = {}
    edge_counts: Counter[tuple[str, str]] = Counter()
    edge_runs: Counter[tuple[str, str]] = Counter()
    run_count = 0
    for run in runs:
        g = run if isinstance(run, Graph) else graph(run)
        run_count += 1
        workflow_name = workflow_name or g.workflow_name
        keys = {n.id: map_key(n) for n in g.nodes}
        for node in g.nodes:
            s = stats.setdefault(keys[node.id], _Stats(node))
            s.count += 1
            if node.status in FINISHED:
                s.finished += 1
                if node.duration_us is not None:
                    s.durations.append(node.duration_us)
            if node.status in ENDED_BADLY:
                s.failed += 1
        for key in set(keys.values()):
            stats[key].runs += 1
        pairs = [(keys[e.source], keys[e.target]) for e in g.edges]
        edge_counts.update(pairs)
        edge_runs.update(set(pairs))
    leaving: Counter[str] = Counter()
    for (source, _), count in edge_counts.items():
        leaving[source] += count
    result = WorkflowMap(workflow_name=workflow_name, runs=run_count)
    for key, s in stats.items():
        label = (workflow_name or "start") if s.node.kind == "start" else s.node.label
        result.nodes.append(MapNode(
            id=key, kind=s.node.kind, label=label,
            count=s.count, runs=s.runs, p50_us=percentile(s.durations, 0.5), p95_us=percentile(s.durations, 0.95),
            failure_rate=s.failed / s.finished if s.finished else None))
    for (source, target), count in edge_counts.items():
        result.edges.append(MapEdge(source, target, count, edge_runs[(source, target)], count / leaving[source]))
    return result
