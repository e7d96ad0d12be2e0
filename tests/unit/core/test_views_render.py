"""Mermaid, DOT and SVG renderings of derived graphs: structure, late edges dashed, and every label escaped
(a name such as <img src=x onerror=alert(1)> comes out as text, never as markup)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from views_histories import History

from durahub.core.views import Graph, graph, to_dot, to_mermaid, to_svg, workflow_map
from durahub.protos import pb

HOSTILE = "<img src=x onerror=alert(1)>"
SVG_NS = "{http://www.w3.org/2000/svg}"
SVG_TAGS = {"svg", "title", "desc", "defs", "marker", "path", "rect", "g", "text"}


def hostile_graph() -> Graph:
    h = History(HOSTILE).start()
    a = h.schedule('say "hi" \\N\n</text><script>alert(2)</script>')
    b = h.schedule("ctl\x00\x07chars]\"])--> x")
    h.turn(1)
    h.done(a)
    h.turn(2)
    h.done(b)
    h.complete_run(pb.ORCHESTRATION_STATUS_FAILED, "</title><script>alert(3)</script>")
    return graph(h.events)


def when_any_graph() -> Graph:
    h = History("race").start()
    fast, slow = h.schedule("fast"), h.schedule("slow")
    h.turn(1)
    h.done(fast)
    t = h.timer(5)
    h.turn(2)
    h.done(slow)
    h.turn(6)
    h.fire(t)
    h.complete_run()
    return graph(h.events)


def all_text(root: ET.Element) -> str:
    return "\n".join(e.text or "" for e in root.iter())


def test_svg_is_well_formed_and_names_stay_text() -> None:
    svg = to_svg(hostile_graph())
    root = ET.fromstring(svg)  # raises on anything not well-formed XML (control characters included)
    assert {e.tag.removeprefix(SVG_NS) for e in root.iter()} <= SVG_TAGS
    assert "<img" not in svg and "<script" not in svg
    text = all_text(root)
    assert HOSTILE in text and "alert(3)" in text  # the failure message is in a tooltip, as text
    assert len(root.findall(f"{SVG_NS}g")) == 4  # start, two activities, end


def test_svg_draws_late_edges_dashed() -> None:
    root = ET.fromstring(to_svg(when_any_graph()))
    paths = [p for p in root.iter(f"{SVG_NS}path") if p.get("marker-end")]
    assert len(paths) == 5
    assert len([p for p in paths if p.get("stroke-dasharray")]) == 1


def test_mermaid_escapes_labels_and_dashes_late_edges() -> None:
    text = to_mermaid(hostile_graph())
    assert text.startswith("flowchart TD\n")
    assert "<img" not in text and "<script" not in text and "</text>" not in text
    assert "#60;img src=x onerror=alert(1)#62;" in text
    for line in text.splitlines()[1:]:  # one node, edge or style per line; quotes only where we put them
        assert line.count('"') in (0, 2), line
    late = to_mermaid(when_any_graph())
    assert len(re.findall(r" -\.-> ", late)) == 1 and len(re.findall(r" --> ", late)) == 4


def test_dot_escapes_quotes_backslashes_and_markup() -> None:
    text = to_dot(hostile_graph())
    assert text.startswith("digraph workflow {") and text.rstrip().endswith("}")
    # Outside escaped quotes, every label string closes on the same line it opened.
    for line in text.splitlines():
        unescaped = re.sub(r'\\.', "", line)
        assert unescaped.count('"') % 2 == 0, line
    assert 'say \\"hi\\" \\\\N' in text and "\x00" not in text and "\x07" not in text
    assert "<img" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert to_dot(when_any_graph()).count("style=dashed") == 1


def test_a_map_with_a_loop_renders_in_every_format() -> None:
    runs = []
    for n in (1, 3):
        h = History("loop").start()
        previous = None
        for i in range(n):
            if previous is not None:
                h.turn(i)
                h.done(previous)
            previous = h.schedule("step")
        h.turn(n)
        assert previous is not None
        h.done(previous)
        h.complete_run()
        runs.append(graph(h.events))
    g = workflow_map(runs).as_graph()
    assert ("activity:step", "activity:step") in {(e.source, e.target) for e in g.edges}
    root = ET.fromstring(to_svg(g))
    assert "n=4" in all_text(root)
    assert "flowchart TD" in to_mermaid(g) and "->" in to_dot(g)
