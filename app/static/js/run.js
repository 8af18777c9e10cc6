/* Run page: live curves (existing metrics first, then server-sent events from the last
 * epoch on, so a reload mid-run is correct), progress and ETA, config, environment,
 * and once finished the confusion matrix and per-class accuracy. */
"use strict";

(() => {
  const { el, api, clear, pct, duration, eta, label, pageData } = RL;
  const runId = pageData.run_id;
  const accDiv = document.getElementById("chart-acc");
  const lossDiv = document.getElementById("chart-loss");
  const lrDiv = document.getElementById("chart-lr");

  let run = null;
  let epochs = []; // epoch rows drawn so far, in order
  let stream = null;
  let resultShown = false;
  let charts = Promise.resolve(); // chart updates run one after another

  const TRAIN = Charts.PALETTE[0];
  const TEST = Charts.PALETTE[1];

  // ------------------------------------------------------------------ curves

  /** The last epoch the run will reach: the x axis spans the whole training from the start. */
  function horizon() {
    return (run && (run.epochs_total || (run.config && run.config.epochs))) || undefined;
  }

  function drawCurves() {
    const x = epochs.map((e) => e.epoch);
    const col = (k) => epochs.map((e) => e[k]);
    const none = document.getElementById("no-epochs");
    none.hidden = epochs.length > 0;
    none.textContent =
      run && RL.FINISHED.has(run.status)
        ? "This run ended before it finished an epoch."
        : "No epoch has finished yet; the curves grow here as the worker reports each one.";
    charts = charts.then(() =>
      Promise.all([
        Charts.curves(
          accDiv,
          [
            { name: "train", x, y: col("train_acc"), color: TRAIN, dash: "dot" },
            { name: "test", x, y: col("test_acc"), color: TEST },
          ],
          { ytitle: "accuracy (%)", percent: true, xmax: horizon() },
        ),
        Charts.curves(
          lossDiv,
          [
            { name: "train", x, y: col("train_loss"), color: TRAIN, dash: "dot" },
            { name: "test", x, y: col("test_loss"), color: TEST },
          ],
          { ytitle: "cross-entropy loss", xmax: horizon() },
        ),
        Charts.curves(lrDiv, [{ name: "learning rate", x, y: col("lr"), color: Charts.PALETTE[2], mode: "lines+markers" }], {
          ytitle: "learning rate (log scale)",
          logY: true,
          xmax: horizon(),
          showlegend: false,
        }),
      ]),
    );
    return charts;
  }

  function addEpoch(row) {
    const last = epochs.length ? epochs[epochs.length - 1].epoch : 0;
    if (row.epoch <= last) return; // already drawn (a reconnect replays epochs)
    epochs.push(row);
    document.getElementById("no-epochs").hidden = true;
    charts = charts.then(() =>
      Promise.all([
        Charts.extend(accDiv, [
          { trace: 0, x: row.epoch, y: row.train_acc },
          { trace: 1, x: row.epoch, y: row.test_acc },
        ]),
        Charts.extend(lossDiv, [
          { trace: 0, x: row.epoch, y: row.train_loss },
          { trace: 1, x: row.epoch, y: row.test_loss },
        ]),
        Charts.extend(lrDiv, [{ trace: 0, x: row.epoch, y: row.lr }]),
      ]),
    );
    if (run) {
      run.epochs_done = Math.max(run.epochs_done || 0, row.epoch);
      renderProgress();
    }
    refreshRunSoon();
  }

  async function loadMetrics() {
    const m = await api(`/api/runs/${runId}/metrics`);
    epochs = (m.epochs || []).slice().sort((a, b) => a.epoch - b.epoch);
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
          if (run && !RL.FINISHED.has(run.status)) {
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
  const refreshRunSoon = RL.debounce(refreshRun, 400);

  function missing() {
    closeStream();
    const box = document.getElementById("run-missing");
    box.hidden = false;
    clear(box).append(`Run #${runId} does not exist (it may have been deleted). `, el("a", { href: "/" }, "Back to the runs"));
    document.getElementById("run-factors").textContent = "";
  }

  function setRun(data) {
    // a status event may carry the run without its result; keep what we know
    if (run && data.result === undefined) data.result = run.result;
    run = data;
    render();
    if (RL.FINISHED.has(run.status)) {
      if (stream) {
        closeStream();
        // the last epochs may be committed together with the final status: make sure
        // every stored epoch is drawn before the stream is gone
        catchUp();
      }
      if (run.result && !resultShown) renderResult();
    }
  }

  /** Draw any stored epoch the stream did not deliver. */
  async function catchUp() {
    try {
      const m = await api(`/api/runs/${runId}/metrics`);
      for (const row of (m.epochs || []).slice().sort((a, b) => a.epoch - b.epoch)) addEpoch(row);
    } catch (e) {
      if (e.status !== 401) console.warn("could not load the last epochs:", e.message);
    }
  }

  function render() {
    const c = run.config || {};
    clear(document.getElementById("run-status")).append(RL.badge(run.status));
    const factors = clear(document.getElementById("run-factors"));
    factors.append(RL.factorLine(c));
    if (run.sweep_id) factors.append(" · ", el("a", { href: `/sweeps/${run.sweep_id}` }, `grid #${run.sweep_id}`));
    document.title = `Run #${runId} (${run.status}) · ResNet Lab`;

    renderActions();
    renderProgress();

    const errBox = document.getElementById("run-error");
    const failed = run.status === "failed" || run.status === "lost";
    errBox.hidden = !(failed || run.error);
    if (!errBox.hidden) {
      document.getElementById("run-error-title").textContent =
        run.status === "lost" ? "This run was lost (its worker stopped reporting)" : "This run failed";
      // the message first; a traceback, if any, folded away below it
      const text = run.error || "No error message was recorded.";
      const cut = text.indexOf("Traceback (most recent call last)");
      document.getElementById("run-error-text").textContent = (cut > 0 ? text.slice(0, cut) : text).trim();
      document.getElementById("run-error-trace").hidden = cut <= 0;
      document.getElementById("run-error-trace-text").textContent = cut > 0 ? text.slice(cut) : "";
    }
    const note = document.getElementById("run-note");
    if (run.cancel_requested && run.status === "running") {
      note.hidden = false;
      note.textContent = "Cancelling: the worker stops between two batches.";
    } else if (run.status === "queued") {
      note.hidden = false;
      note.textContent = "Queued: waiting for a free worker. The curves start with the first finished epoch.";
    } else {
      note.hidden = true;
    }
    kvTable(document.getElementById("config-table"), c);
    kvTable(document.getElementById("env-table"), run.environment || {}, "Reported by the worker when the run starts.", false);
  }

  function renderProgress() {
    const done = run.epochs_done || 0;
    const total = run.epochs_total || (run.config && run.config.epochs) || 0;
    const fraction = run.status === "succeeded" ? 1 : total ? done / total : run.progress || 0;
    clear(document.getElementById("progress-bar")).append(RL.progressBar(fraction));
    document.getElementById("progress-text").textContent =
      `epoch ${done} of ${total} (${Math.round(fraction * 100)}%)`;
    const best = run.best_test_acc !== null && run.best_test_acc !== undefined
      ? `${pct(run.best_test_acc)}${run.best_epoch ? ` (epoch ${run.best_epoch})` : ""}`
      : "—";
    const stats = [
      ["Status", run.status],
      ["Final test acc.", pct(run.final_test_acc)],
      ["Best test acc.", best],
      ["Elapsed", duration(run.duration_seconds)],
      ["ETA", RL.ACTIVE.has(run.status) ? eta(run.eta_seconds) : "—"],
      ["Attempts", run.attempts ?? "—"],
      ["Worker", run.worker || "—"],
      ["Queued", RL.when(run.queued_at)],
      ["Started", RL.when(run.started_at)],
      ["Finished", RL.when(run.finished_at)],
    ];
    const box = clear(document.getElementById("run-stats"));
    for (const [k, v] of stats) {
      box.append(el("div", { class: "stat" }, el("div", { class: "label" }, k), el("div", { class: "value", "data-stat": k }, v)));
    }
  }

  function renderActions() {
    const box = clear(document.getElementById("run-actions"));
    const action = (name, text, cls) =>
      el("button", {
        type: "button",
        class: `btn ${cls || ""}`,
        "data-action": name,
        onclick: async () => {
          if (!(await RL.runAction(name, runId))) return;
          if (name === "delete") {
            location.href = "/";
            return;
          }
          await refreshRun();
          if (name === "retry") {
            resultShown = false;
            document.getElementById("result").hidden = true;
            await loadMetrics();
            openStream();
          }
        },
      }, text);
    if (RL.ACTIVE.has(run.status) && !run.cancel_requested) box.append(action("cancel", "Cancel", "danger"));
    if (RL.RETRYABLE.has(run.status)) box.append(action("retry", "Retry", "primary"));
    if (run.has_checkpoint) {
      box.append(el("a", { class: "btn", href: `/api/runs/${runId}/checkpoint`, download: `run-${runId}.pt` }, "Download checkpoint"));
    }
    box.append(
      el("a", { class: "btn", href: `/compare?run_ids=${runId}` }, "Compare…"),
      el("a", { class: "btn", href: `/runs/new?copy=${runId}` }, "New run from this config"),
    );
    if (!RL.ACTIVE.has(run.status)) box.append(action("delete", "Delete", "danger"));
  }

  /** A two-column table; with markDefaults, values that differ from the config default are marked. */
  function kvTable(table, obj, emptyText, markDefaults = true) {
    const body = clear(table.tBodies[0]);
    const entries = Object.entries(obj);
    if (!entries.length) {
      body.append(el("tr", {}, el("td", { class: "muted" }, emptyText || "—")));
      return;
    }
    const props = (markDefaults && pageData.schema && pageData.schema.properties) || {};
    for (const [k, v] of entries) {
      const shown = typeof v === "object" && v !== null ? JSON.stringify(v) : String(v);
      const pretty = typeof v === "boolean" ? shown : label(k, v);
      const def = props[k] ? props[k].default : undefined;
      const td = el("td", { class: def !== undefined && def !== v ? "changed" : "" }, pretty === shown ? shown : `${pretty} (${shown})`);
      body.append(el("tr", {}, el("th", { scope: "row" }, k), td));
    }
  }

  function renderResult() {
    const r = run.result || {};
    const classes = r.classes || [];
    if (!classes.length || !(r.confusion_matrix || []).length) return;
    resultShown = true;
    const section = document.getElementById("result");
    section.hidden = false;
    charts = charts.then(() =>
      Promise.all([
        Charts.confusion(document.getElementById("chart-confusion"), classes, r.confusion_matrix),
        Charts.bars(document.getElementById("chart-per-class"), {
          x: classes,
          y: r.per_class_acc || [],
          percent: true,
          xtitle: "class",
          ytitle: "test accuracy (%)",
          range: [0, 1.12],
        }),
      ]),
    );
  }

  // ------------------------------------------------------------------ start

  async function start() {
    try {
      setRun(await api(`/api/runs/${runId}`));
    } catch (e) {
      if (e.status === 404) missing();
      else if (e.status !== 401) {
        const box = document.getElementById("run-missing");
        box.hidden = false;
        box.textContent = `Could not load run #${runId}: ${e.message}`;
      }
      return;
    }
    await loadMetrics();
    if (!RL.FINISHED.has(run.status)) openStream();
    // the ETA and heartbeat move between epochs too
    RL.poll(async () => {
      if (run && RL.ACTIVE.has(run.status)) await refreshRun();
    }, 10000);
  }

  start();
})();
