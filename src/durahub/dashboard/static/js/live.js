// One server-sent-events stream for the whole page (GET /durahub/v1/stream), read with fetch so the API token
// can go in a header. Reconnects with Last-Event-ID; pauses while the tab is hidden; the "live" indicator in
// the header says which state it is in. Pages subscribe with onChange(fn): fn({type, data}).

import { headers, url } from "./api.js";

const listeners = new Set();
let lastEventId = "";
let controller = null;
let retryMs = 2000;
let indicator = null;

function show(state, text) {
  if (!indicator) return;
  indicator.className = `live ${state}`;
  indicator.textContent = text;
}

export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function dispatch(type, data) {
  for (const fn of [...listeners]) {
    try {
      fn({ type, data });
    } catch (err) {
      console.warn("live listener failed", err);
    }
  }
}

function handleBlock(block) {
  let type = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") type = value;
    else if (field === "data") data += (data ? "\n" : "") + value;
    else if (field === "id") lastEventId = value;
    else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
  }
  if (type === "ready") {
    show("on", "live");
    return;
  }
  if (!data && type !== "reset") return;
  dispatch(type, data ? JSON.parse(data) : {});
}

async function run(signal) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const response = await fetch(url("/stream"), { headers: headers(extra), signal, cache: "no-store" });
  if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    // Every complete block of this chunk, then the unfinished rest (one split, not a slice per block).
    const blocks = buffer.split("\n\n");
    buffer = blocks.pop();
    for (const block of blocks) handleBlock(block);
  }
}

async function loop() {
  while (controller && !controller.signal.aborted) {
    const mine = controller;
    try {
      await run(mine.signal);
    } catch (err) {
      if (mine.signal.aborted) return;
    }
    if (mine.signal.aborted) return;
    show("off", "reconnecting");
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}

function start() {
  if (controller) return;
  controller = new AbortController();
  show("", "connecting");
  loop();
}

function stop() {
  if (!controller) return;
  controller.abort();
  controller = null;
  show("off", "paused");
}

export function startLive(element) {
  indicator = element;
  document.addEventListener("visibilitychange", () => (document.hidden ? stop() : start()));
  window.addEventListener("pagehide", stop);
  if (!document.hidden) start();
}
