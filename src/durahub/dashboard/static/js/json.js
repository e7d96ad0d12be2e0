// Viewers for payloads (input, output, custom status, failures): pretty JSON as text, collapsible, with its
// size, copy and download.

import { bytes, h } from "./dom.js";

export function pretty(text) {
  if (text === null || text === undefined) return "";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return String(text);
  }
}

function download(name, text) {
  const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: "application/json" })), download: name });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

/** A collapsible payload; `key` names it for keeping it open across live updates. */
export function payload(label, text, key, fileName) {
  if (text === null || text === undefined) {
    return h("div", { class: "payload" }, h("strong", {}, label), " ", h("span", { class: "muted" }, "none"));
  }
  const size = new TextEncoder().encode(text).length;
  return h("details", { class: "payload", open: true, dataset: { key } },
    h("summary", {}, h("strong", {}, label), " ", h("span", { class: "muted" }, bytes(size)), " ",
      h("button", { type: "button", on: { click: (e) => { e.preventDefault(); navigator.clipboard?.writeText(text).catch(() => {}); } } }, "Copy"),
      " ",
      h("button", { type: "button", on: { click: (e) => { e.preventDefault(); download(fileName || `${key}.json`, text); } } }, "Download")),
    h("pre", { class: "json", "data-testid": key }, pretty(text)));
}

export function failureView(failure, key = "failure") {
  if (!failure) return null;
  return h("details", { class: "payload", open: true, dataset: { key } },
    h("summary", {}, h("strong", { class: "err" }, "Failure"), " ", failure.error_type),
    h("pre", { class: "json", "data-testid": key }, failure.error_message),
    failure.stack_trace ? h("pre", { class: "json" }, failure.stack_trace) : null);
}
