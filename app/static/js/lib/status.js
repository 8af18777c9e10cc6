/* The run status vocabulary, from the server: handed over with the page (its page data), or
 * else GET /api/statuses once per page. Which statuses are active, final, changing (still
 * followed live: lost runs are resumed by workers) and retryable. No copy of these sets
 * lives in the browser's code. */

import { api } from "./api.js";
import { el, toast } from "./dom.js";
import { pageData } from "./page.js";

async function load() {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api("/api/statuses");
    } catch (e) {
      if (attempt >= 2 || e.status === 401) throw e;
      await new Promise((resolve) => setTimeout(resolve, 500 * (attempt + 1)));
    }
  }
}

const sets = pageData.statuses || (await load());

export const STATUSES = sets.all;
export const ACTIVE = new Set(sets.active);
export const FINAL = new Set(sets.final);
export const CHANGING = new Set(sets.changing);
export const RETRYABLE = new Set(sets.retryable);

/* A status badge; a running run with no finished batch for a while (the server's
 * stalled_seconds) shows as stalled, before the worker gives it up as failed. */
export function badge(status, stalledSeconds = null) {
  if (status === "running" && stalledSeconds != null) {
    const title = `no batch finished for ${Math.round(stalledSeconds)} s`;
    return el("span", { class: "badge st-stalled", text: "stalled", title });
  }
  return el("span", { class: `badge st-${status}`, text: status });
}

export function progressBar(fraction, { small = false } = {}) {
  const f = Math.max(0, Math.min(1, fraction || 0));
  const inner = el("div", { style: { width: `${(f * 100).toFixed(1)}%` } });
  return el(
    "div",
    {
      class: `progress${small ? " small" : ""}${f >= 1 ? " done" : ""}`,
      role: "progressbar",
      "aria-valuemin": 0,
      "aria-valuemax": 100,
      "aria-valuenow": Math.round(f * 100),
    },
    inner,
  );
}

/** Run an action (cancel/retry/delete) with a toast for the outcome. */
export async function runAction(action, runId) {
  const paths = {
    cancel: ["POST", `/api/runs/${runId}/cancel`],
    retry: ["POST", `/api/runs/${runId}/retry`],
    delete: ["DELETE", `/api/runs/${runId}`],
  };
  const [method, path] = paths[action];
  if (action === "delete" && !window.confirm(`Delete run #${runId} and its checkpoint?`)) {
    return false;
  }
  try {
    await api(path, { method });
    toast(`Run #${runId}: ${action === "delete" ? "deleted" : action + " requested"}`);
    return true;
  } catch (e) {
    if (e.status !== 401) toast(`Run #${runId}: ${e.message}`, "error");
    return false;
  }
}
