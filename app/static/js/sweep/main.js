/* Grid page: loads the summary and runs, has each panel draw itself, and follows the grid
 * live through /api/sweeps/{id}/events. A run event updates that run's chip at once; the
 * summary (statistics, heatmap, marginals) is reloaded from the server at most once a
 * second or so, not recomputed here. */

import { byId, clear, debounce, el, poll, toast } from "../lib/dom.js";
import { CHANGING } from "../lib/status.js";
import { renderAnalysis } from "./analysis.js";
import { renderBaselineSelect, renderCells, renderLegend, updateChip } from "./cells.js";
import { renderHeader, renderProgress, sweepAction } from "./header.js";
import { renderControls, renderHeatmaps, setCellClick } from "./heatmap.js";
import { renderMarginals } from "./marginals.js";
import { closeOverlay, drawOverlaySoon, isShown, showOverlay } from "./overlay.js";
import { renderPaper } from "./paper.js";
import { renderParcoords } from "./parcoords.js";
import { loadRuns, loadSummary, state, sweepId } from "./state.js";

let stream = null;

function rowActions(cell, ids, counts) {
  const out = [];
  if ((counts.queued || 0) + (counts.running || 0)) {
    out.push(el("button", { type: "button", class: "btn sm danger", onclick: () => sweepAction("cancel", ids, refreshAll) }, "Cancel"));
  }
  if ((counts.failed || 0) + (counts.cancelled || 0) + (counts.lost || 0)) {
    out.push(el("button", { type: "button", class: "btn sm", onclick: () => sweepAction("retry", ids, refreshAll) }, "Retry"));
  }
  out.push(el("button", { type: "button", class: "btn sm", onclick: () => showOverlay(cell.key, ids) }, "Curves"));
  return out;
}

/** Everything drawn from the summary. */
function renderSummary() {
  renderHeader();
  renderProgress(refreshAll);
  renderPaper();
  renderCells(rowActions);
  renderBaselineSelect();
  renderParcoords();
  const heatmaps = renderHeatmaps();
  // What is below the heatmaps comes once they are drawn: the marginal means' charts, and
  // the analysis's requests (model fits on the server), which would hold up the heatmaps'
  // own and which nothing waits for.
  heatmaps
    .catch(() => {})
    .then(() => {
      renderMarginals();
      renderAnalysis().catch(() => {});
    });
  return heatmaps;
}

async function refreshSummary() {
  await loadSummary();
  await renderSummary();
}
const refreshSummarySoon = debounce(() => refreshSummary().catch(() => {}), 1200);

async function refreshAll() {
  await Promise.all([loadSummary(), loadRuns()]);
  await renderSummary();
  drawOverlaySoon();
  // A retried grid is live again after its stream ended.
  if ([...state.runs.values()].some((run) => CHANGING.has(run.status))) openStream();
}

function openStream() {
  if (stream) return;
  const es = new EventSource(`/api/sweeps/${sweepId}/events`);
  stream = es;
  es.addEventListener("run", (e) => {
    const data = JSON.parse(e.data);
    state.runs.set(data.id, { ...(state.runs.get(data.id) || {}), ...data });
    updateChip(data.id);
    refreshSummarySoon();
    if (isShown(data.id)) drawOverlaySoon();
  });
  es.addEventListener("epoch", (e) => {
    const data = JSON.parse(e.data);
    const run = state.runs.get(data.run_id);
    if (run) {
      run.epochs_done = Math.max(run.epochs_done || 0, data.epoch);
      updateChip(data.run_id);
    }
    if (isShown(data.run_id)) drawOverlaySoon();
  });
  // Every run is final: nothing more will come (a retry reopens it from refreshAll).
  es.addEventListener("end", () => {
    es.close();
    stream = null;
    refreshSummarySoon();
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      stream = null;
      setTimeout(() => {
        refreshAll().catch(() => {});
        openStream();
      }, 5000);
    }
  };
}

byId("baseline-select").addEventListener("change", (e) => {
  state.baseline = e.target.value;
  refreshSummary().catch((err) => toast(err.message, "error"));
});
byId("cell-curves-close").addEventListener("click", closeOverlay);
setCellClick((want) => showOverlay(want));

async function start() {
  try {
    await Promise.all([loadSummary(), loadRuns()]);
  } catch (e) {
    if (e.status === 401) return;
    const box = byId("sweep-missing");
    box.hidden = false;
    clear(box).append(
      e.status === 404 ? `Grid #${sweepId} does not exist. ` : `Could not load grid #${sweepId}: ${e.message} `,
      el("a", { href: "/sweeps" }, "All grids"),
    );
    byId("sweep-sub").textContent = "";
    return;
  }
  renderControls();
  renderLegend();
  await renderSummary();
  openStream();
  // a safety net if events are missed (e.g. a proxy that buffers them)
  poll(() => refreshAll(), 20000);
}

start();
