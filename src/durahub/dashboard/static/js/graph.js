// The derived graph as the server draws it (GET /graph?format=svg, laid out in Python), imported element by
// element through an allow-list: only drawing elements and presentation attributes are copied, so nothing in
// it can run or fetch; every text stays text. Nodes become keyboard-reachable buttons.

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

/** Make the nodes selectable: `onPick(nodeId)` on click, Enter or Space. */
export function wireNodes(svg, onPick) {
  for (const g of svg.querySelectorAll("g[data-node]")) {
    g.setAttribute("tabindex", "0");
    g.setAttribute("role", "button");
    const title = g.querySelector("title");
    if (title) g.setAttribute("aria-label", title.textContent);
    const pick = () => {
      for (const other of svg.querySelectorAll("g.selected")) other.classList.remove("selected");
      g.classList.add("selected");
      onPick(g.getAttribute("data-node"));
    };
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
  }
}
