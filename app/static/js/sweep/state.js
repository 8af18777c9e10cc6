/* What the grid page's panels share: the summary from the server (cells with their n, mean,
 * std and clipped 95% interval), the grid's runs by id (statuses change live), and helpers
 * to name cells. Every panel reads this; only main.js loads it. */

import { api, apiAll } from "../lib/api.js";
import { label } from "../lib/format.js";
import { pageData } from "../lib/page.js";

export const sweepId = pageData.sweep_id;

export const state = {
  sweep: null, // GET /api/sweeps/{id}
  runs: new Map(), // run id -> run (without result)
  baseline: "", // "activation:relu,lr_ratio:2:1:1", or "" for the API's default
};

export async function loadSummary() {
  const q = state.baseline ? `?baseline=${encodeURIComponent(state.baseline)}` : "";
  state.sweep = await api(`/api/sweeps/${sweepId}${q}`);
}

export async function loadRuns() {
  const items = await apiAll("/api/runs", { sweep_id: sweepId, sort: "id" });
  state.runs.clear();
  for (const r of items) state.runs.set(r.id, r);
}

/** Cells over some factors only (the others pooled), from the server. */
export async function loadCells(by) {
  const all = state.sweep.factors || [];
  if (by.length === all.length && by.every((f) => all.includes(f))) return state.sweep.cells || [];
  const page = await api(`/api/sweeps/${sweepId}/cells?by=${encodeURIComponent(by.join(","))}`);
  return page.cells;
}

export const key = (v) => (v === null || v === undefined ? "" : String(v));

/** A factor's values in the grid's order, then any a run has that the grid does not list. */
export function factorValues(factor) {
  const fromGrid = ((state.sweep.grid || {})[factor] || []).map(key);
  const out = fromGrid.slice();
  for (const run of state.runs.values()) {
    const v = key((run.config || {})[factor]);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

export function cellLabel(k) {
  return Object.entries(k || {}).map(([f, v]) => label(f, v)).join(" · ");
}

/** "93.12 ± 0.41" (percent) from fractions; the std only when there are two or more runs. */
export function fmtMean(mean, std, n) {
  if (mean === null || mean === undefined) return "—";
  const m = (mean * 100).toFixed(2);
  return std !== null && std !== undefined && n > 1 ? `${m} ± ${(std * 100).toFixed(2)}` : m;
}

/** The 95% interval as text; with fewer than three runs it is too wide to mean anything. */
export function fmtInterval(cell) {
  if (!cell.n) return "—";
  if (cell.n === 1) return "n = 1: no interval";
  if (cell.n < 3) return `n = ${cell.n}: interval too wide to read`;
  if (!cell.ci95) return "—";
  return `${(cell.ci95[0] * 100).toFixed(2)} – ${(cell.ci95[1] * 100).toFixed(2)}`;
}

export function statusCounts(list) {
  const counts = {};
  for (const r of list) counts[r.status] = (counts[r.status] || 0) + 1;
  return counts;
}
