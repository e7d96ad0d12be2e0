// Connected worker streams (GET /workers) and the apps this engine serves (GET /apps).

import { get } from "./api.js";
import { h, replace, time } from "./dom.js";

export async function workersPage(main) {
  const [workers, apps] = await Promise.all([get("/workers"), get("/apps")]);
  replace(main, h("h1", {}, "Workers"),
    h("table", { "aria-label": "Connected workers", "data-testid": "workers" },
      h("thead", {}, h("tr", {}, ["Stream", "App", "Capabilities", "Connected since", "Items outstanding"].map((t) => h("th", {}, t)))),
      h("tbody", {}, workers.length ? workers.map((w) => h("tr", {}, h("td", {}, String(w.stream_id)), h("td", {}, w.app_id),
        h("td", {}, w.capabilities.join(", ") || "-"), h("td", {}, time(w.connected_at)), h("td", {}, String(w.outstanding))))
        : h("tr", {}, h("td", { colspan: 5, class: "muted" }, "No worker is connected to this engine.")))),
    h("h2", {}, "Apps"),
    h("table", { "aria-label": "Apps" },
      h("thead", {}, h("tr", {}, ["App", "Workers", "Queued work", "gRPC port", "HTTP port"].map((t) => h("th", {}, t)))),
      h("tbody", {}, apps.map((a) => h("tr", {}, h("td", {}, a.app_id), h("td", {}, String(a.workers)), h("td", {}, String(a.queued)),
        h("td", {}, a.grpc_port ?? "-"), h("td", {}, a.http_port ?? "-"))))));
}
