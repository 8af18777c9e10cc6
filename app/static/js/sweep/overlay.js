/* The curves of one cell's runs, opened by a click on a heatmap square or a row's button. */

import { api } from "../lib/api.js";
import * as Charts from "../lib/charts.js";
import { byId, debounce } from "../lib/dom.js";
import { cellLabel, key, state } from "./state.js";

let overlay = null; // {title, runIds}

export const isShown = (runId) => Boolean(overlay && overlay.runIds.includes(runId));

export async function showOverlay(want, runIds) {
  const ids =
    runIds ||
    [...state.runs.values()].filter((r) => Object.entries(want).every(([f, v]) => key((r.config || {})[f]) === v)).map((r) => r.id);
  // name the cell in the grid's own factor order
  const ordered = {};
  for (const f of state.sweep.factors || []) if (f in want) ordered[f] = want[f];
  overlay = { runIds: ids, title: cellLabel({ ...ordered, ...want }) || "all runs" };
  const card = byId("cell-curves-card");
  card.hidden = false;
  byId("cell-curves-title").textContent = `Runs of ${overlay.title} (${ids.length})`;
  await drawOverlay();
  card.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

export async function drawOverlay() {
  if (!overlay) return;
  const div = byId("cell-curves");
  if (!overlay.runIds.length) {
    Charts.purge(div);
    div.textContent = "No runs in this cell.";
    return;
  }
  const data = await api(`/api/metrics?format=columns&run_ids=${overlay.runIds.slice(0, 50).join(",")}`);
  const series = [];
  (data.runs || []).forEach((m, i) => {
    const run = state.runs.get(m.run_id) || {};
    const seed = run.config ? ` seed ${run.config.seed}` : "";
    const color = Charts.PALETTE[i % Charts.PALETTE.length];
    const x = m.epoch; // one list per field (format=columns)
    series.push({ name: `#${m.run_id}${seed} test`, group: `r${m.run_id}`, x, y: m.test_acc, color });
    series.push({ name: `#${m.run_id}${seed} train`, group: `r${m.run_id}`, x, y: m.train_acc, color, dash: "dot", width: 1.5 });
  });
  if (!div.data) div.textContent = "";
  await Charts.curves(div, series, { ytitle: "accuracy (%)", percent: true });
}

export const drawOverlaySoon = debounce(() => drawOverlay().catch(() => {}), 800);

export function closeOverlay() {
  overlay = null;
  byId("cell-curves-card").hidden = true;
}
