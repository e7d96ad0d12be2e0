// The dashboard's entry: routes by path (/dashboard/, /dashboard/instances/{id}?appID=, /dashboard/workflows/{name},
// /dashboard/workers) without reloading, asks for the API token when the server needs one, starts the live
// stream, and keeps "/" as the shortcut to go to an instance.

import { ApiError, setToken, token, tokenRequired, whenUnauthorized } from "./api.js";
import { h, instanceHref, replace } from "./dom.js";
import { listPage } from "./list.js";
import { startLive } from "./live.js";
import { mapPage } from "./map.js";
import { refreshNames } from "./names.js";
import { navigate, notify } from "./nav.js";
import { runPage } from "./run.js";
import { workersPage } from "./workers.js";

const main = document.getElementById("main");
let leave = null;
let rendering = 0;

async function render() {
  const mine = ++rendering;
  if (leave) leave();
  leave = null;
  const path = decodeURIComponent(location.pathname.replace(/^\/dashboard\/?/, ""));
  const appId = new URLSearchParams(location.search).get("appID") || "";
  let page;
  if (path.startsWith("instances/")) {
    const id = path.slice("instances/".length);
    document.title = `${id} · durahub`;
    page = runPage(main, id, appId);
  } else if (path.startsWith("workflows/")) {
    const name = path.slice("workflows/".length);
    document.title = `${name} map · durahub`;
    page = mapPage(main, name, appId);
  } else if (path === "workers") {
    document.title = "Workers · durahub";
    page = workersPage(main);
  } else {
    document.title = "Instances · durahub";
    page = listPage(main);
  }
  try {
    const cleanup = await page;
    if (mine !== rendering) cleanup?.();
    else leave = cleanup || null;
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) notify(err.message);
  }
}

function askToken() {
  const dialog = document.getElementById("dialog");
  if (dialog.open) return;
  const input = h("input", { type: "password", name: "token", autocomplete: "off", required: true, id: "token-input" });
  const form = h("form", { method: "dialog" },
    h("h2", { id: "dialog-title" }, "API token"),
    h("p", {}, "This engine needs its API token (durahub serve --api-token / DAPR_API_TOKEN). It is kept in this tab only and sent as the dapr-api-token header."),
    h("label", { for: "token-input" }, "Token", input),
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Use token")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    dialog.close();
    location.reload();
  });
  replace(dialog, form);
  dialog.showModal();
  input.focus();
}

whenUnauthorized(() => {
  setToken("");
  askToken();
});

document.addEventListener("click", (event) => {
  const a = event.target.closest?.("a[data-nav]");
  if (!a || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (new URL(a.href).origin !== location.origin) return;
  event.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", render);
window.addEventListener("durahub:navigate", () => { window.scrollTo(0, 0); render(); });

document.getElementById("goto").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("goto-id");
  const id = input.value.trim();
  if (id) navigate(instanceHref(id, new URLSearchParams(location.search).get("appID") || ""));
  input.value = "";
});
document.addEventListener("keydown", (event) => {
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || "");
  if (event.key === "/" && !typing && !document.getElementById("dialog").open) {
    event.preventDefault();
    document.getElementById("goto-id").focus();
  }
});

if (tokenRequired() && !token()) {
  document.getElementById("live").textContent = "needs token";
  askToken();
} else {
  startLive(document.getElementById("live"));
  render().then(refreshNames); // suggestions only: after the page is drawn, not competing with it
}
