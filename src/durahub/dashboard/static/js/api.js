// The /durahub/v1 API from the page: JSON in and out, the API token (when the server wants one) as the
// dapr-api-token header, errors as exceptions carrying the server's message.

export const API = "/durahub/v1";
const TOKEN_KEY = "durahub-api-token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function tokenRequired() {
  return document.documentElement.dataset.auth === "token";
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  if (token()) out["dapr-api-token"] = token();
  return out;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value === null || value === undefined || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) q.append(key, String(v));
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

export function url(path, params) {
  return `${API}${path}${query(params)}`;
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

async function request(method, path, params, body, accept) {
  const init = { method, headers: headers(accept ? { Accept: accept } : {}) };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url(path, params), init);
  if (response.status === 401) onUnauthorized();
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const data = await response.json();
      const detail = data.detail ?? data.message;
      message = typeof detail === "string" ? detail : JSON.stringify(detail);
    } catch {
      /* not JSON: keep the status line */
    }
    throw new ApiError(response.status, message);
  }
  return accept && accept !== "application/json" ? response.text() : response.json();
}

export const get = (path, params) => request("GET", path, params);
export const getText = (path, params, accept) => request("GET", path, params, undefined, accept);
export const post = (path, body, params) => request("POST", path, params, body ?? {});

/** Every instance matching a filter, a page at a time (for counts before a bulk action). */
export async function countMatching(params) {
  let cursor = null;
  let count = 0;
  do {
    const page = await get("/instances", { ...params, limit: 1000, cursor });
    count += page.instances.length;
    cursor = page.next_cursor;
  } while (cursor);
  return count;
}
