"""Views of workflow runs computed from history and instance rows, shared by the HTTP API, the CLI and tracing:
what a run waits on now (`summary`), its waterfall (`timeline`), its derived execution graph (`graph`, with
`to_mermaid`, `to_dot`, `to_svg`), the tree of its children (`tree`), the map of many runs of one workflow
(`workflow_map`) and counts by status or name (`status_counts`). Pure: no I/O, no clock (pass `now_us`).

Times are integer microseconds since the Unix epoch, durations integer microseconds; a timer that never fires
(the SDK's indefinite wait) has no fire time (None).
"""

from durahub.core.views.execution import Execution, Step, read_execution
from durahub.core.views.graph import Edge, Graph, Node, build_graph, graph
from durahub.core.views.instances import Stats, TreeNode, status_counts, tree
from durahub.core.views.render import to_dot, to_mermaid
from durahub.core.views.summary import Summary, summarize, summary
from durahub.core.views.svg import EdgeShape, GraphLayout, NodeShape, layout, to_svg
from durahub.core.views.timeline import Timeline, build_timeline, timeline
from durahub.core.views.workflow_map import WorkflowMap, workflow_map

__all__ = [
    "Edge", "EdgeShape", "Execution", "Graph", "GraphLayout", "Node", "NodeShape", "Stats", "Step", "Summary", "Timeline", "TreeNode", "WorkflowMap",
    "build_graph", "build_timeline", "graph", "layout", "read_execution", "status_counts", "summarize", "summary",
    "timeline", "to_dot", "to_mermaid", "to_svg", "tree", "workflow_map",
]
