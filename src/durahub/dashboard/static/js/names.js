// Workflow names seen so far, offered as suggestions wherever a name is typed (a <datalist>).

import { get } from "./api.js";
import { h, replace } from "./dom.js";

let due = null;

export function refreshNames() {
  if (due) return;
  due = setTimeout(async () => {
    due = null;
    const list = document.getElementById("workflow-names") || document.body.appendChild(h("datalist", { id: "workflow-names" }));
    try {
      const stats = await get("/stats", { group_by: "workflow_name" });
      replace(list, stats.groups.map((g) => h("option", { value: g.key })));
    } catch {
      /* suggestions only */
    }
  }, 200);
}
