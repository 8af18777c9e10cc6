/* Run page: live curves (stored epochs first, then server-sent events from the last epoch
 * on, so a reload mid-run is correct), progress and ETA, throughput, name/tags/note, config,
 * environment, and once finished the confusion matrix and per-class accuracy. */

import { api, brokerReachable, epochRows } from "../lib/api.js";
import * as Charts from "../lib/charts.js";
import { breakable, byId, clear, debounce, el, poll } from "../lib/dom.js";
import { configValue, duration, eta, factorLine, num, pct, rate, when } from "../lib/format.js";
import { pageData } from "../lib/page.js";
import { ACTIVE, CHANGING, FINAL, RETRYABLE, badge, progressBar, runAction } from "../lib/status.js";
import { RunAttempts } from "./run_attempts.js";
import { RunCharts } from "./run_charts.js";
import { RunLogs } from "./run_logs.js";
import { RunNotes } from "./run_notes.js";

const runId = pageData.run_id;
const charts = new RunCharts({ acc: byId("chart-acc"), loss: byId("chart-loss"), lr: byId("chart-lr"), speed: byId("chart-speed") });
const notes = new RunNotes(runId, (saved) => setRun(saved));

let run = null;
let epochs = []; // epoch rows drawn so far, in order
let stream = null;
let resultShown = false;
let workerEnv = null; // {runId, environment} from this worker's last finished run

// ------------------------------------------------------------------ curves

function drawCurves() {
  renderCurvesVisibility();
  return charts.draw(run, epochs);
}

/** A run that ended before its first epoch has no curves: no empty frames, one sentence. */
function renderCurvesVisibility() {
  const none = byId("no-epochs");
  const ended = run && FINAL.has(run.status);
  none.hidden = epochs.length > 0;
  none.textContent = ended
    ? "This run ended before it finished an epoch: there are no curves."
    : "No epoch has finished yet; the curves grow here as the worker reports each one.";
  byId("curves").hidden = ended && !epochs.length;
  byId("throughput").hidden = ended && !epochs.length;
}

function addEpoch(row) {
  const last = epochs.length ? epochs[epochs.length - 1].epoch : 0;
  if (row.epoch <= last) return; // already drawn (a reconnect replays epochs)
  epochs.push(row);
  byId("no-epochs").hidden = true;
  if (run) {
    run.epochs_done = Math.max(run.epochs_done || 0, row.epoch);
    charts.draw(run, epochs);
    renderProgress();
  }
  refreshRunSoon();
}

const metricsUrl = `/api/runs/${runId}/metrics?format=columns`;

/** The stored epochs, drawn; `asked`: their request, when already sent. */
async function loadMetrics(asked) {
  const m = await (asked || api(metricsUrl));
  epochs = epochRows(m); // in epoch order
  await drawCurves();
}

// ------------------------------------------------------------------ live stream

function openStream() {
  if (stream) return;
  const after = epochs.length ? epochs[epochs.length - 1].epoch : 0;
  const es = new EventSource(`/api/runs/${runId}/events?after_epoch=${after}`);
  stream = es;
  es.addEventListener("epoch", (e) => addEpoch(JSON.parse(e.data)));
  es.addEventListener("status", (e) => {
    const data = JSON.parse(e.data);
    if (data && data.id === runId) setRun(data);
  });
  es.addEventListener("end", () => {
    closeStream();
    refreshRun();
    catchUp();
  });
  es.onerror = () => {
    // The browser reconnects by itself unless the server refused the stream.
    if (es.readyState === EventSource.CLOSED) {
      closeStream();
      setTimeout(async () => {
        await refreshRun();
        if (run && CHANGING.has(run.status)) {
          await loadMetrics();
          openStream();
        }
      }, 3000);
    }
  };
}

function closeStream() {
  if (stream) stream.close();
  stream = null;
}

// ------------------------------------------------------------------ run details

async function refreshRun() {
  try {
    setRun(await api(`/api/runs/${runId}`));
  } catch (e) {
    if (e.status === 404) missing();
  }
}
const refreshRunSoon = debounce(refreshRun, 400);

function missing() {
  closeStream();
  const box = byId("run-missing");
  box.hidden = false;
  clear(box).append(`Run #${runId} does not exist (it may have been deleted). `, el("a", { href: "/" }, "Back to the runs"));
  byId("run-factors").textContent = "";
}

function setRun(data) {
  // a status event may carry the run without its result or speed; keep what we know
  if (run && data.result === undefined) data.result = run.result;
  if (run && data.images_per_second === undefined) data.images_per_second = run.images_per_second;
  run = data;
  render();
  if (FINAL.has(run.status)) {
    if (stream) {
      closeStream();
      // the last epochs may be committed together with the final status: make sure
      // every stored epoch is drawn before the stream is gone
      catchUp();
    }
    if (run.result && !resultShown) renderResult();
  }
  renderCurvesVisibility();
}

/** Draw any stored epoch the stream did not deliver. */
async function catchUp() {
  try {
    const m = await api(metricsUrl);
    for (const row of epochRows(m)) addEpoch(row); // in epoch order
  } catch (e) {
    if (e.status !== 401) console.warn("could not load the last epochs:", e.message);
  }
}

function render() {
  const c = run.config || {};
  clear(byId("run-status")).append(badge(run.status, run.stalled_seconds));
  const factors = clear(byId("run-factors"));
  factors.append(factorLine(c));
  if (run.sweep_id) factors.append(" · ", el("a", { href: `/sweeps/${run.sweep_id}` }, `grid #${run.sweep_id}`));
  document.title = `${run.name ? `${run.name} · ` : ""}Run #${runId} (${run.status}) · ResNet Lab`;
  notes.show(run);

  renderActions();
  renderProgress();
  renderThroughput();

  const errBox = byId("run-error");
  const failed = run.status === "failed" || run.status === "lost";
  errBox.hidden = !(failed || run.error);
  if (!errBox.hidden) {
    byId("run-error-title").textContent =
      run.status === "lost" ? "This run was lost (its worker stopped reporting)" : "This run failed";
    // the message first; a traceback, if any, folded away below it
    const text = run.error || "No error message was recorded.";
    const cut = text.indexOf("Traceback (most recent call last)");
    byId("run-error-text").textContent = (cut > 0 ? text.slice(0, cut) : text).trim();
    byId("run-error-trace").hidden = cut <= 0;
    byId("run-error-trace-text").textContent = cut > 0 ? text.slice(cut) : "";
  }
  const note = byId("run-state-note");
  if (run.cancel_requested && run.status === "running") {
    note.hidden = false;
    note.textContent = "Cancelling: the worker stops between two batches.";
  } else if (run.status === "queued") {
    note.hidden = false;
    note.textContent = "Queued: waiting for a free worker. The curves start with the first finished epoch.";
    brokerReachable().then((up) => {
      if (up === false && run.status === "queued") {
        note.textContent =
          "Queued: waiting for the broker, which does not answer. The run is stored; its message is sent as soon as the broker is back.";
      }
    });
  } else {
    note.hidden = true;
  }
  kvTable(byId("config-table"), c, null, true);
  renderEnvironment();
}

function renderProgress() {
  const done = run.epochs_done || 0;
  const total = run.epochs_total || (run.config && run.config.epochs) || 0;
  const fraction = run.status === "succeeded" ? 1 : total ? done / total : run.progress || 0;
  clear(byId("progress-bar")).append(progressBar(fraction));
  byId("progress-text").textContent = `epoch ${done} of ${total} (${Math.round(fraction * 100)}%)`;
  const best = run.best_test_acc !== null && run.best_test_acc !== undefined
    ? `${pct(run.best_test_acc)}${run.best_epoch ? ` (epoch ${run.best_epoch})` : ""}`
    : "—";
  const latest = epochs.length ? epochs[epochs.length - 1] : null;
  const stats = [
    ["Status", run.status],
    ["Latest test acc.", latest ? `${pct(latest.test_acc)} (epoch ${latest.epoch})` : "—"],
    ["Final test acc.", pct(run.final_test_acc)],
    ["Best test acc.", best],
    ["Elapsed", duration(run.duration_seconds)],
    ["ETA", ACTIVE.has(run.status) ? eta(run.eta_seconds) : "—"],
    ["Attempts", run.attempts ?? "—"],
    ["Worker", run.worker || "—"],
    ["Queued", when(run.queued_at)],
    ["Started", when(run.started_at)],
    ["Finished", when(run.finished_at)],
  ];
  const box = clear(byId("run-stats"));
  for (const [k, v] of stats) {
    box.append(el("div", { class: "stat" }, el("div", { class: "label" }, k), el("div", { class: "value", "data-stat": k }, v)));
  }
}

function renderThroughput() {
  const secs = epochs.map((e) => e.seconds).filter((s) => s > 0);
  const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  const last = epochs.length ? epochs[epochs.length - 1] : null;
  const stats = [
    ["Mean training speed", rate(run.images_per_second ?? mean(epochs.map((e) => e.images_per_second)))],
    ["Last epoch", last ? rate(last.images_per_second) : "—"],
    ["Seconds per epoch", secs.length ? `${num(mean(secs), 3)} s` : "—"],
    ["Last epoch took", last ? `${num(last.seconds, 3)} s` : "—"],
  ];
  const box = clear(byId("speed-stats"));
  for (const [k, v] of stats) {
    box.append(el("div", { class: "stat" }, el("div", { class: "label" }, k), el("div", { class: "value", "data-speed": k }, v)));
  }
}

function renderActions() {
  const box = clear(byId("run-actions"));
  const action = (name, text, cls) =>
    el("button", {
      type: "button",
      class: `btn ${cls || ""}`,
      "data-action": name,
      onclick: async () => {
        if (!(await runAction(name, runId))) return;
        if (name === "delete") {
          location.href = "/";
          return;
        }
        await refreshRun();
        if (name === "retry") {
          resultShown = false;
          byId("result").hidden = true;
          await loadMetrics();
          openStream();
        }
      },
    }, text);
  if (ACTIVE.has(run.status) && !run.cancel_requested) box.append(action("cancel", "Cancel", "danger"));
  if (RETRYABLE.has(run.status)) box.append(action("retry", "Retry", "primary"));
  if (run.has_checkpoint) {
    box.append(el("a", { class: "btn", href: `/api/runs/${runId}/checkpoint`, download: `run-${runId}.pt` }, "Download checkpoint"));
  }
  if (run.epochs_done) {
    box.append(el("a", { class: "btn", id: "epochs-csv", href: `/api/runs/${runId}/metrics.csv`, download: `run-${runId}-epochs.csv` }, "Epochs CSV"));
  }
  box.append(
    el("a", { class: "btn", href: `/compare?run_ids=${runId}` }, "Compare…"),
    el("a", { class: "btn", href: `/runs/new?copy=${runId}` }, "New run from this config"),
  );
  if (!ACTIVE.has(run.status)) box.append(action("delete", "Delete", "danger"));
}

/** The worker reports versions and hardware with its result; until then, show what the same
 * worker reported for its last finished run, said as such. */
async function renderEnvironment() {
  const table = byId("env-table");
  const source = byId("env-source");
  if (run.environment && Object.keys(run.environment).length) {
    source.textContent = "Reported by the worker that trained this run.";
    kvTable(table, run.environment, null, false);
    return;
  }
  if (run.worker && (!workerEnv || workerEnv.worker !== run.worker)) {
    workerEnv = { worker: run.worker, run: null };
    try {
      const page = await api(`/api/runs?${new URLSearchParams({ worker: run.worker, status: "succeeded", limit: 1 })}`);
      const prev = page.items.find((r) => r.environment && r.id !== runId);
      workerEnv.run = prev || null;
    } catch (e) {
      workerEnv.run = null;
    }
  }
  if (workerEnv && workerEnv.run && run.worker) {
    clear(source).append(`Not reported for this run yet. The same worker (${run.worker}) reported this for `, el("a", { href: `/runs/${workerEnv.run.id}` }, `run #${workerEnv.run.id}`), ":");
    kvTable(table, workerEnv.run.environment, null, false);
    return;
  }
  source.textContent = run.worker ? `Running on ${run.worker}; versions and hardware arrive with the result.` : "Filled in by the worker that takes the run.";
  kvTable(table, {}, "—", false);
}

/** A two-column table; with markDefaults, values that differ from the config default are marked. */
function kvTable(table, obj, emptyText, markDefaults) {
  const body = clear(table.tBodies[0]);
  const entries = Object.entries(obj);
  if (!entries.length) {
    body.append(el("tr", {}, el("td", { class: "muted" }, emptyText || "—")));
    return;
  }
  const props = (markDefaults && pageData.schema && pageData.schema.properties) || {};
  for (const [k, v] of entries) {
    const def = props[k] ? props[k].default : undefined;
    const td = el("td", { class: def !== undefined && def !== v ? "changed" : "" }, configValue(k, v));
    body.append(el("tr", {}, el("th", { scope: "row" }, breakable(k)), td));
  }
}

function renderResult() {
  const r = run.result || {};
  const classes = r.classes || [];
  if (!classes.length || !(r.confusion_matrix || []).length) return;
  resultShown = true;
  byId("result").hidden = false;
  charts.then(() =>
    Promise.all([
      Charts.confusion(byId("chart-confusion"), classes, r.confusion_matrix),
      Charts.bars(byId("chart-per-class"), {
        x: classes,
        y: r.per_class_acc || [],
        percent: true,
        xtitle: "class",
        ytitle: "test accuracy (%)",
        max: 1.0,
      }),
    ]),
  );
}

// ------------------------------------------------------------------ start

byId("loss-log").addEventListener("change", (e) => charts.setLogLoss(e.target.checked, run, epochs));

async function start() {
  // the run and its epochs asked for together: the curves need not wait for the run
  const asked = api(metricsUrl);
  asked.catch(() => {}); // a missing run fails both; the run's answer says so below
  try {
    setRun(await api(`/api/runs/${runId}`));
  } catch (e) {
    if (e.status === 404) missing();
    else if (e.status !== 401) {
      const box = byId("run-missing");
      box.hidden = false;
      box.textContent = `Could not load run #${runId}: ${e.message}`;
    }
    return;
  }
  await loadMetrics(asked).catch(() => loadMetrics());
  renderProgress();
  renderThroughput();
  if (CHANGING.has(run.status)) openStream();
  // the ETA and heartbeat move between epochs too
  poll(async () => {
    if (run && ACTIVE.has(run.status)) await refreshRun();
  }, 10000);
  const logs = new RunLogs(runId);
  const attempts = new RunAttempts(runId);
  await Promise.all([logs.refresh().catch(() => {}), attempts.refresh().catch(() => {})]);
  let settled = !CHANGING.has(run.status); // one more read after the run ends: its last lines
  poll(async () => {
    if (!run) return;
    const live = CHANGING.has(run.status);
    if (live || !settled) await Promise.all([logs.refresh(), attempts.refresh()]);
    settled = !live;
  }, 3000);
}

start();
