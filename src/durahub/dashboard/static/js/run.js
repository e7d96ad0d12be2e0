// One run: header, "waiting on now", timeline, graph, children tree, grouped history, payloads and the
// actions. Live: a change of this instance (or of one of its children) reloads the views in place; open
// panels, open history rows and the scroll position stay as they were.

import { ApiError, get, getText } from "./api.js";
import {
  purgeAction, raiseAction, rerunAction, resumeAction, startAction, suspendAction, terminateAction,
} from "./actions.js";
import {
  TERMINAL, duration, h, instanceHref, isoToUs, navLink, pill, replace, time, usToDate, workflowHref,
} from "./dom.js";
import { drawGraph, wireNodes } from "./graph.js";
import { failureView, payload, pretty } from "./json.js";
import { onChange } from "./live.js";
import { navigate, notify } from "./nav.js";
import { drawTimeline } from "./timeline.js";

const SCHEDULING = new Set(["taskScheduled", "timerCreated", "childWorkflowInstanceCreated"]);
// Turn boundaries (the protocol's newer names and the older ones): counted, not listed.
const TURN_STARTS = new Set(["workflowStarted", "orchestratorStarted"]);
const HIDDEN = new Set([...TURN_STARTS, "workflowCompleted", "orchestratorCompleted"]);
// History rows drawn at first, and per "Show more": a long history stays quick to show.
const HISTORY_PAGE = 100;

function section(title, key, open = true) {
  const body = h("div", { class: "body" });
  const el = h("details", { class: "panel", open, id: key, dataset: { key } }, h("summary", {}, title), body);
  return { el, body };
}

/** History grouped by task: a scheduling event with its completion, failure or firing; others alone. */
export function groupHistory(history) {
  const groups = [];
  const byScheduled = new Map();
  let turn = 0;
  for (const ev of history) {
    if (TURN_STARTS.has(ev.kind)) turn += 1;
    if (HIDDEN.has(ev.kind)) continue;
    const d = ev.details || {};
    const ref = d.taskScheduledId ?? d.timerId;
    const kindOfRef = ev.kind.startsWith("task") ? "taskScheduled" : ev.kind === "timerFired" ? "timerCreated"
      : ev.kind.startsWith("childWorkflowInstance") ? "childWorkflowInstanceCreated" : null;
    const owner = ref !== undefined && kindOfRef ? byScheduled.get(`${kindOfRef}:${ref}`) : null;
    if (owner) {
      owner.events.push(ev);
      continue;
    }
    const group = { key: `${ev.kind}:${ev.event_id}:${groups.length}`, first: ev, events: [ev], turn };
    if (SCHEDULING.has(ev.kind)) byScheduled.set(`${ev.kind}:${ev.event_id}`, group);
    groups.push(group);
  }
  return groups;
}

function groupTitle(group) {
  const first = group.first;
  const d = first.details || {};
  const last = group.events[group.events.length - 1];
  const name = d.name || d.instanceId || "";
  let status = "";
  if (SCHEDULING.has(first.kind)) {
    status = group.events.length === 1 ? "pending" : /Failed$/.test(last.kind) ? "failed" : last.kind === "timerFired" ? "fired" : "completed";
  }
  const took = group.events.length > 1 ? duration(isoToUs(last.timestamp) - isoToUs(first.timestamp)) : "";
  return { name, status, took };
}

export async function runPage(main, instanceId, appId) {
  const params = appId ? { appID: appId } : {};
  const base = `/instances/${encodeURIComponent(instanceId)}`;
  let inst = null;
  let graphJson = null;
  let gone = false;
  let newestFirst = false;
  let historyShown = HISTORY_PAGE;

  const title = h("h1", {});
  const facts = h("dl", { class: "facts" });
  const stall = h("div", {});
  const actions = h("div", { class: "toolbar", role: "group", "aria-label": "Actions" });
  const waiting = section("Waiting on now", "waiting");
  const io = section("Input, output and status", "payloads");
  const timeline = section("Timeline", "timeline");
  const graph = section("Graph (observed causal order of this run; branches not taken are absent)", "graph");
  const tree = section("Children", "tree");
  const history = section("History", "history");
  const graphBox = h("div", { class: "graph", "data-testid": "graph" });
  const nodeDetail = h("div", { class: "node-detail", "aria-live": "polite" });
  const graphTools = h("div", { class: "toolbar" });
  replace(graph.body, graphTools, graphBox, nodeDetail);
  replace(main, title, facts, stall, actions, waiting.el, timeline.el, graph.el, tree.el, history.el, io.el);

  const act = async (fn, ...args) => {
    const result = await fn(inst, ...args);
    if (result?.new_instance_id) navigate(instanceHref(result.new_instance_id, inst.app_id));
    else if (result && fn === purgeAction) {
      gone = true;
      notify(`Purged ${result.count} instance(s)`, "info");
      navigate("/dashboard/");
    } else if (result) {
      notify("Done; the page follows the change live.", "info");
    }
  };

  function renderHeader() {
    replace(title, pill(inst.status), " ", navLink(workflowHref(inst.workflow_name, inst.app_id), inst.workflow_name),
      " ", h("span", { class: "mono" }, inst.instance_id));
    const end = inst.completed_at ? isoToUs(inst.completed_at) : Date.now() * 1000;
    const started = inst.started_at ? isoToUs(inst.started_at) : isoToUs(inst.created_at);
    const rows = [
      ["Status", h("span", { "data-testid": "run-status" }, inst.status)],
      ["Instance ID", h("span", { class: "mono" }, inst.instance_id)],
      ["App", inst.app_id],
      ["Execution ID", h("span", { class: "mono" }, inst.execution_id || "-")],
      ["Created", time(inst.created_at)],
      ["Started", time(inst.started_at)],
      ["Completed", time(inst.completed_at)],
      ["Duration", duration(end - started)],
      ["Custom status", inst.custom_status ?? "-"],
    ];
    if (inst.parent_instance_id) {
      rows.push(["Parent", navLink(instanceHref(inst.parent_instance_id, inst.parent_app_id), inst.parent_instance_id,
        { "data-testid": "parent-link" })]);
    }
    if (inst.tags && Object.keys(inst.tags).length) rows.push(["Tags", JSON.stringify(inst.tags)]);
    replace(facts, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
  }

  function renderActions() {
    const finished = TERMINAL.has(inst.status);
    const button = (label, on, enabled, danger) => h("button", { type: "button", class: danger ? "danger" : "",
      disabled: !enabled, on: { click: on } }, label);
    replace(actions,
      button("Suspend", () => act(suspendAction), inst.status === "RUNNING" || inst.status === "PENDING"),
      button("Resume", () => act(resumeAction), inst.status === "SUSPENDED"),
      button("Raise event", () => act(raiseAction, ""), !finished),
      button("Terminate", () => act(terminateAction), !finished, true),
      button("Purge", () => act(purgeAction, finished), true, true),
      button("Rerun", () => act(rerunAction, firstRerunnable()), finished && !inst.parent_instance_id),
      button("Start another like this", async () => {
        const started = await startAction({ workflowName: inst.workflow_name, input: inst.input || "", appId: inst.app_id });
        if (started) navigate(instanceHref(started.instance_id, inst.app_id));
      }, true));
  }

  function firstRerunnable() {
    return (inst.history || []).find((e) => SCHEDULING.has(e.kind))?.event_id ?? 0;
  }

  function renderSummary(sum) {
    if (sum.stall) {
      replace(stall, h("div", { class: "notice", role: "note" }, h("strong", {}, `STALLED: ${sum.stall.reason}`), " — ",
        sum.stall.description, h("br"), "What to do: ", sum.stall.remedy));
    } else replace(stall);
    const parts = [];
    if (sum.suspended) parts.push(h("p", {}, pill("SUSPENDED"), " Suspended: nothing runs until it is resumed."));
    if (sum.activities.length) {
      parts.push(h("h3", {}, "Activities"), h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Since", "Attempt", "Retry at", "Last failure"].map((t) => h("th", {}, t)))),
        h("tbody", {}, sum.activities.map((a) => h("tr", {}, h("td", {}, a.name), h("td", {}, time(a.since_us)),
          h("td", {}, String(a.attempt)), h("td", {}, a.retry_at_us ? countdown(a.retry_at_us) : "-"),
          h("td", { class: "err" }, a.last_failure || ""))))));
    }
    if (sum.events.length) {
      parts.push(h("h3", {}, "Awaited events"), h("ul", {}, sum.events.map((e) => h("li", { "data-testid": "awaited-event" },
        h("strong", {}, e.name), " since ", time(e.since_us), e.timeout_at_us ? [" · times out ", countdown(e.timeout_at_us)] : " · no timeout", " ",
        h("button", { type: "button", on: { click: () => act(raiseAction, e.name) } }, "Raise event")))));
    }
    const timers = sum.timers.filter((t) => t.origin !== "externalEvent");
    if (timers.length) {
      parts.push(h("h3", {}, "Timers"), h("ul", {}, timers.map((t) => h("li", {}, `${t.origin || "timer"}: ${t.name || "-"} — fires `,
        t.fire_at_us ? countdown(t.fire_at_us) : "never"))));
    }
    if (sum.children.length) {
      parts.push(h("h3", {}, "Child workflows"), h("ul", {}, sum.children.map((c) => h("li", {},
        navLink(instanceHref(c.instance_id, c.app_id || inst.app_id), c.instance_id), ` (${c.name}) since `, time(c.since_us),
        c.attempt > 1 ? ` · attempt ${c.attempt}` : "", c.last_failure ? h("span", { class: "err" }, ` · ${c.last_failure}`) : ""))));
    }
    if (!parts.length) parts.push(h("p", { class: "muted" }, TERMINAL.has(inst.status) ? `Finished: ${inst.status}.` : "Nothing pending right now."));
    replace(waiting.body, parts);
  }

  function countdown(atUs) {
    return h("span", { class: "countdown", dataset: { at: String(atUs) }, title: usToDate(atUs).toISOString() }, relative(atUs));
  }

  function renderPayloads() {
    replace(io.body, h("div", { class: "grid2" },
      payload("Input", inst.input, "input"), payload("Output", inst.output, "output"),
      inst.custom_status != null ? payload("Custom status", inst.custom_status, "custom-status") : null,
      failureView(inst.failure)));
  }

  function renderTimeline(tl, width) {
    const svg = drawTimeline(tl, Math.max(width - 40, 600), (bar) => showStep(bar.key));
    replace(timeline.body, h("div", { class: "timeline" }, svg),
      h("p", { class: "muted" }, `${tl.bars.length} steps · ${tl.turns.length} turns · bars from scheduled to done; retries as segments; ⋯ marks compressed idle time`));
  }

  function showStep(key) {
    const node = graphJson?.nodes.find((n) => n.id === key);
    if (!node) return replace(nodeDetail);
    const canRerun = TERMINAL.has(inst.status) && !inst.parent_instance_id && node.event_id >= 0;
    replace(nodeDetail, h("dl", { class: "facts", "data-testid": "node-detail" },
      h("dt", {}, "Step"), h("dd", {}, `${node.kind}: ${node.label}`),
      h("dt", {}, "Status"), h("dd", {}, pill(node.status)),
      h("dt", {}, "Duration"), h("dd", {}, duration(node.duration_us)),
      node.attempts > 1 ? [h("dt", {}, "Attempts"), h("dd", {}, String(node.attempts))] : null,
      node.failure ? [h("dt", {}, "Failure"), h("dd", { class: "err" }, node.failure)] : null,
      node.instance_id && node.kind === "child" ? [h("dt", {}, "Child"), h("dd", {}, navLink(instanceHref(node.instance_id, node.app_id || inst.app_id), node.instance_id))] : null,
      node.event_id >= 0 ? [h("dt", {}, "Event ID"), h("dd", {}, String(node.event_id))] : null),
      canRerun ? h("button", { type: "button", on: { click: () => act(rerunAction, node.event_id) } }, "Rerun from here") : null);
  }

  function renderGraph(json, layout) {
    graphJson = json;
    const svg = drawGraph(layout, json.workflow_name || "workflow");
    wireNodes(svg, showStep);
    replace(graphBox, svg);
    const outgoing = new Map();
    for (const e of json.edges) outgoing.set(e.source, (outgoing.get(e.source) || 0) + 1);
    const fanOut = Math.max(0, ...outgoing.values());
    replace(graphTools, h("span", { class: "muted" }, `${json.nodes.length} nodes, ${json.edges.length} edges, widest fan-out ${fanOut}`),
      h("button", { type: "button", on: { click: () => exportText("mermaid") } }, "Mermaid"),
      h("button", { type: "button", on: { click: () => exportText("dot") } }, "DOT"));
  }

  async function exportText(format) {
    const text = await getText(`${base}/graph`, { ...params, format }, "text/plain");
    nodeDetail.replaceChildren(h("pre", { class: "json" }, text));
  }

  function treeItem(node) {
    const here = node.instance_id === inst.instance_id && node.app_id === inst.app_id;
    return h("li", {}, here ? h("strong", {}, node.instance_id) : navLink(instanceHref(node.instance_id, node.app_id), node.instance_id),
      " ", h("span", { class: "muted" }, node.workflow_name), " ", pill(node.status), " ", duration(node.duration_us),
      node.truncated ? h("span", { class: "muted" }, " (more below)") : null,
      node.children.length ? h("ul", { class: "tree" }, node.children.map(treeItem)) : null);
  }

  function renderTree(root) {
    replace(tree.body, root.children.length ? h("ul", { class: "tree", "data-testid": "tree" }, treeItem(root))
      : h("p", { class: "muted" }, "No child workflows."));
  }

  function renderHistory() {
    const open = new Set([...history.body.querySelectorAll("details[open]")].map((d) => d.dataset.key));
    const groups = groupHistory(inst.history || []);
    if (newestFirst) groups.reverse();
    const shown = groups.slice(0, historyShown);
    const finished = TERMINAL.has(inst.status) && !inst.parent_instance_id;
    const toggle = h("label", {}, h("input", { type: "checkbox", checked: newestFirst, on: { change: (e) => { newestFirst = e.target.checked; renderHistory(); } } }), " Newest first");
    const more = groups.length - shown.length;
    replace(history.body, h("div", { class: "toolbar" }, toggle, h("span", { class: "muted" }, `${(inst.history || []).length} events in ${groups.length} rows`)),
      shown.map((g) => {
        const t = groupTitle(g);
        return h("details", { class: "history-group", open: open.has(g.key), dataset: { key: g.key } },
          h("summary", {}, h("span", { class: "mono" }, `#${g.first.event_id}`), " ", g.first.kind, " ", h("strong", {}, t.name), " ",
            t.status ? pill(t.status) : null, " ", h("span", { class: "muted" }, t.took), " ", h("span", { class: "muted" }, `turn ${g.turn}`),
            finished && SCHEDULING.has(g.first.kind)
              ? [" ", h("button", { type: "button", dataset: { rerun: String(g.first.event_id) } }, "Rerun from this event")]
              : null),
          open.has(g.key) ? groupEvents(g) : null);
      }),
      more > 0 ? h("p", {}, h("button", { type: "button", "data-testid": "history-more", on: { click: () => { historyShown += HISTORY_PAGE * 5; renderHistory(); } } },
        `Show ${Math.min(more, HISTORY_PAGE * 5)} more rows`), h("span", { class: "muted" }, ` (${shown.length} of ${groups.length} shown)`)) : null);
    byKey = new Map(shown.map((g) => [g.key, g]));
  }

  // One listener each for every history row: an event's details are drawn when its row is first opened.
  let byKey = new Map();
  history.body.addEventListener("toggle", (e) => {
    const d = e.target;
    if (d.classList?.contains("history-group") && d.open && d.childElementCount === 1) d.append(...groupEvents(byKey.get(d.dataset.key)));
  }, true);
  history.body.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-rerun]");
    if (!button) return;
    e.preventDefault();
    act(rerunAction, Number(button.dataset.rerun));
  });

  function groupEvents(g) {
    return g.events.map((ev) => h("div", {}, h("span", { class: "muted" }, `${ev.kind} · `), time(ev.timestamp),
      h("pre", { class: "json" }, pretty(JSON.stringify(ev.details)))));
  }

  async function load() {
    if (gone) return;
    const y = window.scrollY;
    const width = main.clientWidth; // read before anything below changes the page: no forced layout later
    const openPayloads = new Set([...io.body.querySelectorAll("details:not([open])")].map((d) => d.dataset.key));
    let all;
    try {
      all = await get(`${base}/overview`, params); // the instance and every view of it from one read
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        gone = true;
        replace(main, h("h1", {}, "Not found"), h("p", {}, `No workflow instance '${instanceId}'${appId ? ` in app '${appId}'` : ""}.`),
          navLink("/dashboard/", "Back to the list"));
        return;
      }
      throw err;
    }
    if (gone) return;
    inst = all.instance;
    renderHeader();
    renderActions();
    renderPayloads();
    for (const d of io.body.querySelectorAll("details")) if (openPayloads.has(d.dataset.key)) d.open = false;
    renderSummary(all.summary);
    renderTimeline(all.timeline, width);
    renderTree(all.tree);
    renderGraph(all.graph, all.layout);
    renderHistory();
    window.scrollTo(0, y);
    main.dataset.loaded = String(Number(main.dataset.loaded || 0) + 1);
  }

  let due = null;
  const reload = () => {
    if (due || gone) return;
    due = setTimeout(() => { due = null; load().catch((err) => notify(err.message)); }, 250);
  };
  const stop = onChange(({ type, data }) => {
    if (type === "reset") return reload();
    const mine = data.instance_id === instanceId && (!inst || data.app_id === inst.app_id);
    const child = inst && data.parent_instance_id === inst.instance_id;
    if (mine && type === "removed") {
      gone = true;
      notify(`${instanceId} was purged.`, "info");
      return;
    }
    if (mine || child) reload();
  });
  const ticker = setInterval(() => {
    for (const el of main.querySelectorAll(".countdown")) el.textContent = relative(Number(el.dataset.at));
  }, 1000);
  await load();
  return () => { stop(); clearInterval(ticker); clearTimeout(due); gone = true; };
}

function relative(atUs) {
  const delta = atUs - Date.now() * 1000;
  return delta >= 0 ? `in ${duration(delta)}` : `${duration(-delta)} ago`;
}
