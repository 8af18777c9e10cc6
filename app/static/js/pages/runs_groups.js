/* The runs page's "Group & compare": the runs the filters keep, grouped by any fields, with
 * n, mean ± std and the 95 % interval of a metric per group (GET /api/runs/groups, computed
 * on the server), their means drawn with the intervals, and one field against the metric
 * run by run (GET /api/runs/scatter). The section's choices live in the URL (groups=,
 * gmetric=, gx=) while it is open. Plotly, served by the app, is loaded the first time the
 * section opens: the runs table does not wait for it. */

import { api } from "../lib/api.js";
import { byId, clear, el } from "../lib/dom.js";
import { fieldLabel, label, num, pct } from "../lib/format.js";

const ACCURACIES = new Set(["final_test_acc", "best_test_acc"]);
const STALE_MS = 15000; // an open section refetches at most this often while runs change
const MAX_BY = 4;

// x: the scatter's field; null follows the first field grouped by
const view = { by: ["activation"], metric: "final_test_acc", x: null };
const scatterX = () => view.x || view.by[0];
let fields = [];
let metrics = { final_test_acc: "final test accuracy" }; // the server's list, once it answers
let named = false;
let box = null;
let getFilters = () => new URLSearchParams();
let onChange = () => {};
let charts = null;
let last = { key: null, at: 0 };
let inflight = null;

/** Plotly (a classic script) first, then the chart helpers, which read window.Plotly. */
async function loadCharts() {
  if (charts) return charts;
  if (!window.Plotly) {
    await new Promise((resolve, reject) => {
      document.head.append(
        el("script", { src: box.dataset.plotly, onload: resolve, onerror: () => reject(new Error("could not load Plotly")) }),
      );
    });
  }
  charts = await import("../lib/charts.js");
  return charts;
}

/** The section's state as URL parameters, while it is open (runs.js writes the URL). */
export function groupsParams() {
  if (!box || !box.open) return [];
  const out = [
    ["groups", view.by.join(",")],
    ["gmetric", view.metric],
  ];
  if (view.x) out.push(["gx", view.x]);
  return out;
}

function value(field, v) {
  if (v === null || v === undefined) return "—";
  if (field === "sweep_id") return `grid #${v}`;
  return label(field, v);
}

function metricText(v) {
  if (v === null || v === undefined) return "—";
  return ACCURACIES.has(view.metric) ? pct(v) : num(v);
}

function renderControls() {
  const controls = clear(byId("groups-controls"));
  const chosen = el(
    "div",
    { class: "group-fields", id: "group-fields" },
    view.by.map((f) =>
      el(
        "span",
        { class: "group-field", "data-field": f },
        fieldLabel(f),
        el("button", {
          type: "button",
          class: "btn sm link",
          "aria-label": `Stop grouping by ${fieldLabel(f)}`,
          disabled: view.by.length === 1,
          onclick: () => set({ by: view.by.filter((k) => k !== f) }),
          text: "×",
        }),
      ),
    ),
  );
  const add = el(
    "select",
    { id: "group-add", disabled: view.by.length >= MAX_BY },
    el("option", { value: "" }, view.by.length >= MAX_BY ? `at most ${MAX_BY}` : "add a field…"),
    fields.filter((f) => !view.by.includes(f)).map((f) => el("option", { value: f }, fieldLabel(f))),
  );
  add.addEventListener("change", () => add.value && set({ by: [...view.by, add.value] }));
  const metric = el(
    "select",
    { id: "group-metric" },
    Object.entries(metrics).map(([k, text]) => el("option", { value: k, selected: k === view.metric }, text)),
  );
  metric.addEventListener("change", () => set({ metric: metric.value }));
  const x = el(
    "select",
    { id: "scatter-x" },
    fields.map((f) => el("option", { value: f, selected: f === scatterX() }, fieldLabel(f))),
  );
  x.addEventListener("change", () => set({ x: x.value }));
  controls.append(
    el("div", { class: "field" }, el("label", { for: "group-add" }, "Group by"), el("div", { class: "row" }, chosen, add)),
    el("div", { class: "field" }, el("label", { for: "group-metric" }, "Metric"), metric),
    el("div", { class: "field" }, el("label", { for: "scatter-x" }, "Scatter: field"), x),
  );
}

function set(change) {
  Object.assign(view, change);
  renderControls();
  onChange();
  load(true);
}

function renderTable(answer) {
  const table = byId("groups-table");
  const head = clear(table.tHead.rows[0]);
  for (const f of answer.by) head.append(el("th", { scope: "col" }, fieldLabel(f)));
  for (const [text, cls] of [["Runs", "num"], ["n", "num"], ["Mean", "num"], ["± std", "num"], ["95 % interval", "num"], ["Statuses", ""]]) {
    head.append(el("th", { scope: "col", class: cls }, text));
  }
  const body = clear(table.tBodies[0]);
  for (const g of answer.groups) {
    const statuses = Object.entries(g.statuses).map(([s, k]) => `${k} ${s}`).join(", ");
    body.append(
      el(
        "tr",
        { "data-group": answer.by.map((f) => String(g.key[f])).join("|") },
        answer.by.map((f) => el("td", { class: `g-${f}` }, value(f, g.key[f]))),
        el("td", { class: "num g-runs" }, String(g.runs)),
        el("td", { class: "num g-n" }, String(g.n)),
        el("td", { class: "num g-mean" }, metricText(g.mean)),
        el("td", { class: "num g-std" }, g.std === null ? "—" : `± ${metricText(g.std)}`),
        el("td", { class: "num g-ci" }, g.ci95 ? `${metricText(g.ci95[0])} – ${metricText(g.ci95[1])}` : "—"),
        el("td", { class: "small muted" }, statuses),
      ),
    );
  }
  if (!answer.groups.length) {
    body.append(el("tr", {}, el("td", { colspan: answer.by.length + 6, class: "muted" }, "No runs match these filters.")));
  }
  byId("groups-note").textContent =
    `${answer.total_runs.toLocaleString("en")} runs in ${answer.groups.length} groups; ` +
    `n, mean, std and the 95 % t-interval of the ${answer.metric_label} count ${answer.counted}.`;
}

/** Group means with their intervals: one line per value of the other fields, across the
 * values of the first. */
function drawMeans(answer) {
  const [first, ...rest] = answer.by;
  const xs = [];
  const series = new Map();
  for (const g of answer.groups) {
    const x = value(first, g.key[first]);
    if (!xs.includes(x)) xs.push(x);
    const name = rest.length ? rest.map((f) => `${fieldLabel(f)} ${value(f, g.key[f])}`).join(", ") : answer.metric_label;
    if (!series.has(name)) series.set(name, new Map());
    series.get(name).set(x, g);
  }
  const at = (m, x, pick) => (m.has(x) ? pick(m.get(x)) : null);
  charts.interaction(byId("groups-chart"), {
    x: xs,
    series: [...series]
      .map(([name, m]) => ({
        name,
        y: xs.map((x) => at(m, x, (g) => g.mean)),
        lo: xs.map((x) => at(m, x, (g) => (g.ci95 ? g.ci95[0] : null))),
        hi: xs.map((x) => at(m, x, (g) => (g.ci95 ? g.ci95[1] : null))),
      }))
      .filter((s) => s.y.some((y) => y !== null)), // groups without a value: no line
    percent: ACCURACIES.has(answer.metric),
    xtitle: fieldLabel(first),
    ytitle: `mean ${answer.metric_label}`,
  });
}

function drawScatter(answer) {
  const xs = answer.points.map((p) => p.x);
  const numeric = xs.every((v) => typeof v === "number");
  charts.scatter(byId("scatter-chart"), {
    x: numeric ? xs : xs.map((v) => value(answer.x, v)),
    y: answer.points.map((p) => p.y),
    ids: answer.points.map((p) => p.run_id),
    percent: ACCURACIES.has(answer.y),
    xtitle: fieldLabel(answer.x),
    ytitle: answer.metric_label,
    onClick: (id) => {
      location.href = `/runs/${id}`;
    },
  });
  byId("scatter-note").textContent = `${answer.points.length.toLocaleString("en")} of ${answer.total_runs.toLocaleString("en")} runs have a ${answer.metric_label} (${answer.counted}).`;
}

async function load(force = false) {
  if (!box || !box.open) return;
  const filters = getFilters();
  const key = `${filters}|${view.by}|${view.metric}|${scatterX()}`;
  if (!force && key === last.key && Date.now() - last.at < STALE_MS) return;
  last = { key, at: Date.now() };
  if (inflight) inflight.abort();
  const ctrl = new AbortController();
  inflight = ctrl;
  const g = new URLSearchParams(filters);
  g.set("by", view.by.join(","));
  g.set("metric", view.metric);
  const s = new URLSearchParams(filters);
  s.set("x", scatterX());
  s.set("y", view.metric);
  const errBox = byId("groups-error");
  try {
    const [groups, points] = await Promise.all([
      api(`/api/runs/groups?${g}`, { signal: ctrl.signal }),
      api(`/api/runs/scatter?${s}`, { signal: ctrl.signal }),
      loadCharts(),
    ]);
    errBox.hidden = true;
    if (!named) {
      named = true;
      fields = groups.fields;
      metrics = groups.metrics;
      renderControls();
    }
    renderTable(groups);
    drawMeans(groups);
    drawScatter(points);
    box.dataset.loaded = key; // the browser test waits on it
  } catch (e) {
    if (e.name === "AbortError" || e.status === 401) return;
    last.key = null;
    errBox.hidden = false;
    errBox.textContent = `Could not load the groups: ${e.message}`;
  } finally {
    if (inflight === ctrl) inflight = null;
  }
}

/** Called after each refresh of the table with its filters: refetches when they changed,
 * or now and then while runs finish. */
export function updateGroups(filters) {
  getFilters = () => filters;
  load();
}

/**
 * schema: the trainer config's (its fields come first in the field lists); params: the
 * page's URL parameters (groups=, gmetric=, gx= reopen a shared view); filters(): the
 * table's filters; changed(): the URL needs writing again.
 */
export function initGroups({ schema, params, filters, changed }) {
  box = byId("groups-box");
  getFilters = filters;
  onChange = changed;
  fields = [...Object.keys((schema && schema.properties) || {}), "status", "sweep_id"];
  if (params.get("groups")) {
    view.by = params.get("groups").split(",").filter((f) => fields.includes(f)).slice(0, MAX_BY);
    if (!view.by.length) view.by = ["activation"];
    view.metric = params.get("gmetric") || view.metric;
    view.x = fields.includes(params.get("gx")) ? params.get("gx") : null;
    box.open = true;
  }
  renderControls();
  box.addEventListener("toggle", () => {
    onChange();
    if (box.open) load(true);
  });
}
