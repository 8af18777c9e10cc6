/* The JSON API client: CSRF header on state-changing requests, login redirect on 401, and
 * 422 details turned into messages a person can act on. */

export class ApiError extends Error {
  constructor(status, data) {
    super(ApiError.describe(status, data));
    this.status = status;
    this.data = data;
  }

  static describe(status, data) {
    const detail = data && data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((d) => {
          const loc = (d.loc || []).filter((p) => p !== "body" && p !== "query").join(".");
          return loc ? `${loc}: ${humanize(d)}` : humanize(d);
        })
        .join("; ");
    }
    return `request failed (HTTP ${status})`;
  }

  /** 422 details as [{field, path, msg}], field = last element of loc. */
  get fieldErrors() {
    const detail = this.data && this.data.detail;
    if (!Array.isArray(detail)) return [];
    return detail.map((d) => {
      const loc = (d.loc || []).filter((p) => p !== "body");
      return { field: loc.length ? loc[loc.length - 1] : null, path: loc, msg: humanize(d) };
    });
  }
}

/** Pydantic's messages, reworded for people ("at least 1", not "Input should be greater
 * than or equal to 1"). Unknown ones pass through without their "Value error, " prefix. */
export function humanize(d) {
  const ctx = d.ctx || {};
  const n = (v) => (typeof v === "number" ? v.toLocaleString("en") : v);
  switch (d.type) {
    case "greater_than_equal":
      return `at least ${n(ctx.ge)}`;
    case "greater_than":
      return `more than ${n(ctx.gt)}`;
    case "less_than_equal":
      return `at most ${n(ctx.le)}`;
    case "less_than":
      return `less than ${n(ctx.lt)}`;
    case "int_type":
    case "int_parsing":
    case "int_from_float":
      return "a whole number, e.g. 10";
    case "float_type":
    case "float_parsing":
      return "a number, e.g. 0.1";
    case "bool_type":
      return "yes or no";
    case "string_type":
      return "text";
    case "literal_error":
    case "enum":
      return `one of ${String(ctx.expected || "").replace(/'/g, "")}`;
    case "extra_forbidden":
      return "not a field of the config";
    case "missing":
      return "required";
    case "string_too_long":
      return `at most ${n(ctx.max_length)} characters`;
    case "too_long":
      return `at most ${n(ctx.max_length)} items`;
    case "too_short":
      return `at least ${n(ctx.min_length)} item${ctx.min_length === 1 ? "" : "s"}`;
    default:
      return String(d.msg || "invalid").replace(/^Value error, /, "");
  }
}

export function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    if (part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return null;
}

function loginUrl() {
  return "/login?next=" + encodeURIComponent(location.pathname + location.search);
}

/** fetch() a JSON API path; state-changing methods carry the CSRF header. A 401 opens the
 * login page, unless `login: false` (a request in the background must not leave a form). */
export async function api(path, { method = "GET", body, signal, login = true } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") {
    headers["Content-Type"] = "application/json";
    const token = cookie("rl_csrf");
    if (token) headers["X-CSRF-Token"] = token;
  }
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (resp.status === 401) {
    if (login) location.href = loginUrl();
    throw new ApiError(401, { detail: "login required" });
  }
  let data = null;
  const type = resp.headers.get("content-type") || "";
  if (resp.status !== 204 && type.includes("json")) {
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** Epoch rows ([{epoch, lr, test_acc, ...}]) from a run's epochs in columns, as the metrics
 * endpoints send them with `format=columns` (one list per field: far less to send and
 * parse than one object per epoch). */
export function epochRows(columns) {
  const fields = Object.keys(columns).filter((k) => Array.isArray(columns[k]));
  const n = (columns.epoch || []).length;
  const rows = new Array(n);
  for (let i = 0; i < n; i++) {
    const row = {};
    for (const f of fields) row[f] = columns[f][i];
    rows[i] = row;
  }
  return rows;
}

/** Every item of a paginated list endpoint (items/total/limit/offset). */
export async function apiAll(path, params = {}, pageSize = 500) {
  const items = [];
  let offset = 0;
  for (;;) {
    const q = new URLSearchParams({ ...params, limit: pageSize, offset });
    const page = await api(`${path}?${q}`);
    items.push(...page.items);
    offset += page.items.length;
    if (!page.items.length || offset >= page.total) return items;
  }
}

/** Whether the broker answers (/healthz's `broker`), or null when that cannot be told. A
 * queued run waits for a free worker, or, with the broker down, for the broker: runs are
 * stored all the same and their messages sent once it is back. */
export async function brokerReachable() {
  try {
    const resp = await fetch("/healthz", { headers: { Accept: "application/json" }, credentials: "same-origin" });
    const data = await resp.json();
    return typeof data.broker === "boolean" ? data.broker : null;
  } catch (e) {
    return null;
  }
}
