// The instance list: live counts per status, filters kept in the URL, cursor paging, bulk actions (selected
// rows, or everything matching the filter) with a count confirmation, and the Start form.

import { countMatching, get, post } from "./api.js";
import {
  confirmDialog, purgeAction, resumeAction, startAction, suspendAction, terminateAction,
} from "./actions.js";
import { bulkCli } from "./commands.js";
import {
  STATUSES, TERMINAL, duration, h, instanceHref, isoToUs, navLink, pill, replace, time, workflowHref,
} from "./dom.js";
import { onChange } from "./live.js";
import { navigate, notify } from "./nav.js";
import { refreshNames } from "./names.js";

const FILTER_KEYS = ["name", "prefix", "from", "to", "parent", "app"];

function readFilter() {
  const q = new URLSearchParams(location.search);
  const f = { statuses: q.getAll("status").filter((s) => STATUSES.includes(s)), roots: q.get("roots") === "1",
              cursor: q.get("cursor") || "" };
  for (const key of FILTER_KEYS) f[key] = q.get(key) || "";
  return f;
}

function writeFilter(f, { keepCursor = false } = {}) {
  const q = new URLSearchParams();
  for (const s of f.statuses) q.append("status", s);
  for (const key of FILTER_KEYS) if (f[key]) q.set(key, f[key]);
  if (f.roots) q.set("roots", "1");
  if (keepCursor && f.cursor) q.set("cursor", f.cursor);
  const text = q.toString();
  navigate(`/dashboard/${text ? `?${text}` : ""}`);
}

function localToIso(value) {
  return value ? new Date(value).toISOString() : null;
}

function apiParams(f) {
  return {
    status: f.statuses, workflow_name: f.name, instance_id_prefix: f.prefix, created_from: localToIso(f.from),
    created_to: localToIso(f.to), parent_instance_id: f.parent, appID: f.app,
  };
}

function bodyFilter(f) {
  return {
    statuses: f.statuses, workflow_name: f.name || null, instance_id_prefix: f.prefix || null,
    created_from: localToIso(f.from), created_to: localToIso(f.to), parent_instance_id: f.parent || null,
    app_id: f.app || null,
  };
}

function describe(f) {
  const parts = [];
  if (f.statuses.length) parts.push(`status ${f.statuses.join(" or ")}`);
  if (f.name) parts.push(`workflow ${f.name}`);
  if (f.prefix) parts.push(`ID starting with ${f.prefix}`);
  if (f.from) parts.push(`created after ${f.from}`);
  if (f.to) parts.push(`created before ${f.to}`);
  if (f.parent) parts.push(`children of ${f.parent}`);
  if (f.app) parts.push(`app ${f.app}`);
  return parts.length ? parts.join(", ") : "no filter (every instance)";
}

function matches(f, ev) {
  if (f.statuses.length && !f.statuses.includes(ev.status)) return false;
  if (f.name && ev.workflow_name !== f.name) return false;
  if (f.prefix && !ev.instance_id.startsWith(f.prefix)) return false;
  if (f.parent && ev.parent_instance_id !== f.parent) return false;
  if (f.roots && ev.parent_instance_id) return false;
  if (f.app && ev.app_id !== f.app) return false;
  const created = isoToUs(ev.created_at);
  if (f.from && created < Date.parse(f.from) * 1000) return false;
  if (f.to && created > Date.parse(f.to) * 1000) return false;
  return true;
}

const rowKey = (inst) => `${inst.app_id}\u0000${inst.instance_id}`;

export async function listPage(main) {
  const f = readFilter();
  const selected = new Map(); // key -> instance
  const rows = new Map(); // key -> {tr, inst}
  let page = { instances: [], next_cursor: null };

  const chips = h("div", { class: "chips", role: "group", "aria-label": "Counts by status; press to filter" });
  const total = h("span", { class: "muted", "data-testid": "total" });
  const tbody = h("tbody");
  const pager = h("div", { class: "toolbar" });
  const bulkInfo = h("span", { class: "muted", "data-testid": "selected-count" }, "0 selected");

  const input = (key, label, type = "text", extra = {}) => h("label", {}, label,
    h("input", { name: key, type, value: f[key], ...extra }));
  const filterForm = h("form", { class: "filters", "aria-label": "Filters" },
    input("name", "Workflow name", "text", { list: "workflow-names" }),
    input("prefix", "Instance ID prefix"),
    input("from", "Created from", "datetime-local"),
    input("to", "Created to", "datetime-local"),
    input("parent", "Parent instance ID"),
    input("app", "App ID"),
    h("label", { class: "inline" }, "Roots only", h("input", { type: "checkbox", name: "roots", checked: f.roots })),
    h("button", { type: "submit" }, "Apply filters"),
    h("button", { type: "button", on: { click: () => navigate("/dashboard/") } }, "Clear"));
  filterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = { ...f };
    for (const key of FILTER_KEYS) next[key] = filterForm.elements[key].value.trim();
    next.roots = filterForm.elements.roots.checked;
    writeFilter(next);
  });

  const bulk = (label, run, danger) => h("button", { type: "button", class: danger ? "danger" : "", on: { click: run } },
    label);
  const header = h("div", { class: "toolbar" },
    h("h1", {}, "Workflow instances"),
    h("button", { type: "button", class: "primary", on: { click: () => start() } }, "Start"));
  const bulkBar = h("div", { class: "toolbar", role: "group", "aria-label": "Bulk actions" },
    bulkInfo,
    bulk("Suspend selected", () => bulkSelected("suspend")),
    bulk("Resume selected", () => bulkSelected("resume")),
    bulk("Terminate selected", () => bulkSelected("terminate"), true),
    bulk("Purge selected", () => bulkSelected("purge"), true),
    h("span", { class: "muted" }, "|"),
    bulk("Terminate all matching", () => bulkMatching("terminate"), true),
    bulk("Purge all matching", () => bulkMatching("purge"), true));
  const selectAll = h("input", { type: "checkbox", "aria-label": "Select every row on this page" });
  selectAll.addEventListener("change", () => {
    for (const { tr, inst } of rows.values()) {
      tr.querySelector("input").checked = selectAll.checked;
      toggle(inst, selectAll.checked, tr);
    }
  });
  const table = h("table", { "aria-label": "Instances" },
    h("thead", {}, h("tr", {}, h("th", {}, selectAll), ["Instance ID", "Workflow", "Status", "App", "Created",
      "Duration", "Custom status / failure"].map((t) => h("th", { scope: "col" }, t)))),
    tbody);
  replace(main, header, chips, total, filterForm, bulkBar, table, pager);

  function toggle(inst, on, tr) {
    if (on) selected.set(rowKey(inst), inst);
    else selected.delete(rowKey(inst));
    tr.classList.toggle("selected", on);
    bulkInfo.textContent = `${selected.size} selected`;
  }

  function cells(inst) {
    const end = inst.completed_at ? isoToUs(inst.completed_at) : Date.now() * 1000;
    const note = inst.failure ? h("span", { class: "err" }, inst.failure.error_message.split("\n")[0])
      : inst.custom_status || "";
    return [
      h("td", { class: "mono" }, navLink(instanceHref(inst.instance_id, inst.app_id), inst.instance_id),
        inst.parent_instance_id ? [" ", h("span", { class: "pill", title: `child of ${inst.parent_instance_id}` }, "child")]
          : null),
      h("td", {}, navLink(workflowHref(inst.workflow_name, inst.app_id), inst.workflow_name)),
      h("td", { "data-testid": "status" }, pill(inst.status)),
      h("td", {}, inst.app_id),
      h("td", {}, time(inst.created_at)),
      h("td", {}, duration(end - isoToUs(inst.created_at))),
      h("td", {}, note),
    ];
  }

  function renderRow(inst) {
    const key = rowKey(inst);
    const existing = rows.get(key);
    const check = h("input", { type: "checkbox", "aria-label": `Select ${inst.instance_id}`,
                               checked: selected.has(key) });
    const tr = existing ? existing.tr : h("tr", { dataset: { instance: inst.instance_id, app: inst.app_id } });
    check.addEventListener("change", () => toggle(rows.get(key).inst, check.checked, tr));
    replace(tr, h("td", {}, check), cells(inst));
    rows.set(key, { tr, inst });
    return tr;
  }

  async function loadCounts() {
    const stats = await get("/stats", { group_by: "status", workflow_name: f.name, instance_id_prefix: f.prefix,
                                        appID: f.app });
    const counts = Object.fromEntries(stats.groups.map((g) => [g.key, g.count]));
    replace(chips, STATUSES.map((status) => {
      const on = f.statuses.includes(status);
      return h("button", {
        type: "button", class: `chip pill ${status}`, "aria-pressed": on ? "true" : "false",
        dataset: { status, count: String(counts[status] || 0) },
        on: { click: () => writeFilter({ ...f, statuses: on ? f.statuses.filter((s) => s !== status) : [...f.statuses, status] }) },
      }, `${status} ${counts[status] || 0}`);
    }));
    total.textContent = `${stats.total} instances in all${f.name || f.prefix || f.app ? " matching name, prefix and app" : ""}`;
  }

  async function loadPage() {
    page = await get("/instances", { ...apiParams(f), limit: 50, cursor: f.cursor });
    const shown = page.instances.filter((inst) => !f.roots || !inst.parent_instance_id);
    const keep = new Set(shown.map(rowKey));
    for (const [key, { tr }] of rows) if (!keep.has(key)) { tr.remove(); rows.delete(key); }
    for (const inst of shown) tbody.append(renderRow(inst));
    if (!shown.length && !tbody.firstChild) tbody.append(h("tr", { class: "empty" }, h("td", { colspan: 8, class: "muted" }, "No instances match.")));
    if (shown.length) tbody.querySelector("tr.empty")?.remove();
    replace(pager,
      f.cursor ? h("button", { type: "button", on: { click: () => writeFilter({ ...f, cursor: "" }) } }, "First page") : null,
      page.next_cursor ? h("button", { type: "button", on: { click: () => writeFilter({ ...f, cursor: page.next_cursor }, { keepCursor: true }) } }, "Next page") : null,
      h("span", { class: "muted" }, page.next_cursor ? "Oldest first; more on the next page." : "Oldest first; last page."));
  }

  async function start() {
    const started = await startAction({ workflowName: f.name, appId: f.app });
    if (started) navigate(instanceHref(started.instance_id, f.app));
  }

  const ONE = { suspend: suspendAction, resume: resumeAction, terminate: terminateAction };

  async function bulkSelected(action) {
    const targets = [...selected.values()];
    if (!targets.length) return notify("Select instances first (the checkboxes in the first column).", "info");
    if (targets.length === 1 && ONE[action]) return ONE[action](targets[0]);
    if (targets.length === 1 && action === "purge") return purgeAction(targets[0], TERMINAL.has(targets[0].status));
    const ok = await confirmDialog({
      title: `${action[0].toUpperCase()}${action.slice(1)} ${targets.length} instances?`,
      lines: [targets.map((t) => t.instance_id).join(", "),
              action === "purge" ? "Finished ones are purged with their children; others are left alone." : ""],
      confirm: `${action[0].toUpperCase()}${action.slice(1)} ${targets.length}`, danger: action === "terminate" || action === "purge",
    });
    if (!ok) return;
    const failed = [];
    for (const t of targets) {
      try {
        await post(`/instances/${encodeURIComponent(t.instance_id)}/${action}`, {}, { appID: t.app_id });
      } catch (err) {
        failed.push(`${t.instance_id}: ${err.message}`);
      }
    }
    notify(failed.length ? `${targets.length - failed.length} done; failed:\n${failed.join("\n")}` : `${action}: ${targets.length} done`,
      failed.length ? "error" : "info");
    selected.clear();
    bulkInfo.textContent = "0 selected";
    refresh();
  }

  async function bulkMatching(action) {
    const params = apiParams(f);
    if (action === "purge" && !f.statuses.length) params.status = [...TERMINAL];
    if (action === "terminate" && !f.statuses.length) params.status = STATUSES.filter((s) => !TERMINAL.has(s));
    const count = await countMatching(params);
    const filter = bodyFilter(f);
    const ok = await confirmDialog({
      title: `${action === "purge" ? "Purge" : "Terminate"} all ${count} instances matching the filter?`,
      lines: [`Filter: ${describe(f)}.`, action === "purge" ? "Only finished instances are purged, with their children."
        : "Only active instances are terminated, with their children."],
      confirm: `${action === "purge" ? "Purge" : "Terminate"} ${count}`, danger: true,
      cli: action === "terminate" ? bulkCli("terminate", filter) : bulkCli("purge", filter),
    });
    if (!ok) return;
    const result = await post(`/${action}`, filter);
    notify(`${action}: ${result.count} instances`, "info");
    refresh();
  }

  // Live updates coalesce: at most one reload of the page (rows and counts) and one of the counts alone in
  // flight, the next one after it ends, so a burst of changes costs a few requests a second, not one each.
  const throttled = (wait, fn) => {
    let due = null;
    let running = false;
    let again = false;
    let cancelled = false;
    const run = async () => {
      due = null;
      running = true;
      try {
        await fn();
      } finally {
        running = false;
        if (again) {
          again = false;
          schedule();
        }
      }
    };
    const schedule = () => {
      if (cancelled) return;
      if (running) again = true;
      else if (!due) due = setTimeout(run, wait);
    };
    schedule.cancel = () => {
      cancelled = true;
      clearTimeout(due);
    };
    return schedule;
  };
  const refresh = throttled(300, async () => {
    const y = window.scrollY;
    try {
      await Promise.all([loadCounts(), loadPage()]);
    } catch (err) {
      notify(err.message);
    }
    window.scrollTo(0, y);
  });
  const recount = throttled(500, async () => {
    await loadCounts().catch(() => {});
    refreshNames();
  });

  const stop = onChange(({ type, data }) => {
    if (type === "reset") return refresh();
    recount();
    const key = rowKey(data);
    const row = rows.get(key);
    if (type === "removed") {
      if (row) { row.tr.remove(); rows.delete(key); }
      return;
    }
    if (row) {
      const merged = { ...row.inst, ...data, completed_at: row.inst.completed_at };
      if (TERMINAL.has(data.status)) refresh(); // its output, failure and end time come with the full row
      renderRow(merged);
    } else if (!page.next_cursor && matches(f, data)) {
      refresh();
    }
  });

  await Promise.all([loadCounts(), loadPage()]);
  return () => { stop(); refresh.cancel(); recount.cancel(); };
}
