// The derived graph, two ways: drawn here from the layout the server computed (GET /overview's `layout`: boxes
// and paths as numbers and plain strings, every text put in a text node), or, for the workflow map, the SVG text
// the server draws imported element by element through an allow-list: only drawing elements and presentation
// attributes are copied, so nothing in it can run or fetch. Either way nodes are keyboard-reachable buttons.

import { s } from "./dom.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const ELEMENTS = new Set(["svg", "g", "rect", "path", "text", "tspan", "title", "desc", "defs", "marker", "line",
                          "circle", "ellipse", "polygon", "polyline"]);
const ATTRIBUTES = new Set(["x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "r", "rx", "ry", "d", "width", "height",
  "viewBox", "fill", "stroke", "stroke-width", "stroke-dasharray", "marker-end", "marker-start", "transform",
  "text-anchor", "font-size", "font-weight", "font-family", "refX", "refY", "markerWidth", "markerHeight", "orient",
  "points", "data-node", "role", "aria-label", "id", "opacity"]);

function copy(node) {
  if (node.nodeType === Node.TEXT_NODE) return document.createTextNode(node.nodeValue);
  if (node.nodeType !== Node.ELEMENT_NODE || !ELEMENTS.has(node.localName)) return null;
  const out = document.createElementNS(SVG_NS, node.localName);
  for (const attr of node.attributes) {
    const value = attr.value;
    if (!ATTRIBUTES.has(attr.name)) continue;
    if (/url\(/.test(value) && !/^url\(#[A-Za-z0-9_-]+\)$/.test(value)) continue; // local markers only
    out.setAttribute(attr.name, value);
  }
  for (const child of node.childNodes) {
    const c = copy(child);
    if (c) out.append(c);
  }
  return out;
}

/** The SVG text as a safe element, or null if it does not parse. */
export function importSvg(text) {
  const doc = new DOMParser().parseFromString(text, "image/svg+xml");
  const root = doc.documentElement;
  if (!root || root.localName !== "svg" || doc.getElementsByTagName("parsererror").length) return null;
  return copy(root);
}

const FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif";

const ARROW = 9.8; // the SVG drawing's marker: 7 units of stroke width 1.4
const STROKE = "#6b7280";

/** A filled arrowhead at the end of an edge's path "M x,y C x,y x,y x,y", along its last control segment. */
function arrowHead(d) {
  const n = d.split(/[\s,MC]+/).filter(Boolean).map(Number);
  const [cx, cy, x, y] = n.slice(-4);
  const len = Math.hypot(x - cx, y - cy) || 1;
  const [ux, uy] = [(x - cx) / len, (y - cy) / len];
  const [bx, by] = [x - ux * ARROW, y - uy * ARROW];
  const w = ARROW / 2;
  return `M${x},${y}L${bx - uy * w},${by + ux * w}L${bx + uy * w},${by - ux * w}Z`;
}

/** The graph as an <svg> built from its layout (numbers and plain text only). Edges without a hover text are
 * drawn as one path (and their arrowheads as one more): a big fan-out/fan-in graph has thousands. */
export function drawGraph(layout, caption) {
  const { width, height } = layout;
  const plain = [];
  const heads = [];
  const special = s("g", { fill: "none", stroke: STROKE, "stroke-width": 1.4 });
  const labels = s("g", { "font-size": 10, fill: "#374151" });
  for (const e of layout.edges) {
    heads.push(arrowHead(e.d));
    if (e.late || e.title) {
      special.append(s("path", { d: e.d, "stroke-dasharray": e.late ? "5 4" : null }, e.title ? s("title", {}, e.title) : null));
    } else {
      plain.push(e.d);
    }
    if (e.label) labels.append(s("text", { x: e.label_x, y: e.label_y }, e.label));
  }
  const edges = s("g", { "data-testid": "graph-edges", "data-count": String(layout.edges.length) },
    plain.length ? s("path", { d: plain.join(""), fill: "none", stroke: STROKE, "stroke-width": 1.4 }) : null,
    special, heads.length ? s("path", { d: heads.join(""), fill: STROKE }) : null);
  const nodes = s("g", { "stroke-width": 1.5, "text-anchor": "middle" });
  for (const n of layout.nodes) {
    const cx = n.x + n.width / 2;
    nodes.append(s("g", { "data-node": n.id, tabindex: "0", role: "button", "aria-label": n.tip },
      s("title", {}, n.tip),
      s("rect", { x: n.x, y: n.y, width: n.width, height: n.height, rx: n.rx, fill: n.fill, stroke: n.stroke,
                  "stroke-dasharray": n.dashed ? "4 3" : null }),
      s("text", { x: cx, y: n.y + 18, "font-size": 12, "font-weight": 600, fill: "#111827" }, n.title),
      s("text", { x: cx, y: n.y + 34, "font-size": 10.5, fill: "#374151" }, n.detail)));
  }
  return s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": caption, "font-family": FONT },
    s("rect", { width, height, fill: "#ffffff" }), edges, labels, nodes);
}

/** Make the nodes selectable: `onPick(nodeId)` on click, Enter or Space (one listener for all the nodes). */
export function wireNodes(svg, onPick) {
  for (const g of svg.querySelectorAll("g[data-node]:not([role])")) {
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    const title = g.querySelector("title");
    if (title) g.setAttribute("aria-label", title.textContent);
  }
  const pick = (g) => {
    for (const other of svg.querySelectorAll("g.selected")) other.classList.remove("selected");
    g.classList.add("selected");
    onPick(g.getAttribute("data-node"));
  };
  svg.addEventListener("click", (e) => {
    const g = e.target.closest("g[data-node]");
    if (g) pick(g);
  });
  svg.addEventListener("keydown", (e) => {
    const g = e.target.closest("g[data-node]");
    if (g && (e.key === "Enter" || e.key === " ")) {
      e.preventDefault();
      pick(g);
    }
  });
}
