/* Compare page: any metric of chosen runs over epochs (log y, smoothing), one line per run or
 * one colour per value of a chosen field with mean ± std bands; the config fields that differ
 * and those all runs share; factors against final accuracy in parallel coordinates. */

import { api, apiAll, epochRows } from "../lib/api.js";
import * as Charts from "../lib/charts.js";
import { breakable, byId, clear, el, poll, toast } from "../lib/dom.js";
import { configValue, duration, fieldLabel, label, pct, rate } from "../lib/format.js";
import { pageData } from "../lib/page.js";
import { ACTIVE, badge } from "../lib/status.js";
import { METRICS, groupBy, groupSeries, runSeries } from "./compare_series.js";

const MAX_RUNS = 60;
let ids = pageData.run_ids || [];
let runs = [];
let rows = new Map(); // run id -> epoch rows
let differing = [];
let shared = [];

const controls = {
  metric: byId("metric"),
  group: byId("group-by"),
  log: byId("log-y"),
  smooth: byId("smoothing"),
  showRuns: byId("show-runs"),
};

function parseIds(text) {
  return [...new Set(text.split(/[\s,]+/).filter((p) => /^\d+$/.test(p)).map(Number))];
}

/** A run's legend entry: its id and name, then the first fields that differ, each named
 * ("#2 leaky baseline: activation LeakyReLU, width 6, seed 0"). */
function short(run) {
  const c = run.config || {};
  const parts = differing.slice(0, 4).map((f) => `${fieldLabel(f)} ${label(f, c[f])}`);
  const name = run.name ? ` ${run.name}` : "";
  return `#${run.id}${name}${parts.length ? `: ${parts.join(", ")}` : ""}`;
}

// ------------------------------------------------------------------ the view, in the URL

function readView() {
  const q = new URLSearchParams(location.search);
  if (q.get("metric") && METRICS[q.get("metric")]) controls.metric.value = q.get("metric");
  controls.log.checked = q.get("log") === "1";
  if (q.get("smooth")) controls.smooth.value = q.get("smooth");
  controls.showRuns.checked = q.get("runs") === "1";
  const group = q.get("group");
  return group === "none" ? "" : group;
}

function writeView() {
  const q = new URLSearchParams();
  if (ids.length) q.set("run_ids", ids.join(","));
  if (controls.metric.value !== "test_acc") q.set("metric", controls.metric.value);
  q.set("group", controls.group.value || "none");
  if (controls.log.checked && !controls.log.disabled) q.set("log", "1");
  if (Number(controls.smooth.value)) q.set("smooth", controls.smooth.value);
  if (controls.showRuns.checked) q.set("runs", "1");
  history.replaceState(null, "", `/compare${q.toString() ? `?${q}` : ""}`);
}

// ------------------------------------------------------------------ loading

async function load(wantGroup) {
  const empty = byId("compare-empty");
  const bodyBox = byId("compare-body");
  const errBox = byId("compare-error");
  empty.hidden = ids.length > 0;
  bodyBox.hidden = ids.length === 0;
  if (!ids.length) return;
  const wanted = ids.slice(0, MAX_RUNS);
  // one request for all of them, not one each
  const found = new Map((await apiAll("/api/runs", { run_ids: wanted.join(","), sort: "id" })).map((r) => [r.id, r]));
  runs = wanted.filter((id) => found.has(id)).map((id) => found.get(id));
  const missing = wanted.filter((id) => !found.has(id));
  const notes = [];
  if (missing.length) notes.push(`Not found: ${missing.map((i) => `#${i}`).join(", ")}.`);
  if (ids.length > MAX_RUNS) notes.push(`Showing the first ${MAX_RUNS} of ${ids.length} runs.`);
  errBox.hidden = !notes.length;
  errBox.textContent = notes.join(" ");
  if (!runs.length) {
    bodyBox.hidden = true;
    return;
  }
  const m = await api(`/api/metrics?format=columns&run_ids=${runs.map((r) => r.id).join(",")}`);
  rows = new Map((m.runs || []).map((r) => [r.run_id, epochRows(r)]));
  splitFields();
  renderGroupSelect(wantGroup);
  drawCurves();
  drawTables();
  drawParcoords();
}

/** Config fields that differ between the runs, and those every run shares. */
function splitFields() {
  const fields = [];
  for (const r of runs) for (const k of Object.keys(r.config || {})) if (!fields.includes(k)) fields.push(k);
  const distinct = (f) => new Set(runs.map((r) => JSON.stringify((r.config || {})[f]))).size;
  differing = fields.filter((f) => distinct(f) > 1);
  shared = fields.filter((f) => distinct(f) === 1);
}

/** Group-by choices: the differing fields first (activation preselected: the study's
 * question), then every other field; "" = one line per run. */
function renderGroupSelect(want) {
  const select = controls.group;
  const current = want !== undefined ? want : select.value;
  clear(select).append(el("option", { value: "" }, "nothing: one line per run"));
  const add = (title, fields) => {
    if (fields.length) select.append(el("optgroup", { label: title }, fields.map((f) => el("option", { value: f }, fieldLabel(f)))));
  };
  add("differs between these runs", differing);
  add("the same in all", shared);
  const all = [...differing, ...shared];
  if (current !== null && current !== undefined && (current === "" || all.includes(current))) select.value = current;
  else {
    // activation, when it differs and some activation has two or more runs (seeds) to spread
    const values = new Set(runs.map((r) => (r.config || {}).activation));
    select.value = differing.includes("activation") && values.size < runs.length ? "activation" : "";
  }
}

// ------------------------------------------------------------------ figures

/** A metric that is always drawn on a log axis (the learning rate: 0.1, 0.01 and 0.001
 * would look alike on a linear one) ticks and locks the box; leaving it gives back the
 * user's own choice. */
function syncLogBox(spec) {
  const box = controls.log;
  const forced = Boolean(spec.logY);
  if (forced && !box.disabled) {
    box.dataset.chosen = box.checked ? "1" : "";
    box.checked = true;
  } else if (!forced && box.disabled) box.checked = box.dataset.chosen === "1";
  box.disabled = forced;
  box.title = forced ? `${spec.title} is always on a log axis` : "";
}

function drawCurves() {
  const metric = controls.metric.value;
  const spec = METRICS[metric];
  syncLogBox(spec);
  const alpha = Number(controls.smooth.value) || 0;
  byId("smoothing-value").textContent = alpha ? alpha.toFixed(2) : "off";
  const field = controls.group.value;
  controls.showRuns.disabled = !field;
  const series = (field
    ? groupSeries(groupBy(runs, field), rows, metric, alpha, (v) => `${fieldLabel(field)} ${label(field, v)}`, controls.showRuns.checked)
    : runSeries(runs, rows, metric, alpha, short)
  ).map((s) => ({ ...s, shape: spec.shape })); // steps for the learning rate, as on the run page
  byId("curves-title").textContent = `${spec.title.replace(/ \(%\)$/, "")[0].toUpperCase()}${spec.title.replace(/ \(%\)$/, "").slice(1)}${field ? ` by ${fieldLabel(field)}` : ""}`;
  const note = byId("curves-note");
  note.textContent = field
    ? "Each colour is one value; the line is the mean over its runs, the band ± one standard deviation (where two or more runs reached the epoch)."
    : "";
  writeView();
  return Charts.curves(byId("compare-curves"), series, {
    ytitle: `${spec.title}${controls.log.checked ? " (log scale)" : ""}`,
    percent: spec.percent,
    logY: controls.log.checked,
    hovermode: "x unified",
  });
}

function drawTables() {
  const table = clear(byId("diff-table"));
  const head = el("tr", {}, el("th", { scope: "col" }, "field"), runs.map((r) => el("th", { scope: "col" }, el("a", { href: `/runs/${r.id}` }, `#${r.id}`))));
  table.append(el("thead", {}, head));
  const body = el("tbody");
  const row = (name, values, cls) => body.append(el("tr", {}, el("th", { scope: "row" }, name), values.map((v) => el("td", { class: cls || "" }, v))));
  row("name", runs.map((r) => r.name || "—"));
  row("status", runs.map((r) => badge(r.status)));
  row("final test acc.", runs.map((r) => pct(r.final_test_acc)));
  row("best test acc.", runs.map((r) => pct(r.best_test_acc)));
  row("epochs done", runs.map((r) => `${r.epochs_done ?? 0}/${r.epochs_total ?? (r.config || {}).epochs ?? "?"}`));
  row("images/s", runs.map((r) => rate(r.images_per_second)));
  row("duration", runs.map((r) => duration(r.duration_seconds)));
  for (const f of differing) row(breakable(f), runs.map((r) => configValue(f, (r.config || {})[f])), "changed");
  if (!differing.length) {
    body.append(el("tr", {}, el("td", { colspan: runs.length + 1, class: "muted" }, "Every config field is the same in these runs.")));
  }
  table.append(body);

  const same = clear(byId("shared-table"));
  const sameBody = el("tbody");
  const first = runs[0].config || {};
  for (const f of shared) sameBody.append(el("tr", {}, el("th", { scope: "row" }, breakable(f)), el("td", {}, configValue(f, first[f]))));
  if (!shared.length) sameBody.append(el("tr", {}, el("td", { class: "muted" }, "No config field is the same in all these runs.")));
  same.append(sameBody);
  byId("shared-count").textContent = `${shared.length} field${shared.length === 1 ? "" : "s"}`;
}

function drawParcoords() {
  const div = byId("compare-parcoords");
  const note = byId("parcoords-note");
  const done = runs.filter((r) => r.final_test_acc !== null && r.final_test_acc !== undefined);
  if (done.length < 2) {
    Charts.purge(div);
    div.hidden = true;
    note.textContent = "Needs at least two finished runs; running ones appear when they finish.";
    return;
  }
  div.hidden = false;
  note.textContent = `${done.length} finished runs, one line each; point at a line for its values.${differing.length ? "" : " No config field differs, so only accuracy is shown."}`;
  const dims = Charts.factorDimensions(differing, done.map((r) => r.config || {}), fieldLabel, label);
  const acc = done.map((r) => r.final_test_acc * 100);
  dims.push({ label: "final test acc. (%)", values: acc, tickformat: ".1f" });
  Charts.parcoords(div, { dimensions: dims, color: acc, colorTitle: "final test acc. (%)" });
}

// ------------------------------------------------------------------ events

for (const c of [controls.metric, controls.group, controls.log, controls.showRuns]) c.addEventListener("change", () => drawCurves());
controls.smooth.addEventListener("input", () => drawCurves());
byId("ids-form").addEventListener("submit", (e) => {
  e.preventDefault();
  ids = parseIds(byId("ids-input").value);
  load().catch((err) => toast(err.message, "error"));
});

load(readView()).catch((err) => toast(err.message, "error"));
poll(async () => {
  if (runs.some((r) => ACTIVE.has(r.status))) await load();
}, 5000);
