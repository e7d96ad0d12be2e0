// Action dialogs: one form per action (Start, Suspend, Resume, Terminate, Raise event, Purge, Rerun), each
// showing the equivalent `durahub workflow` command and curl line as the fields change. Destructive actions
// say what they will do and need their own button pressed in the dialog.

import { post } from "./api.js";
import { COMMANDS, rerunBody, startBody } from "./commands.js";
import { h, replace } from "./dom.js";

const dialog = () => document.getElementById("dialog");

function copyButton(getText) {
  return h("button", {
    type: "button",
    on: { click: () => navigator.clipboard?.writeText(getText()).catch(() => {}) },
  }, "Copy");
}

function fieldInput(field) {
  const common = { id: `f-${field.name}`, name: field.name };
  if (field.type === "checkbox") return h("input", { ...common, type: "checkbox", checked: !!field.value });
  if (field.type === "json") {
    return h("textarea", { ...common, spellcheck: "false", placeholder: field.placeholder || "JSON, optional",
                           value: field.value ?? "" });
  }
  if (field.type === "select") {
    const select = h("select", common, field.options.map((o) => h("option", { value: o }, o)));
    select.value = field.value ?? "";
    return select;
  }
  return h("input", { ...common, type: field.type || "text", value: field.value ?? "",
                      required: field.required || false, placeholder: field.placeholder || null,
                      list: field.list || null, autocomplete: "off" });
}

function values(form, fields, fixed) {
  const out = { ...fixed };
  for (const f of fields) {
    const el = form.elements[f.name];
    out[f.name] = f.type === "checkbox" ? el.checked : el.value.trim();
  }
  return out;
}

function jsonProblems(form, fields) {
  for (const f of fields.filter((x) => x.type === "json")) {
    const text = form.elements[f.name].value.trim();
    if (!text) continue;
    try {
      JSON.parse(text);
    } catch (err) {
      return `${f.label}: not valid JSON (${err.message})`;
    }
  }
  return null;
}

/**
 * Open a dialog and resolve with what `submit` returned, or null when cancelled.
 * spec: {title, intro, warning, fields, fixed, command, confirm, danger, submit(values)}
 */
export function openAction(spec) {
  const el = dialog();
  const fields = spec.fields || [];
  const cliCode = h("code", { "data-testid": "cli-line" });
  const curlCode = h("code", { "data-testid": "curl-line" });
  const problem = h("p", { class: "err", role: "alert" });
  const submit = h("button", { type: "submit", class: spec.danger ? "danger" : "primary" }, spec.confirm);
  const cancel = h("button", { type: "button", value: "cancel" }, "Cancel");
  const form = h("form", { method: "dialog", novalidate: true },
    h("h2", { id: "dialog-title" }, spec.title),
    spec.intro ? h("p", {}, spec.intro) : null,
    spec.warning ? h("p", { class: "warning" }, spec.warning) : null,
    fields.map((f) => f.type === "checkbox"
      ? h("label", {}, fieldInput(f), " ", f.label)
      : h("label", { for: `f-${f.name}` }, f.label, fieldInput(f))),
    h("div", { class: "cmd" },
      h("span", { class: "muted" }, "CLI"), cliCode, copyButton(() => cliCode.textContent),
      h("span", { class: "muted" }, "curl"), curlCode, copyButton(() => curlCode.textContent)),
    problem,
    h("div", { class: "buttons" }, cancel, submit));
  const refresh = () => {
    const cmd = COMMANDS[spec.command](values(form, fields, spec.fixed));
    cliCode.textContent = cmd.cli;
    curlCode.textContent = cmd.curl;
  };
  form.addEventListener("input", refresh);
  refresh();
  replace(el, form);
  return new Promise((resolve) => {
    let result = null;
    cancel.addEventListener("click", () => el.close());
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const bad = jsonProblems(form, fields);
      if (bad) {
        problem.textContent = bad;
        return;
      }
      submit.disabled = true;
      problem.textContent = "";
      try {
        result = await spec.submit(values(form, fields, spec.fixed));
        el.close();
      } catch (err) {
        problem.textContent = err.message;
        submit.disabled = false;
      }
    });
    el.addEventListener("close", () => resolve(result), { once: true });
    el.showModal();
    const first = form.querySelector("input:not([type=checkbox]), textarea, select") || submit;
    first.focus();
  });
}

/** A yes/no confirmation (bulk actions): resolves true when confirmed. */
export function confirmDialog({ title, lines, confirm, danger, cli }) {
  const el = dialog();
  const ok = h("button", { type: "submit", class: danger ? "danger" : "primary" }, confirm);
  const cancel = h("button", { type: "button" }, "Cancel");
  const cliCode = cli ? h("code", { "data-testid": "cli-line" }, cli) : null;
  const form = h("form", { method: "dialog" },
    h("h2", { id: "dialog-title" }, title),
    lines.map((line) => h("p", {}, line)),
    cli ? h("div", { class: "cmd" }, h("span", { class: "muted" }, "CLI"), cliCode, copyButton(() => cli)) : null,
    h("div", { class: "buttons" }, cancel, ok));
  replace(el, form);
  return new Promise((resolve) => {
    let answer = false;
    cancel.addEventListener("click", () => el.close());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      answer = true;
      el.close();
    });
    el.addEventListener("close", () => resolve(answer), { once: true });
    el.showModal();
    cancel.focus();
  });
}

const path = (instanceId, action) => `/instances/${encodeURIComponent(instanceId)}/${action}`;
const app = (f) => (f.app_id ? { appID: f.app_id } : undefined);

// -- the actions ----------------------------------------------------------------------------------------

export function startAction({ workflowName = "", input = "", appId = "", names = [] } = {}) {
  return openAction({
    title: "Start a workflow", confirm: "Start", command: "start",
    fields: [
      { name: "workflow_name", label: "Workflow name", value: workflowName, required: true, list: "workflow-names" },
      { name: "instance_id", label: "Instance ID (empty: a new UUID)" },
      { name: "input", label: "Input (JSON)", type: "json", value: input },
      { name: "start_at", label: "Start at (RFC 3339, empty: now)", placeholder: "2030-01-01T00:00:00Z" },
      { name: "app_id", label: "App ID (empty: the engine's)", value: appId },
    ],
    names,
    submit: async (f) => {
      if (!f.workflow_name) throw new Error("Workflow name is required");
      return post("/instances", startBody(f), app(f));
    },
  });
}

export function suspendAction(instance) {
  return openAction({
    title: `Suspend ${instance.instance_id}`, confirm: "Suspend", command: "suspend",
    fixed: { instance_id: instance.instance_id, app_id: instance.app_id },
    fields: [{ name: "reason", label: "Reason (optional)" }],
    submit: (f) => post(path(f.instance_id, "suspend"), { reason: f.reason || null }, app(f)),
  });
}

export function resumeAction(instance) {
  return openAction({
    title: `Resume ${instance.instance_id}`, confirm: "Resume", command: "resume",
    fixed: { instance_id: instance.instance_id, app_id: instance.app_id },
    fields: [{ name: "reason", label: "Reason (optional)" }],
    submit: (f) => post(path(f.instance_id, "resume"), { reason: f.reason || null }, app(f)),
  });
}

export function terminateAction(instance) {
  return openAction({
    title: `Terminate ${instance.instance_id}?`, confirm: "Terminate", command: "terminate", danger: true,
    warning: "The workflow stops where it is and cannot be resumed.",
    fixed: { instance_id: instance.instance_id, app_id: instance.app_id },
    fields: [
      { name: "output", label: "Output recorded on it (JSON, optional)", type: "json" },
      { name: "recursive", label: "Terminate its child workflows too", type: "checkbox", value: true },
    ],
    submit: (f) => post(path(f.instance_id, "terminate"), { output: f.output || null, recursive: f.recursive }, app(f)),
  });
}

export function raiseAction(instance, eventName = "") {
  return openAction({
    title: `Raise an event on ${instance.instance_id}`, confirm: "Raise event", command: "raise",
    fixed: { instance_id: instance.instance_id, app_id: instance.app_id },
    fields: [
      { name: "event_name", label: "Event name", value: eventName, required: true },
      { name: "input", label: "Payload (JSON, optional)", type: "json" },
    ],
    submit: (f) => {
      if (!f.event_name) throw new Error("Event name is required");
      return post(path(f.instance_id, "raise"), { event_name: f.event_name, input: f.input || null }, app(f));
    },
  });
}

export function purgeAction(instance, finished) {
  return openAction({
    title: `Purge ${instance.instance_id}?`, confirm: "Purge", command: "purge", danger: true,
    warning: "Its history and its child workflows' are deleted for good.",
    fixed: { instance_id: instance.instance_id, app_id: instance.app_id },
    fields: finished ? [] : [{ name: "force", label: "It is not finished: purge it anyway (force)", type: "checkbox" }],
    submit: (f) => post(path(f.instance_id, "purge"), { force: !!f.force }, app(f)),
  });
}

export function rerunAction(instance, eventId = 0) {
  return openAction({
    title: `Rerun ${instance.instance_id} from an event`, confirm: "Rerun", command: "rerun",
    intro: "A new instance replays this one up to the event and runs on from there.",
    fixed: { instance_id: instance.instance_id, app_id: instance.app_id },
    fields: [
      { name: "event_id", label: "From event ID", type: "number", value: String(eventId), required: true },
      { name: "new_instance_id", label: "New instance ID (empty: a new UUID)" },
      { name: "input", label: "Replace that step's input (JSON, optional)", type: "json" },
    ],
    submit: (f) => post(path(f.instance_id, "rerun"), rerunBody(f), app(f)),
  });
}
