// The run's waterfall as SVG: one row per activity, timer, event and child from /timeline; retries as segments
// of one bar, turn markers, idle gaps longer than the threshold compressed to a fixed width with their length.

import { duration, s } from "./dom.js";

const ROW = 20;
const LABEL = 260;
const GAP_PX = 34;
const TOP = 24;

function scale(tl, width) {
  const start = tl.start_us ?? 0;
  const end = Math.max(tl.end_us ?? start, start + 1);
  const gaps = (tl.gaps || []).filter((g) => g.end_us > start && g.start_us < end)
    .map((g) => ({ start: Math.max(g.start_us, start), end: Math.min(g.end_us, end) }));
  const hidden = gaps.reduce((sum, g) => sum + (g.end - g.start), 0);
  const k = Math.max(width - gaps.length * GAP_PX, 50) / Math.max(end - start - hidden, 1);
  const x = (t) => {
    let px = 0;
    let at = start;
    for (const g of gaps) {
      if (t < g.start) break;
      px += (g.start - at) * k;
      if (t < g.end) return px + ((t - g.start) / (g.end - g.start)) * GAP_PX;
      px += GAP_PX;
      at = g.end;
    }
    return px + (Math.min(t, end) - at) * k;
  };
  return { x, gaps, start, end };
}

function segClass(seg) {
  if (seg.kind === "backoff") return "seg backoff";
  const known = ["completed", "fired", "received", "sent", "failed", "pending", "running", "timed_out", "degraded"];
  return `seg ${known.includes(seg.status) ? seg.status : "other"}`;
}

/** An <svg> of the timeline; `onPick(bar)` when a bar is clicked or activated with the keyboard. */
export function drawTimeline(tl, availableWidth, onPick) {
  const width = Math.max(400, availableWidth - LABEL - 20);
  const { x, gaps } = scale(tl, width);
  const bars = [...tl.bars].sort((a, b) => a.start_us - b.start_us || a.event_id - b.event_id);
  const height = TOP + bars.length * ROW + 8;
  const svg = s("svg", { width: LABEL + width + 10, height, role: "img",
                         "aria-label": `Timeline: ${bars.length} steps`, "data-testid": "timeline-svg" });
  const plot = s("g", { transform: `translate(${LABEL},0)` });
  for (const g of gaps) {
    const gx = x(g.start);
    plot.append(s("rect", { class: "gap", x: gx, y: 0, width: GAP_PX, height }),
      s("text", { x: gx + GAP_PX / 2, y: 12, "text-anchor": "middle" }, `⋯ ${duration(g.end - g.start)} ⋯`));
  }
  for (const turn of tl.turns || []) {
    const tx = x(turn.at_us);
    plot.append(s("line", { class: "turn", x1: tx, x2: tx, y1: TOP - 4, y2: height },
      s("title", {}, `turn ${turn.index}`)));
  }
  plot.append(s("line", { class: "axis", x1: 0, x2: width, y1: TOP - 4, y2: TOP - 4 }));
  plot.append(s("text", { x: 0, y: 12 }, "0"), s("text", { x: width, y: 12, "text-anchor": "end" },
    duration((tl.end_us ?? 0) - (tl.start_us ?? 0))));
  bars.forEach((bar, i) => {
    const y = TOP + i * ROW;
    const tries = bar.attempts > 1 ? ` ×${bar.attempts}` : "";
    const label = `${bar.kind}: ${bar.name}${tries} · ${bar.status}`;
    const row = s("g", { class: "bar", tabindex: "0", role: "button", "data-key": bar.key, "data-status": bar.status,
                         "aria-label": label });
    row.append(s("text", { x: -LABEL + 4, y: y + 13 }, label.length > 42 ? `${label.slice(0, 41)}…` : label));
    for (const seg of bar.segments.length ? bar.segments : [{ kind: "span", start_us: bar.start_us, end_us: bar.end_us, status: bar.status }]) {
      const x1 = x(seg.start_us);
      const x2 = x(seg.end_us ?? tl.end_us ?? seg.start_us);
      const tip = [`${bar.kind} ${bar.name}`, `${seg.kind}: ${seg.status}`,
                   `${duration((seg.end_us ?? tl.end_us) - seg.start_us)}`, seg.failure || ""].filter(Boolean).join("\n");
      row.append(s("rect", { class: segClass(seg), x: x1, y: y + 3, width: Math.max(2, x2 - x1), height: ROW - 7, rx: 2 },
        s("title", {}, tip)));
    }
    plot.append(row);
  });
  svg.append(plot);
  // One listener for all the rows.
  const barOf = (e) => tl.bars.find((b) => b.key === e.target.closest("g.bar")?.dataset.key);
  svg.addEventListener("click", (e) => {
    const bar = barOf(e);
    if (bar) onPick?.(bar);
  });
  svg.addEventListener("keydown", (e) => {
    const bar = (e.key === "Enter" || e.key === " ") && barOf(e);
    if (bar) {
      e.preventDefault();
      onPick?.(bar);
    }
  });
  return svg;
}
