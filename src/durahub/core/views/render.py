"""A derived graph (or a workflow map's) as Mermaid and Graphviz DOT text.

Every label comes from user data (workflow, activity and event names, failure messages), so each format
escapes it fully: a name such as `<img src=x onerror=alert(1)>` must come out as text, never as markup.
"""

from __future__ import annotations

import re

from durahub.core.views.graph import Graph, Node

MAX_LABEL = 48
# Characters no XML document, DOT or Mermaid label may carry (XML 1.0 allows tab, newline and carriage return).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Fill and stroke per status: colour is never alone, the status is always written in the node too.
COLOURS: dict[str, tuple[str, str]] = {
    "completed": ("#dcfce7", "#15803d"),
    "fired": ("#dcfce7", "#15803d"),
    "received": ("#dcfce7", "#15803d"),
    "sent": ("#dcfce7", "#15803d"),
    "started": ("#e0e7ff", "#4338ca"),
    "start": ("#e0e7ff", "#4338ca"),
    "end": ("#e0e7ff", "#4338ca"),
    "continued_as_new": ("#e0e7ff", "#4338ca"),
    "pending": ("#dbeafe", "#1d4ed8"),
    "failed": ("#fee2e2", "#b91c1c"),
    "timed_out": ("#ffedd5", "#c2410c"),
    "degraded": ("#ffedd5", "#c2410c"),
    "terminated": ("#f3f4f6", "#374151"),
    "canceled": ("#f3f4f6", "#374151"),
    "abandoned": ("#f3f4f6", "#6b7280"),
}
DEFAULT_COLOURS = ("#f9fafb", "#374151")


def clean(text: str, limit: int = MAX_LABEL) -> str:
    """One line of at most `limit` characters, without control characters."""
    text = _CONTROL.sub("", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_text(us: int) -> str:
    if us < 1000:
        return f"{us} µs"
    if us < 1_000_000:
        return f"{us / 1000:.0f} ms"
    if us < 120_000_000:
        return f"{us / 1_000_000:.1f} s"
    if us < 7_200_000_000:
        return f"{us / 60_000_000:.1f} min"
    return f"{us / 3_600_000_000:.1f} h"


def node_lines(node: Node) -> tuple[str, str]:
    """The node's title and its detail line (kind, status, duration, attempts; or a map's statistics)."""
    title = clean(node.label or node.kind)
    if node.note:
        return title, clean(node.note, 2 * MAX_LABEL)
    parts = [node.kind] if node.kind not in ("start", "end") else []
    parts.append(node.status.replace("_", " "))
    if node.duration_us is not None and node.kind != "send":
        parts.append(duration_text(node.duration_us))
    if node.attempts > 1:
        parts.append(f"{node.attempts} attempts")
    return title, " · ".join(parts)


def render_ids(graph: Graph) -> dict[str, str]:
    """Node ids safe in every format (step keys carry '-' and '@')."""
    return {node.id: f"n{i}" for i, node in enumerate(graph.nodes)}


# Mermaid: quoted labels with every character outside a small safe set written as an entity code (#60;).
_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 .,:_+=/()!?'-]")
_MERMAID_SHAPES = {
    "start": ('(["', '"])'), "end": ('(["', '"])'), "activity": ('["', '"]'), "timer": ('{{"', '"}}'),
    "event": ('>"', '"]'), "child": ('[["', '"]]'), "send": ('>"', '"]'),
}


def _mermaid_text(text: str) -> str:
    return "".join(c if _MERMAID_SAFE.fullmatch(c) else f"#{ord(c)};" for c in text)


def to_mermaid(graph: Graph) -> str:
    ids = render_ids(graph)
    lines = ["flowchart TD"]
    for node in graph.nodes:
        title, detail = node_lines(node)
        left, right = _MERMAID_SHAPES.get(node.kind, ('["', '"]'))
        lines.append(f"    {ids[node.id]}{left}{_mermaid_text(title)}<br/>{_mermaid_text(detail)}{right}")
    for edge in graph.edges:
        if edge.source not in ids or edge.target not in ids:
            continue
        arrow = "-.->" if edge.late else "-->"
        label = f'|"{_mermaid_text(clean(edge.label))}"|' if edge.label else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    used = sorted({n.status for n in graph.nodes})
    for status in used:
        fill, stroke = COLOURS.get(status, DEFAULT_COLOURS)
        lines.append(f"    classDef s_{_css_name(status)} fill:{fill},stroke:{stroke},color:#111827")
    for node in graph.nodes:
        lines.append(f"    class {ids[node.id]} s_{_css_name(node.status)}")
    return "\n".join(lines) + "\n"


def _css_name(status: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", status) or "none"


def _dot_text(text: str) -> str:
    # In a quoted DOT string backslash and quote are special (\N, \G, \l... are label escapes), and Graphviz
    # decodes HTML entities in labels: so `&` must be one, and `<`, `>` become ones too, so that a consumer
    # that pastes labels into markup still gets text.
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace('"', '\\"')


_DOT_SHAPES = {"start": "oval", "end": "oval", "timer": "hexagon", "event": "cds", "child": "box3d", "send": "cds"}


def to_dot(graph: Graph) -> str:
    ids = render_ids(graph)
    lines = [
        "digraph workflow {",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in graph.nodes:
        title, detail = node_lines(node)
        fill, stroke = COLOURS.get(node.status, DEFAULT_COLOURS)
        shape = _DOT_SHAPES.get(node.kind, "box")
        tooltip = f', tooltip="{_dot_text(clean(node.failure, 400))}"' if node.failure else ""
        lines.append(f'    {ids[node.id]} [label="{_dot_text(title)}\\n{_dot_text(detail)}", shape={shape},'
                     f' fillcolor="{fill}", color="{stroke}"{tooltip}];')
    for edge in graph.edges:
        if edge.source not in ids or edge.target not in ids:
            continue
        attrs = []
        if edge.late:
            attrs.append("style=dashed")
        if edge.label:
            attrs.append(f'label="{_dot_text(clean(edge.label))}"')
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"    {ids[edge.source]} -> {ids[edge.target]}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"
