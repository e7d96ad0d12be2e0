// Building the page from data, as text only: values go into text nodes and attributes, never through HTML
// parsing (no innerHTML), so a workflow input such as <img src=x onerror=...> shows as those characters.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "on") {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key.startsWith("on")) {
      throw new Error(`event handler attributes are not allowed: ${key}`);
    } else if (key === "value" || key === "checked") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href: "/x", class: "y"}, "text", otherNode). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return build(el, {}, children);
}

export function pill(status) {
  const text = String(status || "unknown");
  return h("span", { class: `pill ${text}`, title: `status: ${text}` }, text);
}

export function navLink(href, text, attrs = {}) {
  return h("a", { href, "data-nav": "", ...attrs }, text);
}

export function instanceHref(instanceId, appId) {
  const q = appId ? `?appID=${encodeURIComponent(appId)}` : "";
  return `/dashboard/instances/${encodeURIComponent(instanceId)}${q}`;
}

export function workflowHref(name, appId) {
  const q = appId ? `?appID=${encodeURIComponent(appId)}` : "";
  return `/dashboard/workflows/${encodeURIComponent(name)}${q}`;
}

// -- formatting ---------------------------------------------------------------------------------------

export function usToDate(us) {
  return us === null || us === undefined ? null : new Date(us / 1000);
}

/** Local time as text, with the ISO form on hover. */
export function time(value) {
  if (value === null || value === undefined || value === "") return h("span", { class: "muted" }, "-");
  const date = value instanceof Date ? value : typeof value === "number" ? usToDate(value) : new Date(value);
  return h("time", { datetime: date.toISOString(), title: date.toISOString() }, date.toLocaleString());
}

export function duration(us) {
  if (us === null || us === undefined) return "-";
  const neg = us < 0;
  let v = Math.abs(us);
  let out;
  if (v < 1000) out = `${Math.round(v)} µs`;
  else if (v < 1e6) out = `${Math.round(v / 1000)} ms`;
  else if (v < 120e6) out = `${(v / 1e6).toFixed(1)} s`;
  else if (v < 7200e6) out = `${Math.round(v / 60e6)} min`;
  else if (v < 172800e6) out = `${(v / 3600e6).toFixed(1)} h`;
  else out = `${(v / 86400e6).toFixed(1)} d`;
  return neg ? `-${out}` : out;
}

export function isoToUs(iso) {
  return iso ? Date.parse(iso) * 1000 : null;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export const TERMINAL = new Set(["COMPLETED", "FAILED", "TERMINATED"]);
export const STATUSES = ["RUNNING", "PENDING", "SUSPENDED", "STALLED", "COMPLETED", "FAILED", "TERMINATED"];
