/* Grid page head: title, factors, the best cell so far, progress and the grid's actions. */

import { api } from "../lib/api.js";
import { byId, clear, el, toast } from "../lib/dom.js";
import { eta, fieldLabel, label, pct, when } from "../lib/format.js";
import { FINAL, STATUSES, progressBar } from "../lib/status.js";
import { cellLabel, state, statusCounts, sweepId } from "./state.js";

export function renderHeader() {
  const sweep = state.sweep;
  byId("sweep-title").textContent = `Grid #${sweep.id}: ${sweep.name || "unnamed"}`;
  document.title = `Grid #${sweep.id} · ResNet Lab`;
  const base = sweep.base || {};
  const dataset = base.dataset || (sweep.grid && sweep.grid.dataset ? sweep.grid.dataset.join("/") : "cifar10");
  byId("sweep-sub").textContent = [
    label("dataset", dataset),
    `factors: ${(sweep.factors || []).map(fieldLabel).join(" × ") || "none"}`,
    `seeds ${(sweep.seeds || []).join(", ")}`,
    sweep.preset ? `preset ${sweep.preset}` : null,
    `created ${when(sweep.created_at)}`,
  ]
    .filter(Boolean)
    .join(" · ");
  const best = byId("best-cell");
  const b = sweep.best;
  best.hidden = !b;
  if (b) {
    clear(best).append("Best cell so far: ", el("strong", { id: "best-cell-key" }, cellLabel(b.key) || "all runs"), ` — ${pct(b.mean)} mean final test accuracy (n = ${b.n})`);
  }
}

export function renderProgress(onAction) {
  const sweep = state.sweep;
  const counts = sweep.counts || statusCounts([...state.runs.values()]);
  const total = sweep.total_runs || state.runs.size;
  const finished = STATUSES.filter((s) => FINAL.has(s)).reduce((n, s) => n + (counts[s] || 0), 0);
  const progress = sweep.progress ?? (total ? finished / total : 0);
  clear(byId("sweep-progress-bar")).append(progressBar(progress));
  byId("sweep-progress-text").textContent = `${finished} of ${total} runs finished (${Math.round(progress * 100)}% of the work)`;
  const stats = clear(byId("sweep-stats"));
  const active = (counts.queued || 0) + (counts.running || 0);
  stats.append(
    el("div", { class: "stat" }, el("div", { class: "label" }, "Runs"), el("div", { class: "value" }, total)),
    el("div", { class: "stat" }, el("div", { class: "label" }, "ETA"), el("div", { class: "value", id: "sweep-eta" }, active ? eta(sweep.eta_seconds) : "done")),
  );
  for (const s of STATUSES) {
    if (!counts[s] && (s === "lost" || s === "cancelled")) continue;
    stats.append(el("div", { class: "stat" }, el("div", { class: "label" }, s), el("div", { class: "value", "data-count": s }, counts[s] || 0)));
  }
  renderActions(counts, onAction);
}

function renderActions(counts, onAction) {
  const box = clear(byId("sweep-actions"));
  const active = (counts.queued || 0) + (counts.running || 0);
  const retryable = (counts.failed || 0) + (counts.cancelled || 0) + (counts.lost || 0);
  if (active) {
    box.append(
      el("button", {
        type: "button",
        class: "btn danger",
        "data-action": "cancel-all",
        onclick: () => sweepAction("cancel", null, onAction, `Cancel all ${active} queued and running runs of this grid?`),
      }, "Cancel grid"),
    );
  }
  if (retryable) {
    box.append(el("button", { type: "button", class: "btn", "data-action": "retry-all", onclick: () => sweepAction("retry", null, onAction) }, `Retry all failed (${retryable})`));
  }
  box.append(
    el("a", { class: "btn", href: `/api/sweeps/${sweepId}.csv`, download: `grid-${sweepId}.csv` }, "Export CSV"),
    el("a", { class: "btn", href: `/?sweep_id=${sweepId}` }, "Runs list"),
  );
  const done = [...state.runs.values()].filter((r) => r.status === "succeeded").map((r) => r.id);
  if (done.length) {
    box.append(el("a", { class: "btn", href: `/compare?run_ids=${done.slice(0, 60).join(",")}` }, "Compare finished runs"));
  }
}

/** Cancel or retry the grid's runs (or only `runIds`), then let the page reload its data. */
export async function sweepAction(action, runIds, onAction, question) {
  if (question && !window.confirm(question)) return;
  try {
    await api(`/api/sweeps/${sweepId}/${action}`, { method: "POST", body: runIds ? { run_ids: runIds } : undefined });
    toast(action === "cancel" ? "Cancel requested." : "Re-queued.");
  } catch (e) {
    if (e.status !== 401) toast(e.message, "error");
  }
  await onAction();
}
