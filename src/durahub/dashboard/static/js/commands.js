// The terminal equivalents of each dashboard action: the `durahub workflow` command and the curl request.

import { API, token } from "./api.js";

export function shellQuote(value) {
  const text = String(value);
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

function cli(words) {
  return ["durahub", "workflow", ...words.filter((w) => w !== null && w !== undefined)].join(" ");
}

function flag(name, value) {
  return value === null || value === undefined || value === "" ? [] : [name, shellQuote(value)];
}

function appFlag(appId) {
  return flag("-a", appId);
}

export function curl(method, path, body, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""));
  const target = `${location.origin}${API}${path}${q.toString() ? `?${q}` : ""}`;
  const parts = ["curl", "-X", method, shellQuote(target)];
  if (token()) parts.push("-H", shellQuote("dapr-api-token: $DAPR_API_TOKEN").replace(/^'|'$/g, '"'));
  if (body !== undefined) parts.push("-H", shellQuote("Content-Type: application/json"), "-d", shellQuote(JSON.stringify(body)));
  return parts.join(" ");
}

const id = (instanceId) => shellQuote(instanceId);
const p = (instanceId, action) => `/instances/${encodeURIComponent(instanceId)}/${action}`;

/** {cli, curl} for one action; `f` holds the form's values. */
export const COMMANDS = {
  start: (f) => ({
    cli: cli(["run", shellQuote(f.workflow_name || "WORKFLOW"), ...flag("-i", f.instance_id), ...flag("-x", f.input),
              ...flag("-s", f.start_at), ...appFlag(f.app_id)]),
    curl: curl("POST", "/instances", startBody(f), { appID: f.app_id }),
  }),
  suspend: (f) => ({
    cli: cli(["suspend", id(f.instance_id), ...flag("-r", f.reason), ...appFlag(f.app_id)]),
    curl: curl("POST", p(f.instance_id, "suspend"), { reason: f.reason || null }, { appID: f.app_id }),
  }),
  resume: (f) => ({
    cli: cli(["resume", id(f.instance_id), ...flag("-r", f.reason), ...appFlag(f.app_id)]),
    curl: curl("POST", p(f.instance_id, "resume"), { reason: f.reason || null }, { appID: f.app_id }),
  }),
  terminate: (f) => ({
    cli: cli(["terminate", id(f.instance_id), ...flag("-o", f.output), ...appFlag(f.app_id)]),
    curl: curl("POST", p(f.instance_id, "terminate"), { output: f.output || null, recursive: f.recursive !== false },
               { appID: f.app_id }),
  }),
  raise: (f) => ({
    cli: cli(["raise-event", id(f.instance_id), shellQuote(f.event_name || "EVENT"), ...flag("-x", f.input),
              ...appFlag(f.app_id)]),
    curl: curl("POST", p(f.instance_id, "raise"), { event_name: f.event_name || "EVENT", input: f.input || null },
               { appID: f.app_id }),
  }),
  purge: (f) => ({
    cli: cli(["purge", id(f.instance_id), f.force ? "--force" : null, ...appFlag(f.app_id)]),
    curl: curl("POST", p(f.instance_id, "purge"), { force: !!f.force }, { appID: f.app_id }),
  }),
  rerun: (f) => ({
    cli: cli(["rerun", id(f.instance_id), ...flag("-e", f.event_id), ...flag("--new-instance-id", f.new_instance_id),
              ...flag("-x", f.input), ...appFlag(f.app_id)]),
    curl: curl("POST", p(f.instance_id, "rerun"), rerunBody(f), { appID: f.app_id }),
  }),
};

export function startBody(f) {
  const body = { workflow_name: f.workflow_name || "WORKFLOW" };
  if (f.instance_id) body.instance_id = f.instance_id;
  if (f.input) body.input = f.input;
  if (f.start_at) body.start_at = f.start_at;
  return body;
}

export function rerunBody(f) {
  const body = { event_id: Number(f.event_id) };
  if (f.new_instance_id) body.new_instance_id = f.new_instance_id;
  if (f.input) {
    body.input = f.input;
    body.overwrite_input = true;
  }
  return body;
}

/** Bulk commands by filter: `durahub workflow suspend -w NAME -s STATUS --prefix P -y`. */
export function bulkCli(action, filter) {
  const words = [action];
  if (filter.workflow_name) words.push(...flag("-w", filter.workflow_name));
  for (const status of filter.statuses || []) words.push("-s", status);
  if (filter.instance_id_prefix) words.push(...flag("--prefix", filter.instance_id_prefix));
  words.push(...appFlag(filter.app_id));
  return cli(words);
}
