"""A derived graph drawn as standalone SVG by a small layered layout of our own (no Graphviz, no script).

Layout: edges that close a cycle (a workflow map can loop) are set aside; every node sits one layer below its
lowest predecessor (longest path), a node nobody leads to sits just above its first successor, the run's end
sits at the bottom; within a layer nodes are ordered by the mean position of their predecessors. Text is XML-
escaped and stripped of characters XML forbids, so any name comes out as text.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from html import escape

from durahub.core.views.graph import Edge, Graph, Node
from durahub.core.views.render import COLOURS, DEFAULT_COLOURS, clean, node_lines

NODE_HEIGHT = 44
LAYER_GAP = 46
NODE_GAP = 24
MARGIN = 20
CHAR_WIDTH = 7  # at the 12px sans-serif text below, generous for most glyphs
MIN_WIDTH = 96
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""


@dataclass
class Box:
    node: Node
    layer: int
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


def _text(value: str) -> str:
    return escape(clean(value, 400), quote=True)


def _split_back_edges(graph: Graph) -> tuple[list[Edge], list[Edge]]:
    """(forward, back): a depth-first walk in node order; an edge into a node still on the walk closes a cycle."""
    known = {n.id for n in graph.nodes}
    edges = [e for e in graph.edges if e.source in known and e.target in known]
    succ: dict[str, list[Edge]] = defaultdict(list)
    for e in edges:
        succ[e.source].append(e)
    state: dict[str, int] = {}  # 1: on the walk, 2: done
    back: set[int] = set()
    for root in graph.nodes:
        if root.id in state:
            continue
        stack = [(root.id, iter(succ[root.id]))]
        state[root.id] = 1
        while stack:
            node_id, pending = stack[-1]
            step = next(pending, None)
            if step is None:
                state[node_id] = 2
                stack.pop()
            elif state.get(step.target) == 1:
                back.add(id(step))
            elif step.target not in state:
                state[step.target] = 1
                stack.append((step.target, iter(succ[step.target])))
    forward = [e for e in edges if id(e) not in back and e.source != e.target]
    return forward, [e for e in edges if id(e) in back or e.source == e.target]


def _layers(graph: Graph, forward: list[Edge]) -> dict[str, int]:
    preds: dict[str, list[str]] = defaultdict(list)
    succs: dict[str, list[str]] = defaultdict(list)
    for edge in forward:
        preds[edge.target].append(edge.source)
        succs[edge.source].append(edge.target)
    # Kahn's order over the forward edges, ties broken by node order (which follows the history).
    remaining = {n.id: len(preds[n.id]) for n in graph.nodes}
    order: list[str] = []
    ready = [n.id for n in graph.nodes if remaining[n.id] == 0]
    position = {n.id: i for i, n in enumerate(graph.nodes)}
    while ready:
        ready.sort(key=position.__getitem__)
        current = ready.pop(0)
        order.append(current)
        for target in succs[current]:
            remaining[target] -= 1
            if remaining[target] == 0:
                ready.append(target)
    layer: dict[str, int] = {}
    for node_id in order:
        layer[node_id] = max((layer[p] + 1 for p in preds[node_id]), default=0)
    for node_id in reversed(order):  # sources other than the first node: just above their first successor
        if not preds[node_id] and succs[node_id] and position[node_id] != 0:
            layer[node_id] = max(0, min(layer[s] for s in succs[node_id]) - 1)
    ends = [n.id for n in graph.nodes if n.kind == "end" and not succs[n.id]]
    if ends:
        bottom = max((layer[n.id] for n in graph.nodes if n.kind != "end"), default=-1) + 1
        for node_id in ends:
            layer[node_id] = max(layer[node_id], bottom)
    return layer


def _place(graph: Graph, forward: list[Edge]) -> tuple[dict[str, Box], float, float]:
    layer = _layers(graph, forward)
    boxes = {n.id: Box(n, layer[n.id]) for n in graph.nodes}
    for box in boxes.values():
        title, detail = node_lines(box.node)
        box.width = max(MIN_WIDTH, CHAR_WIDTH * max(len(title), len(detail)) + 24)
    rows: dict[int, list[Box]] = defaultdict(list)
    for node in graph.nodes:
        rows[layer[node.id]].append(boxes[node.id])
    preds: dict[str, list[str]] = defaultdict(list)
    for edge in forward:
        preds[edge.target].append(edge.source)
    slot: dict[str, float] = {}
    for depth in sorted(rows):  # barycentre ordering, top down
        row = rows[depth]
        for i, box in enumerate(row):
            anchors = [slot[p] for p in preds[box.node.id] if p in slot]
            slot[box.node.id] = sum(anchors) / len(anchors) if anchors else float(i)
        row.sort(key=lambda b: slot[b.node.id])
        for i, box in enumerate(row):
            slot[box.node.id] = float(i)
    widths = {d: sum(b.width for b in row) + NODE_GAP * (len(row) - 1) for d, row in rows.items()}
    total_width = max(widths.values(), default=0.0) + 2 * MARGIN
    for depth, row in rows.items():
        x = MARGIN + (total_width - 2 * MARGIN - widths[depth]) / 2
        for box in row:
            box.x, box.y = x, MARGIN + depth * (NODE_HEIGHT + LAYER_GAP)
            x += box.width + NODE_GAP
    height = MARGIN * 2 + (max(rows, default=0) + 1) * (NODE_HEIGHT + LAYER_GAP) - LAYER_GAP
    return boxes, total_width, height


@dataclass
class NodeShape:
    """A node as drawn: its box, colours and two lines of text (plain text: a renderer must not parse it)."""

    id: str
    kind: str
    x: float
    y: float
    width: float
    height: float
    rx: float
    fill: str
    stroke: str
    dashed: bool
    title: str  # first line
    detail: str  # second line
    tip: str  # the hover text


@dataclass
class EdgeShape:
    source: str
    target: str
    d: str  # the SVG path
    late: bool  # drawn dashed
    title: str  # hover text ("" for none)
    label: str  # text at (label_x, label_y), "" for none
    label_x: float
    label_y: float


@dataclass
class GraphLayout:
    """Where everything of a graph goes, for a client that draws it itself (the dashboard builds its SVG from
    this with text nodes, rather than parsing SVG text)."""

    width: float
    height: float
    nodes: list[NodeShape]
    edges: list[EdgeShape]


def _edge(edge: Edge, boxes: dict[str, Box], backward: bool) -> EdgeShape:
    a, b = boxes[edge.source], boxes[edge.target]
    if backward:  # around the right of both nodes, back up
        x1, y1 = a.x + a.width, a.y + NODE_HEIGHT / 2
        x2, y2 = b.x + b.width, b.y + NODE_HEIGHT / 2
        bend = max(x1, x2) + 40
        path = f"M{x1:.1f},{y1:.1f} C{bend:.1f},{y1:.1f} {bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        mid_x, mid_y = bend - 10, (y1 + y2) / 2
    else:
        x1, y1 = a.centre, a.y + NODE_HEIGHT
        x2, y2 = b.centre, b.y
        bend = (y2 - y1) / 2
        path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{y1 + bend:.1f} {x2:.1f},{y2 - bend:.1f} {x2:.1f},{y2:.1f}"
        mid_x, mid_y = (x1 + x2) / 2, (y1 + y2) / 2
    title = "completed after the step it leads to began" if edge.late else ""
    return EdgeShape(source=edge.source, target=edge.target, d=path, late=edge.late, title=title,
                     label=clean(edge.label, 400) if edge.label else "", label_x=round(mid_x + 4, 1),
                     label_y=round(mid_y, 1))


def _node(box: Box) -> NodeShape:
    node = box.node
    fill, stroke = COLOURS.get(node.status, DEFAULT_COLOURS)
    title, detail = node_lines(node)
    tip = [f"{node.kind}: {node.label}", f"status: {node.status}"]
    if node.failure:
        tip.append(node.failure)
    if node.instance_id:
        tip.append(f"instance: {node.instance_id}")
    return NodeShape(id=node.id, kind=node.kind, x=round(box.x, 1), y=round(box.y, 1), width=round(box.width, 1),
                     height=NODE_HEIGHT, rx=NODE_HEIGHT / 2 if node.kind in ("start", "end") else 6, fill=fill,
                     stroke=stroke, dashed=node.kind in ("timer", "event"), title=title, detail=detail,
                     tip=clean(" | ".join(tip), 400))


def layout(graph: Graph) -> GraphLayout:
    """The graph laid out: node boxes and edge paths, in drawing order (edges first, then nodes)."""
    forward, back = _split_back_edges(graph)
    boxes, width, height = _place(graph, forward)
    if back:
        width += 60  # room for the edges that loop back around the right
    edges = [_edge(e, boxes, backward=False) for e in forward] + [_edge(e, boxes, backward=True) for e in back]
    return GraphLayout(width=round(width), height=round(height), nodes=[_node(b) for b in boxes.values()],
                       edges=edges)


def _edge_svg(edge: EdgeShape) -> list[str]:
    dash = ' stroke-dasharray="5 4"' if edge.late else ""
    out = [f'<path d="{edge.d}" fill="none" stroke="#6b7280" stroke-width="1.4"{dash} marker-end="url(#arrow)">'
           + (f"<title>{_text(edge.title)}</title>" if edge.title else "") + "</path>"]
    if edge.label:
        out.append(f'<text x="{edge.label_x:.1f}" y="{edge.label_y:.1f}" font-size="10" fill="#374151" {FONT}>'
                   f"{_text(edge.label)}</text>")
    return out


def _node_svg(shape: NodeShape) -> list[str]:
    dash = ' stroke-dasharray="4 3"' if shape.dashed else ""
    centre = shape.x + shape.width / 2
    return [
        f'<g data-node="{_text(shape.id)}">',
        f"<title>{_text(shape.tip)}</title>",
        f'<rect x="{shape.x:.1f}" y="{shape.y:.1f}" width="{shape.width:.1f}" height="{shape.height}"'
        f' rx="{shape.rx:.0f}" fill="{shape.fill}" stroke="{shape.stroke}" stroke-width="1.5"{dash}/>',
        f'<text x="{centre:.1f}" y="{shape.y + 18:.1f}" text-anchor="middle" font-size="12" font-weight="600"'
        f' fill="#111827" {FONT}>{_text(shape.title)}</text>',
        f'<text x="{centre:.1f}" y="{shape.y + 34:.1f}" text-anchor="middle" font-size="10.5" fill="#374151"'
        f" {FONT}>{_text(shape.detail)}</text>",
        "</g>",
    ]


def to_svg(graph: Graph) -> str:
    drawn = layout(graph)
    width, height = drawn.width, drawn.height
    caption = graph.workflow_name or "workflow"
    description = ("merged graph of runs" if not graph.instance_id
                   else "observed causal order of this run; branches not taken are absent")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}"'
        f' viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{_text(caption)}">',
        f"<title>{_text(caption)}</title>",
        f"<desc>{_text(description)}</desc>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        ' orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>',
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    for edge in drawn.edges:
        parts += _edge_svg(edge)
    for node in drawn.nodes:
        parts += _node_svg(node)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
