/* What the grid shows: the ANOVA table, each factor's effect with its interval, interaction
 * plots (drawn only when scrolled into view) and the seeds a difference would need, all
 * computed by the server (/api/sweeps/{id}/anova, /effects, /power). Reloaded only when the
 * number of succeeded runs, the metric or the baseline changes. */

import { api } from "../lib/api.js";
import * as Charts from "../lib/charts.js";
import { byId, clear, el, toast } from "../lib/dom.js";
import { duration, fieldLabel, label } from "../lib/format.js";
import { state, sweepId } from "./state.js";

const ACCURACIES = new Set(["final_test_acc", "best_test_acc"]);
const METRIC_NAMES = {
  final_test_acc: "final test accuracy",
  best_test_acc: "best test accuracy",
  final_test_loss: "final test loss",
  final_train_loss: "final train loss",
};

let shown = ""; // what the panel was last drawn for
let sequence = 0; // answers to an older request are dropped

const metric = () => byId("analysis-metric").value;
const isAcc = () => ACCURACIES.has(metric());
const MINUS = "\u2212";

/** A difference in points (accuracies) or loss units, with a true minus sign. */
function diffText(x, digits = 2) {
  if (x === null || x === undefined) return "—";
  const text = isAcc() ? (x * 100).toFixed(digits) : x.toPrecision(3);
  return text.replace("-", MINUS);
}

function pText(p) {
  if (p === null || p === undefined) return "—";
  return p < 0.001 ? "< 0.001" : p.toFixed(3);
}

function query(extra = {}) {
  const params = new URLSearchParams({ metric: metric(), ...extra });
  return params.toString();
}

/** The Report links: the study as one offline HTML file and as Markdown, for the metric and
 * baseline chosen here (the server writes both from the same numbers as this panel). */
function renderReportLinks(baseline) {
  for (const [id, ext] of [["report-html", "html"], ["report-md", "md"]]) {
    byId(id).href = `/api/sweeps/${sweepId}/report.${ext}?${query(baseline)}`;
  }
}

export async function renderAnalysis(force = false) {
  const sweep = state.sweep;
  const key = [(sweep.counts || {}).succeeded || 0, metric(), state.baseline].join("|");
  if (!force && key === shown) return;
  shown = key;
  const mine = ++sequence;
  const baseline = state.baseline ? { baseline: state.baseline } : {};
  renderReportLinks(baseline);
  try {
    const [anova, effects] = await Promise.all([
      api(`/api/sweeps/${sweepId}/anova?${query()}`),
      api(`/api/sweeps/${sweepId}/effects?${query(baseline)}`),
    ]);
    if (mine !== sequence) return;
    renderAnova(anova);
    renderEffects(effects);
    renderInteractions(effects.interactions);
    await renderPower();
  } catch (e) {
    shown = "";
    if (e.status !== 401) byId("anova-model").textContent = `Could not load the analysis: ${e.message}`;
  }
}

function renderAnova(data) {
  const model = data.model ? `Model: ${data.model}, n = ${data.n} finished runs. ` : "";
  byId("anova-model").textContent = `${model}${data.note}.`;
  const seeds = (state.sweep.seeds || []).length;
  byId("anova-wrap").hidden = !data.rows.length;
  const table = clear(byId("anova-table"));
  if (!data.rows.length) return;
  const num = (x) => (x === null || x === undefined ? "—" : Number(x.toPrecision(4)).toString());
  table.append(
    el("thead", {}, el("tr", {}, ["Source", "Sum of squares", "df", "F", "p", "partial η²", "Reading"].map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      data.rows.map((r) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, r.factors.map(fieldLabel).join(" × ")),
          el("td", {}, num(r.sum_sq)),
          el("td", {}, r.df),
          el("td", {}, r.F === null ? "—" : r.F.toFixed(2)),
          el("td", {}, pText(r.p)),
          el("td", {}, r.partial_eta_sq === null ? "—" : r.partial_eta_sq.toFixed(2)),
          el("td", { class: "muted" }, r.p !== null && r.p < 0.05 ? "detected at α = 0.05" : `no detectable effect at ${seeds} seed${seeds === 1 ? "" : "s"} per cell`),
        ),
      ),
      el("tr", {}, el("th", { scope: "row" }, "Residual"), el("td", {}, num(data.residual.sum_sq)), el("td", {}, data.residual.df), el("td", { colspan: 4, class: "muted" }, `residual sd ${diffText(data.residual.sd)}${isAcc() ? " points" : ""}`)),
    ),
  );
}

function renderEffects(data) {
  byId("effects-method").textContent = data.residual ? `Each level against the reference level: ${data.method}.` : `${data.note}.`;
  const list = clear(byId("effects-list"));
  const unit = isAcc() ? " points" : "";
  for (const factor of data.effects) {
    const f = factor.factor;
    for (const level of factor.levels) {
      if (level.diff === null) continue;
      const interval = level.ci95 ? ` [${diffText(level.ci95[0])}, ${diffText(level.ci95[1])}]` : "";
      const unsure = level.ci95 && level.ci95[0] <= 0 && level.ci95[1] >= 0;
      list.append(
        el(
          "li",
          { class: unsure ? "muted" : null },
          el("strong", {}, `${fieldLabel(f)}: `),
          `${label(f, level.level)} ${MINUS} ${label(f, factor.reference)}: ${diffText(level.diff)}${unit}${interval}`,
          unsure ? " (interval includes 0)" : "",
        ),
      );
    }
  }
}

// ---------------------------------------------------------------- interaction plots, lazily

const observer = new IntersectionObserver(
  (entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      drawInteraction(entry.target);
    }
  },
  { rootMargin: "200px" },
);

function drawInteraction(div) {
  const pair = div._pair;
  const pct = ACCURACIES.has(div._metric);
  Charts.interaction(div, {
    x: pair.series[0].points.map((p) => label(pair.across, p.level)),
    series: pair.series.map((s) => ({
      name: label(pair.factor, s.level),
      y: s.points.map((p) => p.mean),
      lo: s.points.map((p) => (p.ci95 ? p.ci95[0] : null)),
      hi: s.points.map((p) => (p.ci95 ? p.ci95[1] : null)),
    })),
    percent: pct,
    title: `${fieldLabel(pair.factor)} across ${fieldLabel(pair.across)}`,
    xtitle: fieldLabel(pair.across),
    ytitle: `${METRIC_NAMES[div._metric]}${pct ? " (%)" : ""}`,
  });
  div._drawn = true;
}

function renderInteractions(pairs) {
  const box = byId("interactions");
  const usable = pairs.filter((p) => p.series.some((s) => s.points.some((pt) => pt.n)));
  if (!usable.length) {
    clear(box).append(el("p", { class: "muted small" }, "Interaction plots need two factors that vary, and finished runs."));
    return;
  }
  if (box.querySelector("p")) clear(box);
  const ids = usable.map((p) => `${p.factor}|${p.across}`);
  for (const child of [...box.children]) if (!ids.includes(child.dataset.pair)) child.remove();
  usable.forEach((pair, i) => {
    let panel = box.querySelector(`[data-pair="${CSS.escape(ids[i])}"]`);
    if (!panel) {
      panel = el("div", { class: "panel", dataset: { pair: ids[i] } }, el("div", { class: "chart" }));
      box.append(panel);
    }
    const div = panel.firstChild;
    div._pair = pair;
    div._metric = metric();
    if (div._drawn) drawInteraction(div);
    else observer.observe(div);
  });
}

// ---------------------------------------------------------------- seeds needed

async function renderPower() {
  const form = byId("power-form");
  const values = Object.fromEntries(new FormData(form));
  byId("power-unit").textContent = isAcc() ? "points" : "loss units";
  const list = clear(byId("power-list"));
  clear(byId("power-actions"));
  let data;
  try {
    data = await api(`/api/sweeps/${sweepId}/power?${query(values)}`);
  } catch (e) {
    if (e.status !== 401) byId("power-note").textContent = e.message;
    return;
  }
  byId("power-note").textContent = `${data.note}.`;
  const diff = isAcc() ? `${values.difference} points` : values.difference;
  for (const f of data.factors) {
    const more = f.extra_seeds
      ? ` (${f.extra_seeds} more per cell: ${f.extra_runs} runs, ${data.mean_run_seconds ? `about ${duration(f.extra_train_seconds)} of training on one worker` : "time unknown until a run finishes"})`
      : ": enough";
    list.append(
      el("li", {}, `To tell two levels of ${fieldLabel(f.factor)} apart at ${diff} you need n ≈ ${f.seeds_per_cell} seeds per cell; you have ${data.seeds}${more}.`),
    );
  }
  const extra = Math.max(0, ...data.factors.map((f) => f.extra_seeds));
  if (extra) byId("power-actions").append(queueButton(extra));
}

/** Queues the missing seeds as a new grid with the same base and grid, seeds numbered on. */
function queueButton(extra) {
  const sweep = state.sweep;
  const first = Math.max(-1, ...(sweep.seeds || [])) + 1;
  const seeds = Array.from({ length: extra }, (_, i) => first + i);
  const runs = seeds.length * Object.values(sweep.grid || {}).reduce((n, v) => n * v.length, 1);
  const queue = async (e) => {
    if (!confirm(`Queue ${runs} runs (seeds ${seeds[0]}–${seeds[seeds.length - 1]}) as a new grid?`)) return;
    e.target.disabled = true;
    try {
      const made = await api("/api/sweeps", {
        method: "POST",
        body: { name: `${sweep.name} (seeds ${seeds[0]}–${seeds[seeds.length - 1]})`.slice(0, 200), base: sweep.base, grid: sweep.grid, seeds },
      });
      toast(`Queued grid #${made.id}: ${made.total_runs} runs`);
    } catch (err) {
      if (err.status !== 401) toast(err.message, "error");
    } finally {
      e.target.disabled = false;
    }
  };
  return el("button", { type: "button", class: "btn sm", id: "queue-seeds", onclick: queue, title: "A new grid: its runs are analysed on its own page" }, `Queue the extra seeds (${runs} runs)`);
}

byId("analysis-metric").addEventListener("change", () => renderAnalysis(true));
byId("power-form").addEventListener("submit", (e) => {
  e.preventDefault();
  renderPower().catch((err) => toast(err.message, "error"));
});
