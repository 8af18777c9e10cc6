/* Grid page cells table: one row per cell with its runs as status chips, n, mean ± std,
 * the 95% interval (flagged below three runs), the difference from the baseline cell and
 * Welch's p, and the report's figure where there is one. The table is built when the
 * summary changes; a run's status change only updates its chip. */

import { byId, clear, el } from "../lib/dom.js";
import { fieldLabel, label, pct } from "../lib/format.js";
import { STATUSES } from "../lib/status.js";
import { cellLabel, fmtInterval, fmtMean, state, statusCounts } from "./state.js";

const chips = new Map(); // run id -> its chip element

function chipTitle(id) {
  const run = state.runs.get(id);
  const status = run ? run.status : "queued";
  const c = (run && run.config) || {};
  let title = `run #${id}${c.seed !== undefined ? ` (seed ${c.seed})` : ""}: ${status}`;
  if (run && run.status === "running") title += `, epoch ${run.epochs_done || 0}/${run.epochs_total || c.epochs || "?"}`;
  if (run && run.final_test_acc !== null && run.final_test_acc !== undefined) title += `, ${pct(run.final_test_acc)}`;
  return { status, title };
}

/** Bring one chip up to date with its run (status colour, fill of a running run, title). */
export function updateChip(id) {
  const a = chips.get(id);
  if (!a) return;
  const run = state.runs.get(id);
  const { status, title } = chipTitle(id);
  a.className = `chip st-${status}`;
  a.title = title;
  a.setAttribute("aria-label", title);
  a.dataset.status = status;
  let fill = a.querySelector(".fill");
  if (status === "running") {
    const total = (run && (run.epochs_total || (run.config || {}).epochs)) || 1;
    if (!fill) a.append((fill = el("span", { class: "fill" })));
    fill.style.width = `${Math.round((100 * ((run && run.epochs_done) || 0)) / total)}%`;
  } else if (fill) fill.remove();
}

function chip(id) {
  const a = el("a", { href: `/runs/${id}` });
  chips.set(id, a);
  updateChip(id);
  return a;
}

export function renderLegend() {
  const box = clear(byId("status-legend"));
  box.append(el("span", {}, "Each square is one run:"));
  for (const s of STATUSES) box.append(el("span", {}, el("span", { class: `chip st-${s}` }), s === "succeeded" ? "done" : s));
}

export function renderBaselineSelect() {
  const select = byId("baseline-select");
  const cells = state.sweep.cells || [];
  clear(select);
  for (const c of cells) {
    const value = Object.entries(c.key).map(([f, v]) => `${f}:${v}`).join(",");
    select.append(el("option", { value, selected: c.is_baseline }, cellLabel(c.key)));
  }
  select.disabled = cells.length < 2;
}

const signed = (x) => (x === null || x === undefined ? "—" : `${x > 0 ? "+" : x < 0 ? "−" : "±"}${Math.abs(x * 100).toFixed(2)}`);

/** actions(cell, ids) -> buttons for a row (cancel, retry, curves); given by main.js. */
export function renderCells(actions) {
  const table = clear(byId("cells-table"));
  chips.clear();
  const cells = state.sweep.cells || [];
  const factors = state.sweep.factors || [];
  // the report's figures go here unless the report-shaped table shows them already
  const hasPaper = byId("paper-card").hidden && cells.some((c) => c.paper_test_acc !== null && c.paper_test_acc !== undefined);
  const best = state.sweep.best;
  const head = [
    ...factors.map((f) => el("th", { scope: "col" }, fieldLabel(f))),
    el("th", { scope: "col" }, "Runs"),
    el("th", { scope: "col", class: "num" }, "n"),
    el("th", { scope: "col", class: "num" }, "Mean ± std (%)"),
    el("th", { scope: "col", class: "num" }, "95% CI (%)"),
    el("th", { scope: "col", class: "num" }, "Δ baseline"),
    el("th", { scope: "col", class: "num" }, "p (Welch)"),
  ];
  if (hasPaper) head.push(el("th", { scope: "col", class: "num" }, "Report (%)"), el("th", { scope: "col", class: "num" }, "Ours − report"), el("th", { scope: "col", class: "num" }, "Significant?"));
  head.push(el("th", { scope: "col" }, ""));
  table.append(el("thead", {}, el("tr", {}, head)));
  const body = el("tbody");
  for (const c of cells) {
    const ids = c.run_ids || [];
    const isBest = best && JSON.stringify(best.key) === JSON.stringify(c.key);
    const row = [
      ...factors.map((f) => el("td", { class: "nowrap" }, label(f, c.key[f]))),
      el("td", {}, el("div", { class: "chips" }, ids.map(chip))),
      el("td", { class: "num" }, c.n ?? 0),
      el("td", { class: "num" }, fmtMean(c.mean, c.std, c.n), isBest ? el("span", { class: "best-mark", title: "best cell so far" }, " ★") : null),
      el("td", { class: `num${c.n && c.n < 3 ? " muted small wrap" : ""}`, title: c.ci95 ? `${(c.ci95[0] * 100).toFixed(2)} – ${(c.ci95[1] * 100).toFixed(2)} (clipped to 0–100%)` : null }, fmtInterval(c)),
      el("td", { class: "num" }, c.is_baseline ? "baseline" : signed(c.diff_from_baseline)),
      el("td", { class: "num" }, c.p_value === null || c.p_value === undefined ? "—" : c.p_value.toPrecision(2)),
    ];
    if (hasPaper) {
      let sig = "—";
      if (c.paper_p_value !== null && c.paper_p_value !== undefined) sig = `${c.paper_p_value < 0.05 ? "yes" : "no"} (p=${c.paper_p_value.toPrecision(2)})`;
      else if (c.paper_test_acc !== null && c.paper_test_acc !== undefined && c.n === 1) sig = "n < 2";
      row.push(
        el("td", { class: "num" }, c.paper_test_acc === null || c.paper_test_acc === undefined ? "—" : (c.paper_test_acc * 100).toFixed(2)),
        el("td", { class: "num" }, signed(c.diff_from_paper)),
        el("td", { class: "num" }, sig),
      );
    }
    const counts = ids.some((id) => state.runs.has(id)) ? statusCounts(ids.map((id) => state.runs.get(id)).filter(Boolean)) : c.statuses || {};
    row.push(el("td", { class: "actions" }, el("div", { class: "actions-row" }, actions(c, ids, counts))));
    body.append(el("tr", { class: c.is_baseline ? "selected" : "" }, row));
  }
  if (!cells.length) body.append(el("tr", {}, el("td", { colspan: head.length, class: "muted" }, "No cells.")));
  table.append(body);
}
