// The map of one workflow: the derived graphs of its last runs merged (GET /workflows/{name}/map): which steps
// runs take, how often each branch is taken, p50/p95 per step and failure rates.

import { get, getText } from "./api.js";
import { startAction } from "./actions.js";
import { duration, h, instanceHref, navLink, pill, replace, time } from "./dom.js";
import { importSvg } from "./graph.js";
import { onChange } from "./live.js";
import { navigate, notify } from "./nav.js";

export async function mapPage(main, name, appId) {
  const q = new URLSearchParams(location.search);
  const last = Math.min(Math.max(Number(q.get("last")) || 200, 1), 1000);
  const params = { last, appID: appId };
  const path = `/workflows/${encodeURIComponent(name)}/map`;
  const summary = h("p", { class: "muted", "data-testid": "map-summary" });
  const drawing = h("div", { class: "graph", "data-testid": "map-graph" });
  const steps = h("div", {});
  const branches = h("div", {});
  const recent = h("div", {});
  const lastInput = h("input", { type: "number", min: 1, max: 1000, value: String(last), "aria-label": "Runs to merge" });
  replace(main,
    h("h1", {}, "Workflow map: ", h("span", {}, name)),
    h("div", { class: "toolbar" },
      h("label", {}, "Last ", lastInput, " runs"),
      h("button", { type: "button", on: { click: () => navigate(`${location.pathname}?${new URLSearchParams({ ...(appId ? { appID: appId } : {}), last: lastInput.value })}`) } }, "Apply"),
      h("button", { type: "button", class: "primary", on: { click: async () => {
        const started = await startAction({ workflowName: name, appId: appId || "" });
        if (started) navigate(instanceHref(started.instance_id, appId));
      } } }, "Start"),
      navLink(`/dashboard/?name=${encodeURIComponent(name)}`, "Its instances")),
    summary, h("div", { class: "panel" }, h("div", { class: "body" }, drawing)),
    h("div", { class: "grid2" }, h("div", { class: "panel" }, h("div", { class: "head" }, "Steps"), h("div", { class: "body" }, steps)),
      h("div", { class: "panel" }, h("div", { class: "head" }, "Branches"), h("div", { class: "body" }, branches))),
    h("div", { class: "panel" }, h("div", { class: "head" }, "Newest runs"), h("div", { class: "body" }, recent)));

  async function load() {
    const [map, svgText, page] = await Promise.all([
      get(path, params), getText(path, { ...params, format: "svg" }, "image/svg+xml"),
      get("/instances", { workflow_name: name, appID: appId, limit: 1000 }),
    ]);
    summary.textContent = `Merged from the last ${map.runs} runs: ${map.nodes.length} steps, ${map.edges.length} branches.`;
    replace(drawing, importSvg(svgText) || h("p", { class: "err" }, "The map could not be drawn."));
    const labels = Object.fromEntries(map.nodes.map((n) => [n.id, n.label]));
    replace(steps, h("table", { "data-testid": "map-steps" },
      h("thead", {}, h("tr", {}, ["Step", "Kind", "Taken", "In runs", "p50", "p95", "Failure rate"].map((t) => h("th", {}, t)))),
      h("tbody", {}, map.nodes.map((n) => h("tr", {}, h("td", {}, n.label), h("td", {}, n.kind), h("td", {}, String(n.count)),
        h("td", {}, String(n.runs)), h("td", {}, duration(n.p50_us)), h("td", {}, duration(n.p95_us)),
        h("td", {}, n.failure_rate == null ? "-" : `${Math.round(n.failure_rate * 100)} %`))))));
    replace(branches, h("table", {},
      h("thead", {}, h("tr", {}, ["From", "To", "Taken", "Share"].map((t) => h("th", {}, t)))),
      h("tbody", {}, map.edges.map((e) => h("tr", {}, h("td", {}, labels[e.source] ?? e.source), h("td", {}, labels[e.target] ?? e.target),
        h("td", {}, String(e.count)), h("td", {}, `${Math.round(e.share * 100)} %`))))));
    const newest = page.instances.slice(-20).reverse();
    replace(recent, h("ul", {}, newest.map((i) => h("li", {}, navLink(instanceHref(i.instance_id, i.app_id), i.instance_id), " ",
      pill(i.status), " ", time(i.created_at)))));
  }

  let due = null;
  const stop = onChange(({ type, data }) => {
    if (type === "reset" || data.workflow_name === name) {
      if (!due) due = setTimeout(() => { due = null; load().catch((err) => notify(err.message)); }, 1000);
    }
  });
  await load();
  return () => { stop(); clearTimeout(due); };
}
